"""Claude Code (npm `@anthropic-ai/claude-code`, pinned) installed once per machine for the end-to-end tests.

Installed with npm into a cache folder outside the repository (`$TOKENHUB_EMULATOR_TOOLS_CACHE`, else
`$XDG_CACHE_HOME/tokenhub-emulator`, else `~/.cache/tokenhub-emulator`), one folder per version, under a file
lock so that parallel test workers install it once. The package ships its native binary as an optional npm
dependency (`@anthropic-ai/claude-code-linux-x64`, …), so no install script has to run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

VERSION = "2.1.332"
PACKAGE = f"@anthropic-ai/claude-code@{VERSION}"
INSTALL_TIMEOUT_S = 600


def cache_root() -> Path:
    explicit = os.environ.get("TOKENHUB_EMULATOR_TOOLS_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tokenhub-emulator"


def _works(binary: Path) -> bool:
    if not binary.exists():
        return False
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.startswith(VERSION)


def installed_claude() -> Path:
    """The `claude` executable of the pinned version, installed first if need be. Skips only without npm."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not installed: the Claude Code end-to-end tests install {PACKAGE} with it")
    folder = cache_root() / f"claude-code-{VERSION}"
    binary = folder / "node_modules" / ".bin" / "claude"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _works(binary):
            done = subprocess.run(
                [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--no-save", PACKAGE],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
            )
            assert done.returncode == 0, f"npm install {PACKAGE} failed:\n{done.stdout}\n{done.stderr}"
            assert _works(binary), f"{binary} does not run after installing {PACKAGE}"
    return binary
