"""Sequence counters kept elsewhere (Redis): the engine asks, the pipeline fetches, the engine decides again.

The engine is synchronous and matching has no side effects, so a rule that needs its count raises
`CountNeeded` the first time; the pipeline gets the count in its one round trip to the shared state and
decides again with the count given (`given_counts`, a context variable: it follows the request into a
worker thread).
"""

from __future__ import annotations

import contextvars

from emulator.scenarios.engine import State

Slot = tuple[str, str]  # (test id, rule key)

given_counts: contextvars.ContextVar[dict[Slot, int] | None] = contextvars.ContextVar("given_counts", default=None)


class CountNeeded(Exception):
    """A matching rule steps through a sequence: its count is in the shared state."""

    def __init__(self, scope: str, key: str) -> None:
        super().__init__(f"sequence count of {key!r} in scope {scope!r}")
        self.slot: Slot = (scope, key)


class SharedCounters(State):
    """The engine's counters when they live in the shared state: answered from the counts the pipeline fetched."""

    def next(self, scope: str, key: str) -> int:
        given = given_counts.get()
        if given is not None and (scope, key) in given:
            return given[(scope, key)]
        raise CountNeeded(scope, key)
