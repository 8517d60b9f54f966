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

import time
from contextvars import ContextVar
from typing import Any

import re2

_OPTIONS: dict[bool, Any] = {}


RE2_HINT = "scenario regexes are RE2: no lookarounds or backreferences"


class RegexError(ValueError):
    """A pattern RE2 does not accept: `reason` (RE2's words), `position` (where in the pattern the part RE2
    quotes starts; None if it quotes none)."""

    def __init__(self, pattern: str, said: str) -> None:
        reason, _, fragment = said.partition(": ")
        found = pattern.find(fragment) if fragment else -1
        self.reason = reason
        self.position = found if found >= 0 else None
        super().__init__(f"{reason} ({RE2_HINT})")


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


class matching:  # noqa: N801 - used as `with matching(...)`, like a function
    """Regexes searched inside this block run on this clock (outside any such block they run unbounded).

    (A class, not a generator context manager: it is entered for every request.)
    """

    __slots__ = ("clock", "_token")

    def __init__(self, budget_s: float, slice_s: float | None = None) -> None:
        self.clock = MatchClock(budget_s, slice_s)

    def __enter__(self) -> MatchClock:
        self._token = _clock.set(self.clock)
        return self.clock

    def __exit__(self, *exc: object) -> None:
        _clock.reset(self._token)


def check_slice() -> None:
    """Between rules: MoveOffLoop once matching on the event loop has outgrown its slice."""
    clock = _clock.get()
    if clock is not None and clock.slice_deadline is not None and time.monotonic() > clock.slice_deadline:
        raise MoveOffLoop


class Regex:
    """One compiled scenario regex; `search` is `re.search`, on the request's clock; `found` says only whether."""

    __slots__ = ("pattern", "_compiled", "_match")

    def __init__(self, pattern: str, ignore_case: bool = False) -> None:
        self.pattern = pattern
        try:
            self._compiled = re2.compile(pattern, _options(ignore_case))
            # RE2's own Match, without the wrapper's work on group offsets (a third of the cost), when it is there
            self._match = getattr(self._compiled, "_regexp", None)
        except re2.error as error:
            said = error.args[0] if error.args else b""
            raise RegexError(
                pattern, said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
            ) from None

    def search(self, text: str) -> Any:
        clock = _clock.get()
        if clock is not None:
            clock.check()
        return self._compiled.search(text)

    def found(self, text: str) -> bool:
        clock = _clock.get()
        if clock is not None:
            clock.check()
        if self._match is None:
            return self._compiled.search(text) is not None
        encoded = _encoded(text)
        return self._match.Match(_UNANCHORED, encoded, 0, len(encoded))[0][0] != -1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)


_UNANCHORED = re2._Anchor.UNANCHORED
_last: tuple[str, bytes] = ("", b"")  # the last text encoded: the rules of one request search the same text


def _encoded(text: str) -> bytes:
    global _last
    last = _last
    if last[0] is text:
        return last[1]
    encoded = text.encode("utf-8", "surrogatepass")
    _last = (text, encoded)
    return encoded


def _options(ignore_case: bool) -> Any:
    options = _OPTIONS.get(ignore_case)
    if options is None:
        options = re2.Options()
        options.log_errors = False  # the error comes back as RegexError; RE2 would also print it to stderr
        options.case_sensitive = not ignore_case
        _OPTIONS[ignore_case] = options
    return options
