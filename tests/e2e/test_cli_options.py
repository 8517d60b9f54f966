"""Every option of every subcommand: help text with its default and variable, and a wrong value — on the command
line or in the variable — is one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.servers import ROOT


def test_as_a_process_too() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", "99999"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "tokenhub-emulator serve: error: argument --port: expected a port from 0 to 65535, got 99999 "
        "(see tokenhub-emulator serve --help)\n"
    )
