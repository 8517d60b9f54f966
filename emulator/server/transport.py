"""Reaching the connection under the ASGI app, so that a fault can close it the way a broken gateway does.

uvicorn gives an ASGI app no handle on the socket. `http_protocol()` is uvicorn's own HTTP protocol class,
extended to put the connection's asyncio transport in `scope["extensions"]["tokenhub.transport"]`;
`tokenhub-emulator serve` runs uvicorn with it. Under another server the key is absent and a fault falls
back to the nearest thing ASGI allows: an unfinished response, which the server closes.

The protocol also writes less often: uvicorn writes a response's head when the app sends it and the body
when that comes, two system calls for every reply. `OneWrite` keeps what is written during one turn of the
event loop and hands it to the socket at the end of that turn, in one call (a reply's head and body, or a
stream's head and first events). On loopback each write also runs the receiving side's network stack, so
this is most of what a small reply costs the server outside the app.

And it holds each connection to limits (`ConnectionLimits`, the serve flags of docs/limits.md), so that no
client can hold the server's memory or its connections: a request head (request line and headers) larger
than `max_header_bytes` is answered 431; a head that takes longer than `header_timeout_s` to arrive, or a body
that makes no progress for `body_timeout_s`, 408; past `max_connections` open connections, the oldest idle
one is closed to make room (or, if none is idle, the new one is answered 503). Those answers, and the 400 for
bytes that are not HTTP, are written in the envelope of the protocol the path belongs to (`error_body`), as
the app writes its own errors. A watchdog looks at every connection once a tick; the request path only
notes the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from emulator.ids import uuid4_hex

TRANSPORT_EXTENSION = "tokenhub.transport"
REFUSED_EXTENSION = "tokenhub.refused"  # (status, message) the connection layer answered a request with itself
log = logging.getLogger("uvicorn.error")

ErrorBody = Callable[[str, int, str], bytes]  # (path, status, message) → a JSON error body in the path's envelope


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 60.0
    body_timeout_s: float = 60.0
    max_connections: int = 16_384


def _plain_error(path: str, status: int, message: str) -> bytes:
    return b'{"error":{"message":"%s","type":"invalid_request_error","param":null,"code":null}}' % message.encode()


def http_protocol(
    limits: ConnectionLimits | None = None, error_body: ErrorBody | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol that exposes the transport and keeps `limits` (httptools when installed;
    with h11, which uvicorn falls back to without it, the transport is exposed but the limits are not kept)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is optional in uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol

        class H11TransportProtocol(H11Protocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(OneWrite(transport))  # type: ignore[arg-type]

            # fast path: mirrors uvicorn.protocols.http.h11_impl.H11Protocol.handle_events; pinned by tests/unit/test_fast_paths.py::test_the_upstream_code_each_fast_path_mirrors_is_unchanged
            def handle_events(self) -> None:  # h11: the scope is built while handling events
                super().handle_events()
                scope = getattr(getattr(self, "cycle", None), "scope", None)
                if scope is not None:
                    scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = self.transport

        return H11TransportProtocol
    return _limited_protocol(HttpToolsProtocol, limits or ConnectionLimits(), error_body or _plain_error)


def _limited_protocol(base: type, limits: ConnectionLimits, error_body: ErrorBody) -> type[asyncio.Protocol]:
    watchdog = _Watchdog(limits)

    class LimitedProtocol(base):
        # the state the watchdog reads (monotonic seconds; None: not waiting for that)
        head_since: float | None = None  # the request head started (or the connection opened) at
        body_since: float | None = None  # the body last made progress at
        idle_since: float = 0.0  # the connection last started or finished something at (to pick whom to close)
        head_bytes = 0  # of the head being read
        reading_head = True  # what comes next on the connection is (the rest of) a request head
        head_start = b""
        served = False  # a request on it was answered (a client's keep-alive, not a silent socket)

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(OneWrite(transport))
            self.head_since = self.idle_since = time.monotonic()
            watchdog.watch(self.connections)
            if len(self.connections) > limits.max_connections and not self._make_room():
                log.warning("refused a connection: %d are open (--max-connections)", len(self.connections) - 1)
                self.answer(
                    503, f"The server has {limits.max_connections} connections open, as many as it keeps; retry."
                )

        def data_received(self, data: bytes) -> None:
            if self.reading_head:  # the head's size, counted before the parser keeps any of it
                if not self.head_bytes:
                    self.head_start = data[:512]  # its request line: whose envelope an error is written in
                counted = self.head_bytes + len(data)
                self.head_bytes = counted
                if counted > limits.max_header_bytes:
                    end = data.find(b"\r\n\r\n")
                    if end < 0 or counted - len(data) + end > limits.max_header_bytes:
                        self.answer(
                            431,
                            f"Request header fields too large: the request line and headers may hold "
                            f"{limits.max_header_bytes} bytes at most.",
                        )
                        return
            super().data_received(data)

        # fast path: mirrors uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.on_message_begin; pinned by tests/unit/test_fast_paths.py::test_the_upstream_code_each_fast_path_mirrors_is_unchanged
        def on_message_begin(self) -> None:  # a new request's scope is built here
            super().on_message_begin()
            self.scope["extensions"] = {TRANSPORT_EXTENSION: self.transport}
            self.head_since = self.idle_since = time.monotonic()

        def on_headers_complete(self) -> None:
            self.reading_head = False
            self.head_since = None
            self.body_since = time.monotonic()
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            self.body_since = time.monotonic()
            super().on_body(body)

        def on_message_complete(self) -> None:
            self.body_since = None
            super().on_message_complete()

        def on_response_complete(self) -> None:
            self.served = True
            self.idle_since = time.monotonic()
            self.reading_head, self.head_bytes = True, 0  # what comes next on this connection is a head
            super().on_response_complete()

        def send_400_response(self, msg: str) -> None:  # bytes that are not HTTP: uvicorn's plain text, replaced
            self.answer(400, "Invalid HTTP request received: the bytes sent are not an HTTP/1.1 request.")

        def answer(self, status: int, message: str) -> None:
            """Answer with an error in the path's envelope and close: the app never saw this request (or, for a
            body that stopped coming, has not answered it yet and is told the client left)."""
            self.head_since = self.body_since = None
            self.reading_head = False
            cycle = self.cycle
            if cycle is not None and cycle.response_started and not cycle.response_complete:
                self.transport.close()  # too late for an answer: the app's is under way
                return
            target = getattr(self, "url", b"") or self.head_start.split(b"\r\n", 1)[0].partition(b" ")[2]
            path = target.split(b"?", 1)[0].split(b" ", 1)[0].decode("latin-1")
            body = error_body(path, status, message)
            request_id = b"req_" + uuid4_hex().encode()
            head = b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())
            head += b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n" % len(body)
            head += b"x-request-id: %s\r\nrequest-id: %s\r\n\r\n" % (request_id, request_id)
            if not self.transport.is_closing():
                self.transport.write(head + body)
                self.transport.close()
            if cycle is not None and not cycle.response_complete:  # the app, waiting for the body, sees the client go
                cycle.scope.setdefault("extensions", {})[REFUSED_EXTENSION] = (status, message)
                cycle.disconnected = True
                cycle.message_event.set()

        def _make_room(self) -> bool:
            """Close an idle connection (waiting for a request, or for the rest of one's head): one that never
            had a request answered first (silent, or slow to send its head), then the keep-alive idle longest."""
            idle = [c for c in self.connections if c is not self and (c.cycle is None or c.cycle.response_complete)]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: (c.served, c.idle_since))
            oldest.head_since = None
            oldest.transport.close()
            return True

        def timed_out(self, now: float) -> None:
            """The watchdog's look at this connection."""
            if self.head_since is not None and now - self.head_since > limits.header_timeout_s:
                if self.head_bytes or (self.cycle is not None and not self.cycle.response_complete):
                    self.answer(408, f"The request head did not arrive within {limits.header_timeout_s:g} s.")
                else:  # nothing sent at all: nothing to answer
                    self.head_since = None
                    self.transport.close()
            elif self.body_since is not None and now - self.body_since > limits.body_timeout_s:
                self.answer(408, f"The request body made no progress for {limits.body_timeout_s:g} s.")

    return LimitedProtocol


class _Watchdog:
    """Looks at every connection once a tick and times out the slow ones (started with the first connection)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.tick_s = max(0.01, min(1.0, limits.header_timeout_s / 4, limits.body_timeout_s / 4))
        self.connections: set[Any] | None = None
        self.handle: asyncio.TimerHandle | None = None

    def watch(self, connections: set[Any]) -> None:
        if self.handle is None or self.connections is not connections:
            self.connections = connections
            self.handle = asyncio.get_running_loop().call_later(self.tick_s, self.tick)

    def tick(self) -> None:
        now = time.monotonic()
        for connection in list(self.connections or ()):
            timed_out = getattr(connection, "timed_out", None)
            if timed_out is not None and not connection.transport.is_closing():
                timed_out(now)
        self.handle = asyncio.get_running_loop().call_later(self.tick_s, self.tick)


class OneWrite:
    """A connection's transport whose writes made during one turn of the event loop leave as one.

    Everything else is the transport's own. A write is held until the loop has run what it had to run (a
    handle scheduled on the first write of the turn), unless `write_now` sends it at once, with what is
    held; closing or aborting sends what is held first, so nothing written is lost or reordered.
    """

    __slots__ = ("transport", "_held", "_loop")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._held: list[bytes] | None = None
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if self._held is None:
            self._held = [data]
            self._loop.call_soon(self.flush)
        else:
            self._held.append(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def write_now(self, data: bytes) -> None:
        """Write `data` now, after whatever is held (a stream's chunks, each at its deadline)."""
        held = self._held
        if held is not None:
            self._held = None
            held.append(data)
            data = b"".join(held)
        self.transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self.transport.is_closing():
                self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self.transport.get_write_buffer_size() + (sum(map(len, held)) if held else 0)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self.flush()
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:  # the rest of the transport's interface
        return getattr(self.transport, name)


def refusal_of(scope: Any) -> tuple[int, str] | None:
    """The answer the connection layer sent for this request itself (a body that stopped coming), if any."""
    return (scope.get("extensions") or {}).get(REFUSED_EXTENSION)


def transport_of(scope: Any) -> asyncio.Transport | None:
    return (scope.get("extensions") or {}).get(TRANSPORT_EXTENSION)


def close_connection(scope: Any, *, reset: bool = False) -> bool:
    """Close the client connection now: a FIN after what was written, or (reset) an RST that drops it.

    False when the transport cannot be reached (not served by `tokenhub-emulator serve`).
    """
    transport = transport_of(scope)
    if transport is None:
        return False
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # SO_LINGER 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    return True
