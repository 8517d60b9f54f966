"""The command line: serve prints its URL, validate reports problems with positions."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.servers import ROOT, SCENARIOS


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_validate_accepts_the_shipped_scenarios():
    result = run_cli("validate", str(SCENARIOS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok:")


def test_validate_reports_each_problem_with_file_line_column(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "rules:\n"
        "  - when:\n"
        "      last_usr: hello\n"
        "    reply: {content: hi}\n"
        "  - when: {last_user: {regex: '('}}\n"
        "    fail: {status: abc}\n"
    )
    result = run_cli("validate", str(broken))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith(f"{broken}:3:7:") and "did you mean 'last_user'" in line for line in lines), lines
    assert any(f"{broken}:5:" in line and "regex" in line for line in lines), lines
    assert any(f"{broken}:6:" in line and "status" in line for line in lines), lines


def test_serve_refuses_a_broken_scenario(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [{reply: {content: 1}, fail: {status: 500}}]\n")
    result = run_cli("serve", "--port", "0", "--scenario", str(broken))
    assert result.returncode == 2
    assert str(broken) in result.stderr


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("tokenhub-emulator ")
    assert "--scenario" in run_cli("serve", "--help").stdout


def test_bad_environment_value_is_a_clear_error():
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "serve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"TOKENHUB_EMULATOR_PORT": "eighty", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "TOKENHUB_EMULATOR_PORT (for --port): expected a port from 0 to 65535, got 'eighty'" in result.stderr
