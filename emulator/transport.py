"""Reaching the connection under the ASGI app, so that a fault can close it the way a broken gateway does.

uvicorn gives an ASGI app no handle on the socket. `http_protocol()` is uvicorn's own HTTP protocol class,
extended to put the connection's asyncio transport in `scope["extensions"]["tokenhub.transport"]`;
`tokenhub-emulator serve` runs uvicorn with it. Under another server the key is absent and a fault falls
back to the nearest thing ASGI allows: an unfinished response, which the server closes.
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
        def on_message_begin(self) -> None:  # httptools: a new request's scope is built here
            super().on_message_begin()
            self.scope["extensions"] = {TRANSPORT_EXTENSION: self.transport}

        def handle_events(self) -> None:  # h11: the scope is built while handling events
            super().handle_events()
            scope = getattr(getattr(self, "cycle", None), "scope", None)
            if scope is not None:
                scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = self.transport

    return TransportExposingProtocol


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
