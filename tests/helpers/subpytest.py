"""The environment for a pytest run in a subprocess that needs only the emulator's plugin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PLUGIN = "emulator.pytest_plugin"  # what the tokenhub_emulator entry point (pyproject's pytest11) loads


def lean_pytest_environment(base: Mapping[str, str] | None = None, *plugins: str) -> dict[str, str]:
    """`base` (this process's environment by default) with installed plugins not auto-loaded and ours named:
    hypothesis, schemathesis, faker and the rest cost seconds at each start and none of these runs uses them.
    `plugins`: others a run does use (`xdist.plugin` for `-n`). tests/e2e/test_plugin.py keeps one run with
    every installed plugin auto-loaded: that the entry point itself works."""
    env = dict(os.environ if base is None else base)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    named = " ".join(f"-p {name}" for name in (PLUGIN, *plugins))
    env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} {named}".strip()
    return env


def run_pytest_in(folder: Path, *args: str, ini: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m pytest -q -rA` in `folder` (a test file written there by the caller), in the lean environment;
    `ini`: the lines of a pytest.ini to write first."""
    if ini:
        (folder / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *args]
    return subprocess.run(
        command, cwd=folder, env=lean_pytest_environment(), capture_output=True, text=True, timeout=120
    )


def outcomes(result: subprocess.CompletedProcess[str], module: str = "test_suite.py") -> dict[str, str]:
    """test name → PASSED / FAILED / ERROR, from the -rA summary of a run of `module`."""
    pattern = rf"^(PASSED|FAILED|ERROR) {re.escape(module)}::(\w+)"
    return {name: status for status, name in re.findall(pattern, result.stdout, re.M)}
