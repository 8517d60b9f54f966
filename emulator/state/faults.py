"""Fault counters kept in the shared state: `first`, `every`, `window` and `probability` count and draw across
every worker and replica, as emulator/faults/book.py does in one process.

A probability is drawn from the fault's count (seeded by the server seed, the fault and the test id), not from
a generator each process would keep: the n-th call draws the same number whichever replica gets it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from emulator.faults.book import FaultBook
from emulator.faults.rules import FaultRule, Who
from emulator.state.redis_state import RedisState


async def pick(
    state: RedisState, book: FaultBook, candidates: Iterable[FaultRule | None], who: Who
) -> FaultRule | None:
    """The first candidate that fires; every candidate that applies counts this call (FaultBook.pick's rules)."""
    applying = [rule for rule in candidates if rule is not None and rule.applies_to(who)]
    if not applying:
        return None
    elapsed, counts = await state.count_faults(who.test_id, [rule.id for rule in applying])
    for rule, count in zip(applying, counts, strict=True):
        rng = None
        if rule.pattern.probability is not None:
            rng = random.Random(f"{book.seed}|{rule.id}|{who.test_id}|{count}")
        if rule.pattern.fires(count, rng, elapsed):
            return rule
    return None
