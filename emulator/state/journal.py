"""The journal of a worker whose state is shared: entries are also written to the shared journal (Redis).

An entry goes there when its request is answered (with the request, in the one round trip of
emulator/state/redis_state.py `begin`), and again, whole, once its answer is over (in batches). Its id is the
shared journal's: until then it has a negative one of this worker's.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from emulator.journal import Entry, Journal

if TYPE_CHECKING:
    from emulator.state.redis_state import RedisState


class SharedJournal(Journal):
    def __init__(self, state: RedisState, limit: int, **bounds: Any) -> None:
        super().__init__(limit, **bounds)
        self.state = state
        self._ids = itertools.count(-1, -1)

    def settle(self, entry: Entry) -> None:
        super().settle(entry)
        self.state.queue_entry(entry)
