"""The book of faults: run-time faults (control API), the counters and draws of every fault, and what each
journaled request was given (for the resilience report).

Counters (first N, every Nth) and the probability draws are kept per fault and per test id
(`x-emulator-test-id`), drawn from the server seed: the same calls in the same order fail the same way.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from emulator.errors import ApiError
from emulator.faults.rules import FaultRule, Who, header_to_mapping, parse_fault_mapping
from emulator.names import FAULT_HEADER
from emulator.specparse import INVALID, Collected, SpecReader

INJECTED_KEPT = 20_000  # the journal keeps 10,000 entries
MAX_SLOTS = 4096  # (fault, test id) counters and draws kept (~3 KB each); the least recently used go first


class FaultBook:
    """Run-time faults (control API); the counters and draws of every fault; what each request was given."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.runtime: dict[str, FaultRule] = {}
        self.started = time.monotonic()
        self.injected: dict[int, str] = {}  # journal entry id → label of the fault it got
        self.misbehaved: dict[int, dict[str, Any]] = {}  # journal entry id → what a behaviour fault sent
        self._counts: dict[tuple[str, str], int] = {}
        self._rngs: dict[tuple[str, str], random.Random] = {}
        self._headers: dict[str, FaultRule] = {}
        self._next_id = 1
        self._lock = threading.Lock()

    # run-time faults
    def new_id(self) -> str:
        with self._lock:
            fault_id = f"fault_{self._next_id}"
            self._next_id += 1
            return fault_id

    def add(self, rule: FaultRule) -> None:
        self.runtime[rule.id] = rule

    def remove(self, fault_id: str) -> bool:
        return self.runtime.pop(fault_id, None) is not None

    def clear(self) -> None:
        self.runtime.clear()

    def listed(self) -> list[FaultRule]:
        return list(self.runtime.values())

    # choosing
    def from_header(self, headers: Mapping[str, str]) -> FaultRule | None:
        """The request's own fault; ApiError 400 naming the header when it is wrong."""
        text = headers.get(FAULT_HEADER)
        if text is None:
            return None
        text = text.strip()
        rule = self._headers.get(text)
        if rule is None:
            collected = Collected()
            data = header_to_mapping(text)
            rule = parse_fault_mapping(SpecReader(collected), data, fault_id=f"header:{text}", source="header")
            if rule is INVALID:
                problem = collected.messages[0] if collected.messages else "it is empty"
                problem += "" if problem.endswith((".", "?")) else "."
                raise ApiError(400, f"Invalid header '{FAULT_HEADER}': {problem}", param=FAULT_HEADER)
            if len(self._headers) > 1000:
                self._headers.clear()
            self._headers[text] = rule
        return rule

    def pick(self, candidates: Iterable[FaultRule | None], who: Who) -> FaultRule | None:
        """The first candidate that fires; every candidate that applies counts this call."""
        chosen = None
        elapsed = time.monotonic() - self.started
        with self._lock:
            for rule in candidates:
                if rule is None or not rule.applies_to(who):
                    continue
                slot = (rule.id, who.test_id)
                count = self._counts.pop(slot, 0)  # popped and put back: the least recently used come first
                self._counts[slot] = count + 1
                rng = self._rngs.pop(slot, None)
                if rng is None and rule.pattern.probability is not None:  # ~3 KB each: only when a draw is needed
                    rng = random.Random(f"{self.seed}|{rule.id}|{who.test_id}")
                if rng is not None:
                    self._rngs[slot] = rng
                if rule.pattern.fires(count, rng, elapsed) and chosen is None:
                    chosen = rule
            while len(self._counts) > MAX_SLOTS:  # test ids and header texts without end: forget the oldest
                oldest = next(iter(self._counts))
                del self._counts[oldest]
                self._rngs.pop(oldest, None)
        return chosen

    def before_reply(
        self, header: FaultRule | None, who: Who, background: Iterable[FaultRule] = ()
    ) -> FaultRule | None:
        """Most specific first: the request's header, then run-time faults, then the scenarios' background."""
        return self.pick([header, *self.runtime.values(), *background], who)

    def record(self, entry_id: int | None, label: str) -> None:
        """Note what was injected into a journaled request, for the resilience report (as long as the journal)."""
        if entry_id is None:
            return
        self.injected[entry_id] = label
        if len(self.injected) > INJECTED_KEPT:
            del self.injected[next(iter(self.injected))]

    def record_behaviour(self, entry_id: int, detail: dict[str, Any]) -> None:
        """What a behaviour fault sent in a journaled request (the bad calls, the bad text), for the report."""
        self.misbehaved[entry_id] = detail
        if len(self.misbehaved) > INJECTED_KEPT:
            del self.misbehaved[next(iter(self.misbehaved))]

    def reset(self, test_id: str | None = None) -> None:
        with self._lock:
            if test_id is None:
                self._counts.clear()
                self._rngs.clear()
                self.injected.clear()
                self.misbehaved.clear()
                self.started = time.monotonic()
            else:
                for slot in [s for s in self._counts if s[1] == test_id]:
                    self._counts.pop(slot, None)
                    self._rngs.pop(slot, None)
