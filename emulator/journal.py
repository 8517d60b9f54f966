"""The request journal: what each request asked, which rule answered, and what was sent back.

Kept in memory and bounded twice: at most `limit` entries and about `max_bytes` bytes, oldest out first.
What an entry keeps is bounded too: a body larger than `body_bytes` is kept in part (long strings and long
lists cut, each cut marked with what was left out) and a header value longer than `header_bytes` is cut
with a marker. A body within the bound is kept as the bytes that came, and read as JSON when someone looks.

Keys never enter it: secret headers (Authorization, x-api-key, cookies, the control token, …) are masked
when the entry is made, so the journal never holds them.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from emulator.http import mask_key
from emulator.names import CONTROL_TOKEN_HEADER, TEST_ID_HEADER

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
        CONTROL_TOKEN_HEADER,
    }
)
_CREDENTIAL_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "apikey", "api-key"})
DEFAULT_ENTRIES = 10_000
DEFAULT_BYTES = 64 * 1024 * 1024
DEFAULT_BODY_BYTES = 64 * 1024
DEFAULT_HEADER_BYTES = 4 * 1024
ENTRY_BYTES = 1_000  # what an entry costs besides its headers and body: the object, its fields, response headers
CHUNK_TIME_BYTES = 32  # one float in chunk_times_ms
HEADER_NAME_BYTES = 16  # a header name (a string shared by every entry) and its place in the dict


def masked_value(name: str, value: str) -> str:
    """A secret header's value with its secrets masked: a credential after its scheme, each cookie's value."""
    if value.startswith("Bearer ") and name == "authorization":  # nearly every request: the short way
        return "Bearer " + mask_key(value[7:].strip())
    if name in ("cookie", "set-cookie"):
        return "; ".join(_masked_cookie(part) for part in value.split(";"))
    scheme, blank, credential = value.strip().partition(" ")
    if blank and scheme.lower() in _CREDENTIAL_SCHEMES and name in ("authorization", "proxy-authorization"):
        return f"{scheme} {mask_key(credential.strip())}"
    return mask_key(value)


def _masked_cookie(part: str) -> str:
    name, equals, value = part.strip().partition("=")
    return f"{name}={mask_key(value)}" if equals else mask_key(name)


def cut_text(text: str, keep: int) -> str:
    return f"{text[:keep]}…[{len(text) - keep} more characters]"


def bounded_copy(value: Any, budget: int) -> Any:
    """A copy of a JSON value that keeps about `budget` bytes of it: long strings cut, lists and objects cut
    after the items that fit, each cut marked with what was left out. The work is bounded by `budget` too."""
    left = [budget]

    def copy(item: Any) -> Any:
        if isinstance(item, str):
            keep = max(left[0], 0)
            left[0] -= len(item) + 2
            return item if len(item) <= keep else cut_text(item, keep)
        left[0] -= 2
        if isinstance(item, list):
            kept: list[Any] = []
            for index, member in enumerate(item):
                if left[0] <= 0:
                    kept.append(f"…[{len(item) - index} more items]")
                    break
                left[0] -= 1
                kept.append(copy(member))
            return kept
        if isinstance(item, dict):
            fields: dict[str, Any] = {}
            for index, (key, member) in enumerate(item.items()):
                if left[0] <= 0:
                    fields["…"] = f"[{len(item) - index} more keys]"
                    break
                left[0] -= len(key) + 4
                fields[key] = copy(member)
            return fields
        left[0] -= 6
        return item

    return copy(value)


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
    action: str | None = None  # reply | fail | generated | rejected | fault | rate_limited | loop_stopped
    fault: str | None = None  # what was injected, when a fault answered
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # the JSON body (kept in part past the journal's body bound), or its text if not JSON
    body_bytes: int | None = None  # the size of the body as it came
    response_headers: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None  # the error body sent, when there was one
    misses: list[dict[str, Any]] = field(default_factory=list)  # nearest rules when none matched
    started: float = 0.0  # monotonic clock, for durations
    first_byte_ms: float | None = None
    duration_ms: float | None = None
    chunk_times_ms: list[float] = field(default_factory=list)  # when each stream event was written
    disconnected: bool = False
    time_scale: float | None = None  # the time scale the waits were carried out at, when one was set
    planned_ms: list[float] = field(default_factory=list)  # when each event (or a reply's body) was due, unscaled
    loop: dict[str, Any] | None = None  # the agent-loop guard's flag: what repeats, how often, whether stopped
    size: int | None = field(default=0, repr=False, compare=False)  # bytes counted by the journal; None: evicted

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("started")
        data.pop("size")
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


Entry.response_headers = _worked_out("response_headers")  # type: ignore[assignment]


def _body(entry: Entry) -> Any:
    """The body as kept: bytes (a body within the bound) are read as JSON each time, never kept parsed."""
    value = entry._body  # type: ignore[attr-defined]
    if type(value) is bytes or type(value) is bytearray:
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, too deep: its text, as it was rejected for it
            return value.decode("utf-8", "replace")
    return value


def _set_body(entry: Entry, value: Any) -> None:
    entry._body = value  # type: ignore[attr-defined]


Entry.body = property(_body, _set_body)


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
    def __init__(
        self,
        limit: int = DEFAULT_ENTRIES,
        *,
        max_bytes: int = DEFAULT_BYTES,
        body_bytes: int = DEFAULT_BODY_BYTES,
        header_bytes: int = DEFAULT_HEADER_BYTES,
    ) -> None:
        self._entries: deque[Entry] = deque()
        self._limit = limit
        self.max_bytes = max_bytes
        self.body_bytes = body_bytes
        self.header_bytes = header_bytes
        self._bytes = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def open(
        self, method: str, path: str, headers: Mapping[str, str], protocol: str | None, request_id: str = ""
    ) -> Entry:
        # What Entry(...) sets, in its order (the tests hold the two equal): its __init__ costs several times
        # as much, for the two properties and the default factories.
        # fast path: mirrors Entry's dataclass __init__; pinned by tests/unit/server/test_fastpaths.py::test_a_journal_entry_is_the_entry_its_dataclass_would_make
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
        entry.headers, size = self._kept_headers(headers)
        entry._body = None  # type: ignore[attr-defined]
        entry.body_bytes = None
        entry._response_headers = {}  # type: ignore[attr-defined]
        entry.error = None
        entry.misses = []
        entry.started = time.monotonic()
        entry.first_byte_ms = None
        entry.duration_ms = None
        entry.chunk_times_ms = []
        entry.disconnected = False
        entry.time_scale = None
        entry.planned_ms = []
        entry.loop = None
        entry.size = ENTRY_BYTES + size
        with self._lock:
            self._entries.append(entry)
            self._bytes += entry.size
            if self._bytes > self.max_bytes or len(self._entries) > self._limit:
                self._evict()
        return entry

    def _kept_headers(self, headers: Mapping[str, str]) -> tuple[dict[str, str], int]:
        """The headers as the entry keeps them (masked, cut), and about how many bytes they hold.

        Names come in lower case (ASGI); this runs for every request, so it leans on what C does fast.
        """
        kept = dict(headers)
        for name in SECRET_HEADERS.intersection(kept):
            kept[name] = masked_value(name, kept[name])
        size = sum(map(len, kept.values()))
        if size > self.header_bytes:  # a value may be longer than an entry keeps
            kept = {n: v if len(v) <= self.header_bytes else cut_text(v, self.header_bytes) for n, v in kept.items()}
            size = sum(map(len, kept.values()))
        return kept, size + HEADER_NAME_BYTES * len(kept)

    def keep_body(self, entry: Entry, raw: bytes | bytearray, parsed: Any = None, is_json: bool = False) -> None:
        """Keep what the request sent: within the body bound the bytes themselves, beyond it a bounded copy of
        the parsed body (`is_json`), or the start of its text. Counted when the entry is settled."""
        entry.body_bytes = len(raw)
        if len(raw) <= self.body_bytes:
            entry._body = raw  # type: ignore[attr-defined]
        elif is_json:
            entry._body = bounded_copy(parsed, self.body_bytes)  # type: ignore[attr-defined]
        else:
            text = bytes(raw[: self.body_bytes]).decode("utf-8", "replace")
            entry._body = cut_text(text, self.body_bytes)  # type: ignore[attr-defined]

    def settle(self, entry: Entry) -> None:
        """Count what the request and its answer added to an entry (the body, chunk times, an error body,
        misses), once it is over."""
        body = entry.body_bytes
        extra = 0 if body is None else body if body <= self.body_bytes else 2 * self.body_bytes  # a bounded copy's
        # objects weigh about twice its JSON
        extra += CHUNK_TIME_BYTES * (len(entry.chunk_times_ms) + len(entry.planned_ms))
        if entry.error is not None or entry.misses:
            extra += len(str(entry.error)) + len(str(entry.misses))
        if extra and entry.size is not None:
            with self._lock:
                entry.size += extra
                self._bytes += extra
                if self._bytes > self.max_bytes:
                    self._evict()

    def _evict(self) -> None:
        """Oldest out until within both bounds (the newest entry stays whatever it weighs). Holds the lock."""
        entries = self._entries
        while len(entries) > 1 and (self._bytes > self.max_bytes or len(entries) > self._limit):
            old = entries.popleft()
            self._bytes -= old.size or 0
            old.size = None

    @property
    def bytes(self) -> int:
        return self._bytes

    def entries(self, **filters: Any) -> list[Entry]:
        """Entries in arrival order; each keyword keeps those whose field equals it (None: no filter)."""
        with self._lock:
            entries = list(self._entries)
        return [e for e in entries if all(v is None or getattr(e, k) == v for k, v in filters.items())]

    def clear(self, test_id: str | None = None) -> None:
        with self._lock:
            gone = [e for e in self._entries if test_id is None or e.test_id == test_id]
            kept = [e for e in self._entries if test_id is not None and e.test_id != test_id]
            for entry in gone:
                entry.size = None
            self._entries.clear()
            self._entries.extend(kept)
            self._bytes = sum(e.size or 0 for e in kept)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries())


def elapsed_ms(entry: Entry) -> float:
    return round((time.monotonic() - entry.started) * 1000, 3)


def current_entry(scope: Any) -> Entry | None:
    return scope.get("state", {}).get("journal_entry")
