"""`serve` flags for the limits that keep one request from stalling the server or filling its memory.

Each flag has its TOKENHUB_EMULATOR_* variable (the flag wins) and its default in `Settings`; docs/limits.md
says what happens at each limit.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

from emulator.config import Settings, env_default, env_name


@dataclass(frozen=True)
class LimitFlag:
    setting: str
    kind: type  # int or float
    help: str
    low: float = 1  # the smallest value accepted

    @property
    def flag(self) -> str:
        return "--" + self.setting.replace("_", "-")


LIMIT_FLAGS = (
    LimitFlag("journal_entries", int, "requests the journal keeps (oldest out first)"),
    LimitFlag("journal_bytes", int, "bytes the journal keeps, about (oldest out first)"),
    LimitFlag("journal_body_bytes", int, "a request body larger than this is journaled in part", low=0),
    LimitFlag("journal_header_bytes", int, "a header value longer than this is journaled cut", low=0),
    LimitFlag("max_header_bytes", int, "a request head (request line and headers) larger than this gets a 431"),
    LimitFlag("control_body_bytes", int, "a control API body larger than this gets a 413"),
    LimitFlag("store_bytes", int, "bytes each store of conversations (stored responses, threads) keeps, about"),
    LimitFlag("max_rendered_chars", int, "what one reply's templates may render to, in characters"),
    LimitFlag("match_budget_ms", float, "time scenario regexes may take for one request, in all (ms)", low=0.001),
    LimitFlag("header_timeout_s", float, "a request's head must arrive within this (s)", low=0.001),
    LimitFlag("body_timeout_s", float, "a request body must make progress at least this often (s)", low=0.001),
    LimitFlag("keep_alive_s", float, "an idle keep-alive connection is closed after this (s)", low=0.001),
    LimitFlag("max_connections", int, "open connections at once (default: what the descriptor limit allows)"),
    LimitFlag("test_state_ttl_s", float, "a test id's own state idle this long is forgotten (s)", low=0.001),
    LimitFlag("shutdown_grace_s", float, "how long open answers get to end when the server stops (s)", low=0),
)


def add_serve_flags(serve: argparse.ArgumentParser) -> None:
    defaults = Settings()
    group = serve.add_argument_group("limits (docs/limits.md)")
    for limit in LIMIT_FLAGS:
        default = getattr(defaults, limit.setting)
        shown = "by the descriptor limit" if default is None else _shown(default)
        group.add_argument(
            limit.flag,
            default=env_default(limit.setting),
            metavar="N",
            help=f"{limit.help} (default {shown}; {env_name(limit.setting)})",
        )


def limits_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The limits given by flag or variable, as Settings keywords; SystemExit naming a bad one."""
    given = {}
    for limit in LIMIT_FLAGS:
        raw = getattr(args, limit.setting, None)
        if raw is None:
            continue
        try:
            value = limit.kind(str(raw).strip().replace("_", ""))
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < limit.low:
            noun = "an integer" if limit.kind is int else "a number"
            raise SystemExit(
                f"tokenhub-emulator: {limit.flag} (or {env_name(limit.setting)}) must be {noun} of at least "
                f"{_shown(limit.low)}, got {raw!r}"
            )
        given[limit.setting] = value
    return given


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
