"""The protocols the emulator speaks: every list of protocols (the scenario key `endpoint`, the journal's and
the control API's filters, the OpenAPI document's enums, the scenario JSON schema) comes from here.

A new protocol is one module in emulator/protocols/ with its Adapter, one line in ADAPTERS, and its path in
each profile's `paths` (emulator/profiles.py). The first adapter answers what belongs to no protocol (its
envelope for a 404, its model list) unless another `claims` the caller.
"""

from __future__ import annotations

from emulator.protocols.anthropic_messages import MessagesAdapter
from emulator.protocols.base import Adapter
from emulator.protocols.openai_chat import ChatAdapter
from emulator.protocols.openai_responses import ResponsesAdapter

ADAPTERS: tuple[type[Adapter], ...] = (ChatAdapter, ResponsesAdapter, MessagesAdapter)
PROTOCOLS: tuple[str, ...] = tuple(adapter.protocol for adapter in ADAPTERS)


def adapters(store_bytes: int | None = None) -> list[Adapter]:
    """One of each, as a server runs them: their stores bounded to `store_bytes` (None: their default)."""
    return [adapter.made(store_bytes) for adapter in ADAPTERS]

