"""The uvicorn server the emulator runs on: its configuration (the connection limits, the graceful stop) in one
place, for `serve`, `record` and the test helpers.

Stopping: uvicorn stops accepting, closes idle connections and waits `shutdown_grace_s` for the open ones
before it cancels them (each cancelled stream logging a traceback). `GracefulServer` uses that time: open
answers keep their pace until one second before it ends (or at once, for a grace under a second), then the
app's `Drain` tells them to finish — a delayed reply goes at once, a stream writes the rest of its events and
its protocol's ending, a `hang` answers 503 in its protocol's envelope — so every request gets a whole answer
and nothing is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import socket
from typing import Any

import uvicorn

from emulator.config import Settings
from emulator.server.transport import ConnectionLimits, ErrorBody, http_protocol

log = logging.getLogger("uvicorn.error")
RESERVED_DESCRIPTORS = 64  # kept free beside connections: scenario files, logs, the watcher, recordings
DEFAULT_MAX_CONNECTIONS = 16_384
DRAIN_BEFORE_END_S = 1.0  # open answers are told to finish this long before the grace period ends


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound and listening (port 0: a free one), inheritable by a worker process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def descriptor_room() -> int:
    """Connections the descriptor limit allows, after raising the soft limit as far as the hard one allows."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, DEFAULT_MAX_CONNECTIONS * 2)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return DEFAULT_MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else max(soft - RESERVED_DESCRIPTORS, 1)


def connection_limits(settings: Settings) -> ConnectionLimits:
    room = descriptor_room()
    wanted = settings.max_connections if settings.max_connections is not None else DEFAULT_MAX_CONNECTIONS
    if wanted > room:
        log.warning("--max-connections %d is more than the descriptor limit allows; using %d", wanted, room)
    return ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=min(wanted, room),
    )


def server_config(app: Any, settings: Settings, error_body: ErrorBody | None = None, **more: Any) -> uvicorn.Config:
    """uvicorn's configuration: the emulator's HTTP protocol with the settings' limits, and their timeouts."""
    options: dict[str, Any] = {
        "log_level": settings.log_level,
        "access_log": settings.log_level in ("debug", "trace"),
        "http": http_protocol(connection_limits(settings), error_body),  # and the connection, for faults
        "timeout_keep_alive": settings.keep_alive_s,
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
        **more,
    }
    return uvicorn.Config(app, **options)


class GracefulServer(uvicorn.Server):
    """uvicorn's server that lets open answers finish, in their protocol's terms, when it stops."""

    async def shutdown(self, sockets: Any = None) -> None:
        drain = getattr(_inner_app(self.config), "drain", None)
        handle = None
        if drain is not None:
            grace = self.config.timeout_graceful_shutdown or 0
            delay = max(0.0, grace - DRAIN_BEFORE_END_S) if grace > DRAIN_BEFORE_END_S else 0.0
            handle = asyncio.get_running_loop().call_later(delay, drain.start)
        try:
            await super().shutdown(sockets)
        finally:
            if handle is not None:
                handle.cancel()
            stopped = getattr(_inner_app(self.config), "stopped", None)
            if stopped is not None:
                stopped()  # still on the loop: uvicorn may end the process with the signal once it returns


def _inner_app(config: uvicorn.Config) -> Any:
    """The app under uvicorn's wrappers (its proxy-headers middleware, the ASGI 2 adapter)."""
    app = config.loaded_app
    while app is not None and not hasattr(app, "drain") and hasattr(app, "app"):
        app = app.app
    return app


def steady_gc() -> None:
    """Keep the garbage collector's pauses out of stream timing, once the server is built.

    Everything loaded at start (modules, schemas, Faker's data) is frozen out of every collection, and the
    young generation is collected less often: a full collection at 1,000 open streams otherwise stops the
    loop for 40-70 ms, which every stream then sees as a late chunk.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
