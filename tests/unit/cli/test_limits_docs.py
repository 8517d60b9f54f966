"""docs/limits.md stays in step with the limit flags: each is documented with its variable, and each flag the
document names is one `serve` (or `record`) takes. (tests/e2e/test_docs.py runs its examples.)"""

from __future__ import annotations

import re

from emulator.cli.limits import LIMIT_FLAGS
from emulator.cli.main import _parser
from emulator.config import env_name
from tests.helpers.servers import ROOT

LIMITS = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")


def test_every_limit_flag_is_documented_with_its_variable():
    for limit in LIMIT_FLAGS:
        assert f"`{limit.flag} " in LIMITS and env_name(limit.setting) in LIMITS, limit.flag


def test_every_documented_flag_is_taken():
    _, commands = _parser()
    taken = {flag for name in ("serve", "record") for a in commands[name]._actions for flag in a.option_strings}
    documented = set(re.findall(r"^\| `(--[a-z-]+)", LIMITS, flags=re.MULTILINE))
    assert documented and documented <= taken, documented - taken
