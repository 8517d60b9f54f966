"""Scenario regexes: RE2, so that no pattern and no prompt can make matching take more than linear time,
and a time budget for all the matching one request does.

RE2 (google-re2) never backtracks: `^(a+)+$` or `.*world` cost the same per character of prompt as `hello`.
Its syntax is Perl's without lookarounds, backreferences, possessive repeats or `(?x)`, and `\\w`, `\\d`, `\\s`,
`\\b` are ASCII; `\\p{L}`, `\\p{Han}`, … name letters of any script (docs/scenarios.md). A pattern RE2 rejects
is a problem `validate` reports at its file:line.

Linear is not free: a 10 MB prompt against a hundred regex rules is still a second of work. So matching runs
on a clock (`matching`): on the event loop it gets a short slice, and a request whose matching outgrows it —
or whose text is long — is matched again from the start in a worker thread (RE2 releases the GIL while it
runs), where it has the whole budget (`--match-budget-ms`). A regex reached after the budget is spent is not
run: its rule misses, and the journal says why (`MatchTimeout` → a miss, emulator/scenarios/engine.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import re2

_OPTIONS: dict[bool, Any] = {}


class RegexError(ValueError):
    """A pattern RE2 does not accept; the message says what and where to read about the syntax."""


class MatchTimeout(Exception):
    """The request's matching budget was spent before this regex could run: its rule misses."""

    def __init__(self, budget_ms: float) -> None:
        super().__init__(f"the {budget_ms:g} ms matching budget was spent before this regex could run")
        self.budget_ms = budget_ms


class MoveOffLoop(Exception):
    """Matching outgrew its slice of the event loop: start it again in a worker thread."""


class MatchClock:
    """The time one request's matching may take; `slice_s`: the part of it allowed on the event loop."""

    __slots__ = ("budget_ms", "deadline", "slice_deadline")

    def __init__(self, budget_s: float, slice_s: float | None = None) -> None:
        now = time.monotonic()
        self.budget_ms = budget_s * 1000
        self.deadline = now + budget_s
        self.slice_deadline = now + slice_s if slice_s is not None else None

    def check(self) -> None:
        """Before a regex runs: move off the loop past the slice, miss past the budget."""
        now = time.monotonic()
        if self.slice_deadline is not None and now > self.slice_deadline:
            raise MoveOffLoop
        if now > self.deadline:
            raise MatchTimeout(self.budget_ms)


_clock: ContextVar[MatchClock | None] = ContextVar("match_clock", default=None)


@contextlib.contextmanager
def matching(budget_s: float, slice_s: float | None = None) -> Iterator[MatchClock]:
    """Regexes searched inside this block run on this clock (outside any such block they run unbounded)."""
    clock = MatchClock(budget_s, slice_s)
    token = _clock.set(clock)
    try:
        yield clock
    finally:
        _clock.reset(token)


def check_slice() -> None:
    """Between rules: MoveOffLoop once matching on the event loop has outgrown its slice."""
    clock = _clock.get()
    if clock is not None and clock.slice_deadline is not None and time.monotonic() > clock.slice_deadline:
        raise MoveOffLoop


class Regex:
    """One compiled scenario regex; `search` is `re.search`, on the request's clock."""

    __slots__ = ("pattern", "_compiled")

    def __init__(self, pattern: str, ignore_case: bool = False) -> None:
        self.pattern = pattern
        try:
            self._compiled = re2.compile(pattern, _options(ignore_case))
        except re2.error as error:
            reason = (
                error.args[0].decode("utf-8", "replace")
                if error.args and isinstance(error.args[0], bytes)
                else str(error)
            )
            raise RegexError(f"{reason} (scenario regexes are RE2: no lookarounds or backreferences)") from None

    def search(self, text: str) -> Any:
        clock = _clock.get()
        if clock is not None:
            clock.check()
        return self._compiled.search(text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)


def _options(ignore_case: bool) -> Any:
    options = _OPTIONS.get(ignore_case)
    if options is None:
        options = re2.Options()
        options.log_errors = False  # the error comes back as RegexError; RE2 would also print it to stderr
        options.case_sensitive = not ignore_case
        _OPTIONS[ignore_case] = options
    return options
