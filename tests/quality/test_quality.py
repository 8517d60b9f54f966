"""The code stays ruff clean and type-checks: lint and mypy run with the tests, so CI catches them.

Run through this interpreter (`python -m ruff`, `python -m mypy`), so the checks use the pinned tools of the
test environment and cannot skip themselves when neither is on PATH.
"""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.claude_code import cache_root
from tests.helpers.servers import ROOT


def test_ruff_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--quiet", "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_clean():
    """Default strictness plus unused ignores (pyproject.toml [tool.mypy]); zero errors. The incremental cache
    lives beside the tools' cache, outside the clone, so a fresh clone's CI does not pay a cold run (~40 s);
    mypy checks each cached module against its source, so a stale cache costs time, never a wrong answer."""
    cache = cache_root() / f"mypy-{sys.version_info.major}.{sys.version_info.minor}"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "emulator"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
