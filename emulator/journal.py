"""The request journal: what each request asked, which rule answered, and what was sent back.

Kept in memory, bounded. API keys never leave it: an entry's headers are masked when they are first read
(the request path only keeps the headers it was given). The control API serves it and the resilience
report reads it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from emulator.http import mask_key

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"})
TEST_ID_HEADER = "x-emulator-test-id"


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    shown = {}
    for name, value in headers.items():
        name = name.lower()
        if name in SECRET_HEADERS:
            scheme, _, secret = value.partition(" ")
            value = f"{scheme} {mask_key(secret)}" if secret else mask_key(value)
        shown[name] = value
    return shown


@dataclass
class Entry:
    id: int
    request_id: str  # what the x-request-id / request-id response headers carry
    time: float  # wall-clock seconds when the request arrived
    method: str
    path: str
    protocol: str | None
    test_id: str
    model: str | None = None
    stream: bool = False
    status: int | None = None
    rule: str | None = None
    action: str | None = None  # reply | fail | generated | rejected | fault | rate_limited
    fault: str | None = None  # what was injected, when a fault answered
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None  # the error body sent, when there was one
    misses: list[dict[str, Any]] = field(default_factory=list)  # nearest rules when none matched
    started: float = 0.0  # monotonic clock, for durations
    first_byte_ms: float | None = None
    duration_ms: float | None = None
    chunk_times_ms: list[float] = field(default_factory=list)  # when each stream event was written
    disconnected: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("started")
        return data


class Unread:
    """A value kept as it came until someone reads it: `make(raw)` is worked out then, once."""

    __slots__ = ("raw", "make")

    def __init__(self, raw: Any, make: Callable[[Any], Any]) -> None:
        self.raw = raw
        self.make = make


def _worked_out(name: str) -> property:
    """Entry.<name> as a property over `_<name>`, which may hold an Unread until it is first read.

    The request path stores what it has (the request's headers, the response's raw header list) and the
    decoding and masking happen only for the entries someone looks at.
    """
    slot = "_" + name

    def get(entry: Entry) -> Any:
        value = getattr(entry, slot)
        if type(value) is Unread:
            value = value.make(value.raw)
            setattr(entry, slot, value)
        return value

    def set(entry: Entry, value: Any) -> None:
        setattr(entry, slot, value)

    return property(get, set)


Entry.headers = _worked_out("headers")  # type: ignore[assignment]
Entry.response_headers = _worked_out("response_headers")  # type: ignore[assignment]


def decoded_headers(raw: Any) -> dict[str, str]:
    """ASGI (bytes, bytes) header pairs as a dict of text; a repeated name keeps its last value.

    Names and short values come from `_texts`, the text of those seen before: a client sends the same headers
    again and again, and the journal keeps 10,000 requests' headers — as shared strings, not 10,000 copies of
    each (fewer objects to allocate, hold and free: at the journal's length that is a measurable share of
    what a request costs). Secret values (keys) are decoded every time, never kept there.
    """
    texts = _texts
    headers = {}
    for name, value in raw:
        text = texts.get(name)
        if text is None:
            text = _remember(name)
        if text in SECRET_HEADERS:
            headers[text] = value.decode("latin-1")
            continue
        known = texts.get(value)
        headers[text] = known if known is not None else _remember(value)
    return headers


TEXTS_KEPT = 4096  # header names and values remembered (the table starts over when full)
TEXT_KEPT_UP_TO = 256  # bytes: longer values are decoded every time
_texts: dict[bytes, str] = {}


def _remember(data: bytes) -> str:
    text = data.decode("latin-1")
    if len(data) <= TEXT_KEPT_UP_TO:
        if len(_texts) >= TEXTS_KEPT:
            _texts.clear()
        _texts[bytes(data)] = text
    return text


class Journal:
    def __init__(self, limit: int = 10_000) -> None:
        self._entries: deque[Entry] = deque(maxlen=limit)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def open(
        self, method: str, path: str, headers: Mapping[str, str], protocol: str | None, request_id: str = ""
    ) -> Entry:
        # What Entry(...) sets, in its order (the tests hold the two equal): its __init__ costs several times
        # as much, for the two properties and the default factories.
        entry = object.__new__(Entry)
        entry.id = next(self._ids)
        entry.request_id = request_id
        entry.time = time.time()
        entry.method = method
        entry.path = path
        entry.protocol = protocol
        entry.test_id = headers.get(TEST_ID_HEADER, "")
        entry.model = None
        entry.stream = False
        entry.status = None
        entry.rule = None
        entry.action = None
        entry.fault = None
        entry._headers = Unread(headers, masked_headers)  # masked when first read
        entry.body = None
        entry._response_headers = {}
        entry.error = None
        entry.misses = []
        entry.started = time.monotonic()
        entry.first_byte_ms = None
        entry.duration_ms = None
        entry.chunk_times_ms = []
        entry.disconnected = False
        with self._lock:
            self._entries.append(entry)
        return entry

    def entries(self, **filters: Any) -> list[Entry]:
        """Entries in arrival order; each keyword keeps those whose field equals it (None: no filter)."""
        with self._lock:
            entries = list(self._entries)
        return [e for e in entries if all(v is None or getattr(e, k) == v for k, v in filters.items())]

    def clear(self, test_id: str | None = None) -> None:
        with self._lock:
            if test_id is None:
                self._entries.clear()
            else:
                kept = [e for e in self._entries if e.test_id != test_id]
                self._entries.clear()
                self._entries.extend(kept)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries())


def elapsed_ms(entry: Entry) -> float:
    return round((time.monotonic() - entry.started) * 1000, 3)


CONTROL_PREFIX = "/_emulator"


def current_entry(scope: Any) -> Entry | None:
    return scope.get("state", {}).get("journal_entry")
