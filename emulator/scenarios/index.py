"""A first-match index over rules: only rules that could match a request are tested, in their order.

Rules that require an exact, case-sensitive `last_user` text are filed under that text; every other
rule is tested for every request. Recorded scenarios (one rule per distinct request) thus cost about
the same to match with 10,000 rules as with 10.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from emulator.exchange import Exchange
from emulator.scenarios.matchers import AllOf, Condition, TextIs

T = TypeVar("T")


def exact_last_user(condition: Condition) -> str | None:
    """The text a rule's `last_user` must equal exactly, if its conditions demand one."""
    children = condition.children if isinstance(condition, AllOf) else (condition,)
    for child in children:
        if isinstance(child, TextIs) and child.subject == "last_user":
            matcher = child.matcher
            if matcher.kind == "equals" and not matcher.ignore_case:
                return matcher.values[0]
    return None


class RuleIndex(Generic[T]):
    def __init__(self, entries: Sequence[tuple[T, Condition]]) -> None:
        self._entries = list(entries)
        self._by_last_user: dict[str, list[int]] = {}
        self._always: list[int] = []
        for position, (_, condition) in enumerate(self._entries):
            text = exact_last_user(condition)
            if text is None:
                self._always.append(position)
            else:
                self._by_last_user.setdefault(text, []).append(position)

    def candidates(self, exchange: Exchange) -> Iterator[T]:
        """The rules that might match, in rule order."""
        filed = self._by_last_user.get(exchange.last_user_text)
        positions = heapq.merge(filed, self._always) if filed else self._always
        for position in positions:
            yield self._entries[position][0]
