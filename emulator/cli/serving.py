"""Serving on a bound socket: the whole server of one process, or of one of `serve --workers N`'s workers."""

from __future__ import annotations

import socket
import sys
from typing import TYPE_CHECKING

from emulator.config import Settings

if TYPE_CHECKING:
    from emulator.server.runtime import Runtime


def cannot_listen(settings: Settings, exc: OSError) -> int:
    print(f"tokenhub-emulator: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
    return 1


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    return f"http://{shown_host}:{port}"


def runtime_or_none(settings: Settings) -> Runtime | None:
    from emulator.scenarios import ScenarioError
    from emulator.server.runtime import Runtime

    try:
        return Runtime.from_settings(settings)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def serve_on(settings: Settings, sock: socket.socket, announce: bool = True, worker: int | None = None) -> int:
    """Serve on a bound socket: the whole server of one process (or of one of `--workers`)."""
    import logging.config

    from emulator.cli.banner import banner_lines, log_start
    from emulator.server.app import build_app
    from emulator.server.listener import GracefulServer, server_config, steady_gc
    from emulator.server.request_log import logging_config

    log_config = logging_config(settings.log_level, settings.log_format)
    logging.config.dictConfig(log_config)
    runtime = runtime_or_none(settings)
    if runtime is None:
        return 2
    url = url_of(sock)
    app = build_app(settings, runtime)
    steady_gc()  # no collector pauses in the middle of timed streams
    # the request log (emulator/server/request_log.py) writes one line per request instead of uvicorn's access log
    config = server_config(app, settings, runtime.error_body, log_config=log_config, access_log=False)
    if settings.watch:
        from emulator.server.watch import WatchingServer

        server: GracefulServer = WatchingServer(config, runtime)
    else:
        server = GracefulServer(config)
    if announce:
        print(f"tokenhub-emulator listening on {url}", flush=True)  # the first line: tools read the URL from it
        if settings.log_format == "text" and logging.getLogger("tokenhub_emulator").isEnabledFor(logging.INFO):
            print("\n".join(banner_lines(runtime, url)), flush=True)
        log_start(runtime, url)
    server.run(sockets=[sock])  # uvicorn picks the event loop (uvloop) as `uvicorn.run` would
    return 0
