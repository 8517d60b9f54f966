"""Stored conversations across replicas: a turn kept on one is in Redis before its reply is sent, and a
replica asked to continue a chain it does not hold reads the missing turns first."""

from __future__ import annotations

from typing import Any

from emulator.protocols.base import Adapter
from emulator.protocols.shared_turns import Record
from emulator.state.redis_state import RedisState

CONTINUED = "continued"


async def fetch_continued(state: RedisState, adapter: Adapter, body: Any, test_id: str) -> None:
    """The turns of the chain a request continues that this process lacks; a thread's turn is claimed too
    (each is continued once, whichever replica gets the request)."""
    wanted = adapter.continues(body)
    if wanted is None:
        return
    store, key = wanted
    claimed = await state.mark(store, key, CONTINUED) if store == "threads" else True
    await fetch_chain(state, adapter, store, key)
    if not claimed:
        adapter.mark_continued(key, test_id)


async def fetch_chain(state: RedisState, adapter: Adapter, store: str, key: str) -> None:
    """The turns up to `key` that this process lacks, kept here (oldest first)."""
    for record in await state.chain(store, key, adapter.holds):
        adapter.adopt(record, continued=False)


async def share(state: RedisState, records: list[Record]) -> None:
    if records:
        await state.put_records(records)
