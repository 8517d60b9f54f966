"""A first-match index over rules: only rules that could match a request are tested, in their order.

Rules that require an exact, case-sensitive `last_user` text are filed under that text; every other
rule is tested for every request. Recorded scenarios (one rule per distinct request) thus cost about
the same to match with 10,000 rules as with 10.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from emulator.exchange import Exchange
from emulator.scenarios.matchers import AllOf, Condition, TextIs

T = TypeVar("T")
MERGES_KEPT_UP_TO = 64  # unindexed rules: up to this many, each filed text keeps its merged list of candidates


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
        by_last_user: dict[str, list[int]] = {}
        always: list[int] = []
        for position, (_, condition) in enumerate(self._entries):
            text = exact_last_user(condition)
            if text is None:
                always.append(position)
            else:
                by_last_user.setdefault(text, []).append(position)
        self._by_last_user = by_last_user
        self._always = [self._entries[position][0] for position in always]
        self._always_positions = always
        self._merged: dict[str, list[T]] = {}  # a filed text's rules and the unindexed ones, in rule order

    def candidates(self, exchange: Exchange) -> Iterable[T]:
        """The rules that might match, in rule order."""
        text = exchange.last_user_text
        merged = self._merged.get(text)
        if merged is not None:
            return merged
        filed = self._by_last_user.get(text)
        if not filed:
            return self._always
        if len(self._always) > MERGES_KEPT_UP_TO:  # merged lists this long are not kept: merge lazily
            return _lazy(self._entries, filed, self._always_positions)
        positions = heapq.merge(filed, self._always_positions) if self._always_positions else filed
        merged = self._merged[text] = [self._entries[position][0] for position in positions]
        return merged


def _lazy(entries: list[tuple[T, Condition]], filed: list[int], always: list[int]) -> Iterable[T]:
    for position in heapq.merge(filed, always):
        yield entries[position][0]
