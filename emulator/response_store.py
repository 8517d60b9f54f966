"""Stored responses of the Responses API: what `previous_response_id`, GET, DELETE and `input_items` read.

Each stored response keeps the whole conversation that led to it — the input items of its chain, the
earlier outputs included — so that a chain still works after older links were evicted or deleted. Items
are shared between links, not copied. The store is bounded (least recently used out first), so memory
stays flat however long the emulator runs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_LIMIT = 10_000

Item = Mapping[str, Any]


@dataclass(frozen=True)
class StoredResponse:
    body: Mapping[str, Any]  # the Response object, as GET returns it
    input_items: tuple[Item, ...]  # the chain's input: earlier inputs and outputs, then this request's input
    test_id: str = ""  # the x-emulator-test-id it was created under

    @property
    def id(self) -> str:
        return self.body["id"]

    @property
    def output(self) -> Sequence[Item]:
        return self.body["output"]

    @property
    def conversation(self) -> tuple[Item, ...]:
        """What a response chained to this one continues: its input items, then its output."""
        return (*self.input_items, *self.output)


class ResponseStore:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._responses: OrderedDict[str, StoredResponse] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, response: StoredResponse) -> None:
        with self._lock:
            self._responses[response.id] = response
            self._responses.move_to_end(response.id)
            while len(self._responses) > self._limit:
                self._responses.popitem(last=False)

    def get(self, response_id: str) -> StoredResponse | None:
        with self._lock:
            response = self._responses.get(response_id)
            if response is not None:
                self._responses.move_to_end(response_id)
            return response

    def delete(self, response_id: str) -> bool:
        with self._lock:
            return self._responses.pop(response_id, None) is not None

    def find_item(self, item_id: str) -> Item | None:
        """An input or output item of any stored response, newest first (for `item_reference` inputs)."""
        for response in self._newest_first():
            for item in reversed(response.conversation):
                if item.get("id") == item_id:
                    return item
        return None

    def clear(self, test_id: str | None = None) -> None:
        with self._lock:
            if test_id is None:
                self._responses.clear()
                return
            for key in [k for k, r in self._responses.items() if r.test_id == test_id]:
                del self._responses[key]

    def __len__(self) -> int:
        return len(self._responses)

    def _newest_first(self) -> Iterator[StoredResponse]:
        with self._lock:
            responses = list(self._responses.values())
        return reversed(responses)
