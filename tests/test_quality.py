"""The code stays ruff clean: lint runs with the tests, so CI catches it.

Run through this interpreter (`python -m ruff`), so the check uses the pinned ruff of the test environment
and cannot skip itself when no `ruff` is on PATH.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_ruff_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--quiet", "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
