"""`serve` flags for the limits that keep one request from stalling the server or filling its memory.

Each flag has its TOKENHUB_EMULATOR_* variable (the flag wins) and its default in `Settings`; docs/limits.md
says what happens at each limit.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from emulator.cli.options import integer, number, option
from emulator.config import Settings


@dataclass(frozen=True)
class LimitFlag:
    setting: str
    kind: type  # int (at least 1, or 0 where `zero`) or float (above 0, or at least 0 where `zero`)
    help: str
    zero: bool = False  # 0 is a value it takes

    @property
    def flag(self) -> str:
        return "--" + self.setting.replace("_", "-")


LIMIT_FLAGS = (
    LimitFlag("journal_entries", int, "requests the journal keeps (oldest out first)"),
    LimitFlag("journal_bytes", int, "bytes the journal keeps, about (oldest out first)"),
    LimitFlag("journal_body_bytes", int, "a request body larger than this is journaled in part", zero=True),
    LimitFlag("journal_header_bytes", int, "a header value longer than this is journaled cut", zero=True),
    LimitFlag("max_header_bytes", int, "a request head (request line and headers) larger than this gets a 431"),
    LimitFlag("control_body_bytes", int, "a control API body larger than this gets a 413"),
    LimitFlag("store_bytes", int, "bytes each store of conversations (stored responses, threads) keeps, about"),
    LimitFlag("max_rendered_chars", int, "what one reply's templates may render to, in characters"),
    LimitFlag("match_budget_ms", float, "time scenario regexes may take for one request, in all (ms)"),
    LimitFlag("header_timeout_s", float, "a request's head must arrive within this (s)"),
    LimitFlag("body_timeout_s", float, "a request body must make progress at least this often (s)"),
    LimitFlag("keep_alive_s", float, "an idle keep-alive connection is closed after this (s)"),
    LimitFlag("max_connections", int, "open connections at once"),
    LimitFlag("test_state_ttl_s", float, "a test id's own state idle this long is forgotten (s)"),
    LimitFlag("shutdown_grace_s", float, "how long open answers get to end when the server stops (s)", zero=True),
)


def add_serve_flags(serve: argparse.ArgumentParser) -> None:
    defaults = Settings()
    group = serve.add_argument_group("limits (docs/limits.md)")
    for limit in LIMIT_FLAGS:
        default = getattr(defaults, limit.setting)
        if limit.kind is int:
            check = integer(0 if limit.zero else 1, None, "a whole number")
        else:
            check = number(-1e-9 if limit.zero else 0.0, "a number")
        option(
            serve,
            limit.flag,
            default=default,
            shown_default="what the descriptor limit allows" if default is None else None,
            check=check,
            metavar="N",
            help=limit.help,
            group=group,
        )


def limits_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The limits as Settings keywords (their flags, else variables, else defaults)."""
    return {limit.setting: getattr(args, limit.setting) for limit in LIMIT_FLAGS}
