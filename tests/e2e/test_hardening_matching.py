"""Matching has a time budget and near-miss ranking a bounded cost: no regex and no prompt freezes the server.

Short forms, judged from the journal's `duration_ms`; bench/hostile.py measures the stall of a concurrent
request against a real server with the large versions (a 10 MB prompt, a hundred regex rules).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.servers import ROOT


@pytest.mark.parametrize(
    ("pattern", "says"),
    [("(?=x)", "invalid perl operator"), ("(a)\\\\1", "invalid escape"), ("a{1001}", "invalid repetition")],
)
def test_validate_names_a_regex_re2_does_not_take(tmp_path, pattern, says):
    path = tmp_path / "r.yaml"
    path.write_text(f'rules:\n  - when: {{last_user: {{regex: "{pattern}"}}}}\n    reply: {{content: x}}\n')
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "validate", str(path)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 1 and f"{path}:2:" in result.stdout and says in result.stdout, result.stdout
    assert "RE2" in result.stdout
