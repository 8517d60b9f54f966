"""The request journal: what each request asked, which rule answered, and what was sent back.

Kept in memory, bounded; keys are masked before they are stored. The control API serves it and
the resilience report reads it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
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


class Journal:
    def __init__(self, limit: int = 10_000) -> None:
        self._entries: deque[Entry] = deque(maxlen=limit)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def open(
        self, method: str, path: str, headers: Mapping[str, str], protocol: str | None, request_id: str = ""
    ) -> Entry:
        entry = Entry(
            id=next(self._ids),
            request_id=request_id,
            time=time.time(),
            method=method,
            path=path,
            protocol=protocol,
            test_id=headers.get(TEST_ID_HEADER, ""),
            headers=masked_headers(headers),
            started=time.monotonic(),
        )
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


class JournalMiddleware:
    """Opens a journal entry for every API request and records what went back: status, headers, timing.

    Handlers enrich the entry (model, rule, body) through `current_entry(scope)`. Control API paths
    (`/_emulator/…`) are not journaled.
    """

    def __init__(self, app: Any, journal: Journal, protocol_for: Any) -> None:
        self.app = app
        self.journal = journal
        self.protocol_for = protocol_for

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = scope.get("state", {}).get("request_id", "")
        entry = self.journal.open(scope["method"], scope["path"], headers, self.protocol_for(scope["path"]), request_id)
        scope.setdefault("state", {})["journal_entry"] = entry

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                entry.response_headers = {
                    k.decode("latin-1"): v.decode("latin-1") for k, v in message.get("headers", [])
                }
            elif message["type"] == "http.response.body":
                now = elapsed_ms(entry)
                if entry.first_byte_ms is None:
                    entry.first_byte_ms = now
                if entry.stream and message.get("body"):
                    entry.chunk_times_ms.append(now)
            try:
                await send(message)
            except OSError:
                entry.disconnected = True
                raise

        try:
            await self.app(scope, receive, recording_send)
        finally:
            entry.duration_ms = elapsed_ms(entry)


CONTROL_PREFIX = "/_emulator"


def current_entry(scope: Any) -> Entry | None:
    return scope.get("state", {}).get("journal_entry")
