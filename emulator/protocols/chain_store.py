"""Conversations kept by the server, each turn stored once: the Responses API's stored responses
(`previous_response_id`), the Messages API's threads.

A turn (a `Link`) keeps only what it added — the request's new items and the answer's — and points at the turn
it continues; a conversation is read by walking back along its chain. So a chain of n turns holds n turns'
items, not n conversations of up to n turns each, and storing a turn costs what the turn holds.

The store is bounded twice, like the journal: at most `max_links` turns reachable by key and about `max_bytes`
bytes, least recently used out first. A turn that is no longer reachable by its key (evicted, deleted) stays in
memory — and in the byte count — as long as a later turn of its chain is kept, so a chain still continues after
its older turns went; it goes when the last turn that needs it goes. A conversation larger than the whole
budget is not kept: continuing it is answered as for an expired one.

Items carry ids (`msg_…`, `fc_…`): `find_item` finds the newest kept item with an id without scanning anything.

A store may keep each turn's items in a stored form of its own (`decode` reads it back), such as the JSON text
the stored responses keep: text is what it weighs, and the interpreter's collector never has to walk it — a
store full of parsed items is hundreds of thousands of objects, and every full collection visits each of them.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

V = TypeVar("V")
Item = Mapping[str, Any]

DEFAULT_LINKS = 10_000
DEFAULT_BYTES = 128 * 1024 * 1024
LINK_BYTES = 600  # a link's own objects, besides its items and value
OBJECT_BYTES = 64  # what one JSON value costs in memory besides its text (a dict, a list, a short string)


def estimated_bytes(*values: Any) -> int:
    """About what JSON-like values hold in memory: their JSON text, and an object's overhead per value."""
    text = json.dumps(values, ensure_ascii=False, default=str)
    return len(text) + OBJECT_BYTES * (text.count(",") + text.count("{") + text.count("["))


class Link(Generic[V]):
    """One kept turn: what it added (`items`), what it is (`value`), the turn it continues (`parent`)."""

    __slots__ = (
        "key",
        "parent",
        "items",
        "_decode",
        "value",
        "test_id",
        "size",
        "length",
        "derived",
        "_derived_size",
        "_refs",
        "_kept",
    )

    def __init__(
        self,
        key: str,
        parent: Link[V] | None,
        items: Any,
        count: int,
        value: V,
        test_id: str,
        size: int,
        decode: Callable[[Any], Sequence[Item]] | None = None,
    ) -> None:
        self.key = key
        self.parent = parent
        self._decode = decode  # `items` are in the store's own form: this reads them back
        self.length: int = count + (parent.length if parent is not None else 0)  # items in the whole conversation
        self.derived: Any = None  # what a protocol worked out from the conversation (see ChainStore.derive)
        self._derived_size = 0
        self.items = items
        self.value = value
        self.test_id = test_id
        self.size = size
        self._refs = 0  # 1 while reachable by key, plus one per kept child
        self._kept = True  # counted in the store's bytes

    def chain(self) -> list[Link[V]]:
        """This turn and every turn before it, oldest first."""
        links = []
        link: Link[V] | None = self
        while link is not None:
            links.append(link)
            link = link.parent
        links.reverse()
        return links

    def own_items(self) -> Sequence[Item]:
        """The items this turn added."""
        return self.items if self._decode is None else self._decode(self.items)

    def conversation(self) -> list[Item]:
        """Every item of the chain up to and including this turn's, in order."""
        return [item for link in self.chain() for item in link.own_items()]


