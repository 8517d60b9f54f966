"""Stored responses of the Responses API: what `previous_response_id`, GET, DELETE and `input_items` read.

Each stored response is one turn of a chain (emulator/protocols/chain_store.py): the request's new input items and the
response's output, kept once, pointing at the response it continues. Its conversation — the input items of the
chain, the earlier outputs included — is read along the chain, so a chain still works after older links were
evicted or deleted. Bounded in links and in bytes (least recently used out first).

Items and the Response object are kept as their JSON text (what GET sends, byte for byte): a quarter of the
memory of parsed objects, counted exactly, and nothing for the interpreter's collector to walk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from emulator.http import dumps
from emulator.protocols.chain_store import DEFAULT_BYTES, DEFAULT_LINKS, ChainedStore, Item, Link
from emulator.protocols.shared_turns import note

DEFAULT_LIMIT = DEFAULT_LINKS
Kept = tuple[bytes, int]  # the Response object as JSON, and how many of the link's items are its new input


class StoredResponse:
    """A stored response, read from its link."""

    __slots__ = ("link", "_body")

    def __init__(self, link: Link[Kept], body: Mapping[str, Any] | None = None) -> None:
        self.link = link
        self._body = body

    @property
    def text(self) -> bytes:
        """The Response object as JSON, as GET sends it."""
        return self.link.value[0]

    @property
    def body(self) -> Mapping[str, Any]:
        """The Response object."""
        if self._body is None:
            self._body = json.loads(self.link.value[0])
        return self._body

    @property
    def id(self) -> str:
        return self.body["id"]

    @property
    def test_id(self) -> str:
        return self.link.test_id

    @property
    def output(self) -> Sequence[Item]:
        return self.body["output"]

    @property
    def input_items(self) -> tuple[Item, ...]:
        """The chain's input: earlier inputs and outputs, then this request's input."""
        parent = self.link.parent
        earlier = parent.conversation() if parent is not None else []
        return (*earlier, *self.link.own_items()[: self.link.value[1]])

    @property
    def conversation(self) -> tuple[Item, ...]:
        """What a response chained to this one continues: its input items, then its output."""
        return tuple(self.link.conversation())


class ResponseStore(ChainedStore[Kept]):
    def __init__(self, limit: int = DEFAULT_LIMIT, max_bytes: int = DEFAULT_BYTES) -> None:
        super().__init__(limit, max_bytes, decode=json.loads)

    def put(
        self,
        body: Mapping[str, Any],
        new_input: Sequence[Item],
        previous: StoredResponse | None = None,
        test_id: str = "",
    ) -> StoredResponse:
        """Store a response: its request's own input items (not those it continues) and its output."""
        items = (*new_input, *body["output"])
        parent = previous.link if previous is not None else None
        text, body_text = dumps(items).encode(), dumps(body).encode()
        link = self._chains.put(
            body["id"],
            items,
            (body_text, len(new_input)),
            parent=parent,
            test_id=test_id,
            stored=text,
            size=len(text) + len(body_text),
        )
        note(
            "responses",
            body["id"],
            {
                "key": body["id"],
                "previous": previous.id if previous is not None else None,
                "test_id": test_id,
                "body": body,
                "new_input": list(new_input),
            },
        )
        return StoredResponse(link, body)

    def keep_reading(self, stored: StoredResponse, reading: Any, size: int) -> None:
        """What the protocol read from this response's conversation, kept (and counted) with it; None: let go."""
        self._chains.derive(stored.link, reading, size)

    def get(self, response_id: str) -> StoredResponse | None:
        link = self._chains.get(response_id)
        return StoredResponse(link) if link is not None else None

    def delete(self, response_id: str) -> bool:
        return self._chains.delete(response_id)

    def find_item(self, item_id: str) -> Item | None:
        """An input or output item of a stored response, the newest with that id (for `item_reference` inputs)."""
        return self._chains.find_item(item_id)
