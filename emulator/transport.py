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
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

TRANSPORT_EXTENSION = "tokenhub.transport"


def http_protocol() -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol (httptools when installed, else h11) that exposes the transport."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools is optional in uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class TransportExposingProtocol(Base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(OneWrite(transport))  # type: ignore[arg-type]

        def on_message_begin(self) -> None:  # httptools: a new request's scope is built here
            super().on_message_begin()
            self.scope["extensions"] = {TRANSPORT_EXTENSION: self.transport}

        def handle_events(self) -> None:  # h11: the scope is built while handling events
            super().handle_events()
            scope = getattr(getattr(self, "cycle", None), "scope", None)
            if scope is not None:
                scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = self.transport

    return TransportExposingProtocol


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