class ChainStore(Generic[V]):
    def __init__(
        self,
        max_links: int = DEFAULT_LINKS,
        max_bytes: int = DEFAULT_BYTES,
        item_id: Callable[[Item], Any] = lambda item: item.get("id"),
        decode: Callable[[Any], Sequence[Item]] | None = None,
    ) -> None:
        self.max_links = max_links
        self.max_bytes = max_bytes
        self._item_id = item_id
        self._decode = decode  # items kept in a form of the store's own (`put`'s `stored`): this reads them back
        self._keyed: OrderedDict[str, Link[V]] = OrderedDict()
        self._items: dict[Any, Link[V]] = {}  # item id → the newest kept link holding it
        self._bytes = 0
        self._lock = threading.RLock()

    def put(
        self,
        key: str,
        items: Sequence[Item],
        value: V,
        *,
        parent: Link[V] | None = None,
        test_id: str = "",
        stored: Any = None,
        size: int | None = None,
    ) -> Link[V]:
        """Keep a turn under `key` (a key already kept is replaced); it continues `parent`, a link of this store.

        `stored`: the items in the store's own form (read back by its `decode`), kept instead of them; `size`: what
        the items and the value weigh, when the caller knows it better than an estimate."""
        kept_items: Any = stored if stored is not None else tuple(items)
        weight = size if size is not None else estimated_bytes(items, value)
        decode = self._decode if stored is not None else None
        link = Link(key, parent, kept_items, len(items), value, test_id, LINK_BYTES + weight, decode)
        with self._lock:
            if parent is not None and not parent._kept:  # its chain went meanwhile: nothing left to continue
                link.parent = parent = None
                link.length = len(link.items)
            if parent is not None:
                parent._refs += 1
            self._drop_key(key)
            link._refs = 1
            self._keyed[key] = link
            self._bytes += link.size
            for item in items:
                item_id = self._item_id(item)
                if item_id is not None:
                    self._items[item_id] = link
            self._evict()
        return link

    def derive(self, link: Link[V], derived: Any, size: int) -> None:
        """Keep what a protocol worked out from `link`'s conversation with it (so that the next turn need not
        work it out again), counted in the budget; None lets it go. Kept by the newest turn of a chain only,
        or a chain would hold its conversation many times over."""
        with self._lock:
            if not link._kept:  # gone already: nothing to keep it with
                link.derived = None
                return
            old = link._derived_size
            link.derived = derived
            delta = (size if derived is not None else 0) - old
            link.size += delta
            self._bytes += delta
            link._derived_size = size if derived is not None else 0
            self._evict()

    def get(self, key: str, test_id: str | None = None) -> Link[V] | None:
        """The turn kept under `key` (and of this test id, when one is given), now the most recently used."""
        with self._lock:
            link = self._keyed.get(key)
            if link is None or (test_id is not None and link.test_id != test_id):
                return None
            self._keyed.move_to_end(key)
            return link

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._drop_key(key)

    def find_item(self, item_id: Any) -> Item | None:
        """The newest kept item with this id, of any turn."""
        with self._lock:
            link = self._items.get(item_id)
        if link is None:
            return None
        return next((item for item in link.own_items() if self._item_id(item) == item_id), None)

    def clear(self, test_id: str | None = None) -> None:
        with self._lock:
            for key in [k for k, link in self._keyed.items() if test_id is None or link.test_id == test_id]:
                self._drop_key(key)

    def keys(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._keyed))

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._keyed)

    # ------------------------------------------------------------ under the lock

    def _evict(self) -> None:
        while self._keyed and (self._bytes > self.max_bytes or len(self._keyed) > self.max_links):
            self._drop_key(next(iter(self._keyed)))

    def _drop_key(self, key: str) -> bool:
        link = self._keyed.pop(key, None)
        if link is None:
            return False
        self._release(link)
        return True

    def _release(self, link: Link[V] | None) -> None:
        """One reference less; a link no one needs leaves the byte count, and so, perhaps, does its parent."""
        while link is not None:
            link._refs -= 1
            if link._refs > 0:
                return
            link._kept = False
            link.derived = None
            self._bytes -= link.size
            for item in link.own_items():
                item_id = self._item_id(item)
                if item_id is not None and self._items.get(item_id) is link:
                    del self._items[item_id]
            link = link.parent


class ChainedStore(Generic[V]):
    """What a protocol's store of conversations shares (stored responses, threads): a ChainStore underneath."""

    def __init__(
        self,
        limit: int,
        max_bytes: int,
        item_id: Callable[[Item], Any] = lambda item: item.get("id"),
        decode: Callable[[Any], Sequence[Item]] | None = None,
    ) -> None:
        self._chains: ChainStore[V] = ChainStore(limit, max_bytes, item_id, decode)

    def clear(self, test_id: str | None = None) -> None:
        self._chains.clear(test_id)

    @property
    def bytes(self) -> int:
        return self._chains.bytes

    def __len__(self) -> int:
        return len(self._chains)
