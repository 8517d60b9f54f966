"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_pytest_plugin_example_passes(tmp_path):
    (example,) = [block for block in code_blocks("python") if "def test_" in block]
    (tmp_path / "test_example.py").write_text(example, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_scenario_example_validates(tmp_path):
    (scenario,) = [block for block in code_blocks("yaml") if "rules:" in block]
    path = tmp_path / "weather.yaml"
    path.write_text(scenario, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "validate", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
