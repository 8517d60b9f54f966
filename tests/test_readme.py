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


def test_every_limit_flag_is_documented_and_served():
    """docs/limits.md names every limit flag, with its variable; `serve` takes each one it names."""
    from emulator.cli import _parser
    from emulator.cli_limits import LIMIT_FLAGS
    from emulator.config import env_name

    limits = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")
    for limit in LIMIT_FLAGS:
        assert f"`{limit.flag} " in limits and env_name(limit.setting) in limits, limit.flag
    documented = set(re.findall(r"^\| `(--[a-z-]+)", limits, flags=re.MULTILINE))
    serve_flags = {
        flag
        for action in _parser()._subparsers._group_actions[0].choices["serve"]._actions
        for flag in action.option_strings
    }
    record_flags = {"--max-record-bytes", "--max-record-seconds"}
    assert documented - record_flags <= serve_flags, documented - record_flags - serve_flags


def test_the_limits_example_runs(tmp_path):
    """The `serve` lines of docs/limits.md start a server that answers."""
    limits = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", limits, flags=re.DOTALL).group(1)
    from tests.conftest import start_server, stop_server

    for line in block.strip().splitlines():
        variables = dict(re.findall(r"(TOKENHUB_EMULATOR_\w+)=(\S+)", line))
        flags = line.split("serve", 1)[1].split()
        server = start_server(*flags, env=variables)
        try:
            assert server.http().get("/_emulator/ready").json()["status"] == "ready"
        finally:
            stop_server(server)


def test_the_regex_example_validates(tmp_path):
    scenarios = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    (example,) = [b for b in re.findall(r"```yaml\n(.*?)```", scenarios, flags=re.DOTALL) if "p{Han}" in b]
    path = tmp_path / "regex.yaml"
    path.write_text(example, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "validate", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    from tests.test_hardening_matching import ask, client

    http = client(example)
    response, _ = ask(http, "预订 北京")
    assert response.json()["choices"][0]["message"]["content"] == "已预订 北京"
