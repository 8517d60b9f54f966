"""Turns of stored conversations on their way to the shared state.

A store (the Responses API's stored responses, the Messages API's threads) notes each turn it keeps here; when
the state is shared, the pipeline collects them (`collecting`) and writes them to Redis before the reply
goes out, and a replica that gets a later turn of the chain reads them back (`Adapter.adopt`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

Record = tuple[str, str, Mapping[str, Any]]  # (store, key, the turn as JSON)

kept_turns: contextvars.ContextVar[list[Record] | None] = contextvars.ContextVar("kept_turns", default=None)


def note(store: str, key: str, record: Mapping[str, Any]) -> None:
    """A turn a store kept: shared when someone collects them (a server with --state), else nothing."""
    collected = kept_turns.get()
    if collected is not None:
        collected.append((store, key, record))
