"""The one ASGI layer in front of the routes: test ids in the URL, request ids, the journal, crashes.

Every HTTP request gets, in this order (each once, in one frame):

- its test id taken out of a `/_emulator/t/<test id>/…` URL (emulator/server/url_scope.py);
- a request id, sent back in the `x-request-id` and `request-id` headers of every response, errors included;
- a journal entry, unless it is a control API request (`/_emulator/…`) or a scrape of `/metrics`: it records
  the status and headers that went back (the request-id headers included), when the first byte and each
  streamed chunk left, how long it took, and whether the client went away; once the response is over the
  entry goes to the request log (emulator/server/request_log.py), which writes its line on the next turn of
  the event loop, and is counted in the metrics (emulator/server/metrics.py);
- a 500 in the protocol's envelope when anything crashes before the response has started (the exception
  is logged, never sent to the client).

The protocol endpoints (`POST` to the active profile's path of each protocol) are called from here directly
with the request's headers already read into a dict; everything else goes through Starlette's exception
handling and router. Doing this in one layer instead of a stack of middleware (each wrapping `send` again and
copying the headers) is most of what a non-streamed request costs outside the pipeline. Each protocol
endpoint is also a route of the router (the same endpoint, given its journal entry from the scope's state):
that route answers when a middleware has been added, and makes the path known to 405s and 404 hints.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.ids import uuid4_hex
from emulator.journal import Entry, Journal, Unread, current_entry, decoded_headers, elapsed_ms
from emulator.names import CONTROL_PREFIX, REQUEST_ID_HEADERS, SCOPE_PREFIX
from emulator.server.delivery import Drain
from emulator.server.metrics import METRICS_PATH, Metrics
from emulator.server.request_log import RequestLog
from emulator.server.url_scope import unscoped

ID_HEADERS = tuple(name.encode() for name in REQUEST_ID_HEADERS)
log = logging.getLogger("tokenhub_emulator")
control_log = logging.getLogger("tokenhub_emulator.control")  # control API calls, at debug

# A protocol endpoint: the request and its journal entry → the response to send (a Response, a Delivery, …).
Endpoint = Callable[[Request, Entry | None], Awaitable[ASGIApp]]


# fast path: mirrors starlette.datastructures.Headers (get, getlist); pinned by tests/unit/server/test_fastpaths.py::test_a_repeated_header_keeps_every_value_where_it_did
class RequestHeaders(dict[str, str]):
    """The headers of a request that repeats none of them, by name: a dict, so a lookup costs what a dict's does.

    ASGI servers give header names in lower case, so this answers what Starlette's `Headers` answers for the
    names the emulator looks up (all lower case). A request that repeats a header gets Starlette's `Headers`,
    which keeps every value.
    """

    __slots__ = ()

    def getlist(self, key: str) -> list[str]:
        value = self.get(key.lower())
        return [] if value is None else [value]


# fast path: mirrors starlette.requests.Request.__init__; pinned by tests/unit/test_fast_paths.py::test_the_upstream_code_each_fast_path_mirrors_is_unchanged
class FrontRequest(Request):
    """The Request a protocol endpoint gets from the front: its headers are already read."""

    headers: Mapping[str, str] = None  # type: ignore[assignment]  # an attribute here, not Starlette's property

    def __init__(self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self._stream_consumed = False
        self._is_disconnected = False
        self._form = None
        self.headers = self._headers = headers  # type: ignore[assignment]  # a dict, or Starlette's Headers


class Front(Starlette):
    """The emulator's ASGI app: Starlette's routes and exception handlers behind the one front layer above.

    `endpoints` maps a path to the protocol endpoint that answers a POST there; `protocol_for` names the
    protocol a journaled path belongs to; `on_crash(scope)` builds the 500 sent when a request crashes.
    """

    def __init__(
        self,
        *,
        routes: Sequence[BaseRoute],
        exception_handlers: Mapping[Any, Callable[..., Any]],
        journal: Journal,
        protocol_for: Callable[[str], str | None],
        on_crash: Callable[[Scope], Response],
        endpoints: Mapping[str, Endpoint],
        request_log: RequestLog | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        posts = [Route(path, _routed(endpoint), methods=["POST"]) for path, endpoint in endpoints.items()]
        super().__init__(routes=[*posts, *routes], exception_handlers=exception_handlers)
        self.journal = journal
        self.request_log = request_log  # told of each finished request: its line is written off this path
        self.metrics = metrics  # counts each finished request
        self.protocol_for = protocol_for
        self.on_crash = on_crash
        self.endpoints = {path: (endpoint, protocol_for(path)) for path, endpoint in endpoints.items()}
        self.drain = Drain()  # open deliveries, told to finish when the server stops (emulator/server/delivery.py)
        self._handlers: tuple[dict[Any, Any], dict[int, Any]] = ({}, {})

    # fast path: mirrors starlette.applications.Starlette.build_middleware_stack; pinned by tests/unit/test_fast_paths.py::test_the_upstream_code_each_fast_path_mirrors_is_unchanged
    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack without its ServerErrorMiddleware: a crash is the front's to answer."""
        handlers = {key: value for key, value in self.exception_handlers.items() if key not in (500, Exception)}
        exceptions = ExceptionMiddleware(self.router, handlers=handlers, debug=self.debug)
        self._handlers = (exceptions._exception_handlers, exceptions._status_handlers)
        if self.user_middleware:  # added middleware sees every request: no protocol endpoint is called directly
            self.endpoints = {}
        app: ASGIApp = exceptions
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        if scope["type"] != "http":
            await self.middleware_stack(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(SCOPE_PREFIX):
            scope = unscoped(scope)
            path = scope["path"]
        request_id = "req_" + uuid4_hex()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        id_bytes = request_id.encode()
        ids = [(ID_HEADERS[0], id_bytes), (ID_HEADERS[1], id_bytes)]

        endpoint = None
        entry: Entry | None = None
        if not path.startswith(CONTROL_PREFIX) and path != METRICS_PATH:
            raw = scope["headers"]
            if type(raw) is not list:  # as Starlette's Headers does: it need not be a list
                raw = scope["headers"] = list(raw)
            headers = decoded_headers(raw)  # a repeated name keeps its last value, as the journal always did
            found = self.endpoints.get(path)
            if found is not None and scope["method"] == "POST" and not scope.get("root_path"):
                endpoint, protocol = found
            else:
                protocol = self.protocol_for(path)
            entry = self.journal.open(scope["method"], path, headers, protocol, request_id)
            state["journal_entry"] = entry

        started = False
        status = None

        async def send_out(message: Message) -> None:
            nonlocal started, status
            kind = message["type"]
            if kind == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *ids]
                if entry is not None:
                    entry.status = message["status"]
                    entry._response_headers = Unread(  # type: ignore[attr-defined]
                        message["headers"], decoded_headers)
            elif kind == "http.response.body" and entry is not None:
                now = elapsed_ms(entry)
                if entry.first_byte_ms is None:
                    entry.first_byte_ms = now
                if entry.stream and message.get("body"):
                    entry.chunk_times_ms.append(now)
            if entry is None:
                await send(message)
                return
            try:
                await send(message)
            except OSError:
                entry.disconnected = True
                raise

        try:
            try:
                if endpoint is None:
                    await self.middleware_stack(scope, receive, send_out)
                else:
                    unique = len(headers) == len(raw)
                    request = FrontRequest(
                        scope, receive, send_out, RequestHeaders(headers) if unique else Headers(raw=raw)
                    )
                    try:
                        response = await endpoint(request, entry)
                        await response(scope, receive, send_out)
                    # fast path: mirrors starlette._exception_handler.wrap_app_handling_exceptions; pinned by tests/unit/test_fast_paths.py::test_the_upstream_code_each_fast_path_mirrors_is_unchanged
                    except Exception as exc:  # the exception handlers, as Starlette's routes apply them
                        handler = self._handler_for(exc)
                        if handler is None:
                            raise
                        if started:
                            raise RuntimeError("Caught handled exception, but response already started.") from exc
                        if inspect.iscoroutinefunction(handler):
                            response = await handler(request, exc)
                        else:
                            response = await run_in_threadpool(handler, request, exc)
                        if response is not None:
                            await response(scope, receive, send_out)
                        exc.__traceback__ = None
            finally:
                if entry is not None:
                    entry.duration_ms = elapsed_ms(entry)
                    self.journal.settle(entry)
                    if self.metrics is not None:
                        self.metrics.request(entry)
                    if self.request_log is not None:
                        self.request_log.finished(entry)
                elif self.request_log is not None and control_log.isEnabledFor(logging.DEBUG):
                    control_log.debug("%s %s %s · %s", scope["method"], path, status, request_id)
        except Exception:
            log.exception("unexpected error while answering %s %s", scope.get("method"), scope.get("path"))
            if not started:

                async def send_with_id(message: Message) -> None:  # not journaled, as before
                    if message["type"] == "http.response.start":
                        message["headers"] = [*message.get("headers", []), *ids]
                    await send(message)

                await self.on_crash(scope)(scope, receive, send_with_id)

    def stopped(self) -> None:
        """The server has stopped answering (its open answers ended): the last counts go to the metrics."""
        if self.metrics is not None:
            self.metrics.process_exited()

    def _handler_for(self, exc: Exception) -> Callable[..., Any] | None:
        exception_handlers, status_handlers = self._handlers
        if isinstance(exc, HTTPException) and exc.status_code in status_handlers:
            return status_handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in exception_handlers:
                return exception_handlers[cls]
        return None


def _routed(endpoint: Endpoint) -> Callable[[Request], Awaitable[ASGIApp]]:
    """A protocol endpoint as a Starlette route's endpoint: its journal entry is the one the front opened."""

    async def routed(request: Request) -> ASGIApp:
        return await endpoint(request, current_entry(request.scope))

    return routed
