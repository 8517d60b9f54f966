"""The environment for a pytest run in a subprocess that needs only the emulator's plugin."""

from __future__ import annotations

import os
from collections.abc import Mapping

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
