"""Build the Starlette app: the protocol endpoints, the model list, the control API, the error handlers.

Every protocol's create endpoint runs the one pipeline (emulator/server/pipeline.py); the front
(emulator/server/front.py) calls it directly for a POST to the protocol's path, and registers the same
endpoint as a route for everything else (a middleware, a 405, a 404's hint). Errors raised anywhere are
written in the envelope of the protocol the path (or the caller) belongs to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Scope

from emulator.config import Settings
from emulator.control import api as control
from emulator.control import faults as fault_control
from emulator.control import metrics as metrics_control
from emulator.errors import ApiError
from emulator.exchange import Failure
from emulator.journal import Entry, current_entry
from emulator.names import CONTROL_PREFIX
from emulator.protocols.base import Adapter
from emulator.server.front import Endpoint, Front
from emulator.server.models import model_routes
from emulator.server.pipeline import answer, error_response
from emulator.server.request_log import RequestLog
from emulator.server.route_hints import hint_for, targets
from emulator.server.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def protocol_endpoint(runtime: Runtime, adapter: Adapter) -> Endpoint:
    """What answers a POST to `adapter`'s path: the request and its journal entry → the response."""

    def endpoint(request: Request, entry: Entry | None) -> Awaitable[ASGIApp]:
        return answer(runtime, adapter, request, entry)

    return endpoint


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    runtime = _runtime(request)
    adapter = runtime.adapter_for(request.url.path, request.headers)
    return error_response(runtime, adapter, exc.failure, current_entry(request.scope))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    runtime = _runtime(request)
    adapter = runtime.adapter_for(request.url.path, request.headers)
    if exc.status_code == 404:
        served = _served_by(request)
        hint = hint_for(request.url.path, runtime.profile, served, str(request.base_url), targets(runtime.adapters))
        message = f"Unknown request URL: {request.method} {request.url.path}. Please check the URL and method."
        if hint is not None:
            message = hint.message(request.method, request.url.path)
            adapter = hint.target.adapter
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}."
    else:
        message = str(exc.detail)
    failure = Failure(status=exc.status_code, message=message, headers=dict(exc.headers or {}))
    return error_response(runtime, adapter, failure, current_entry(request.scope))


def _served_by(request: Request) -> Callable[[str], bool]:
    """Whether the app has a route for a path (any method: a 405 there still says where the endpoint is)."""
    routes = request.app.router.routes

    def served(path: str) -> bool:
        scope = {"type": "http", "path": path, "method": "POST", "root_path": ""}
        return any(route.matches(scope)[0] != Match.NONE for route in routes if not isinstance(route, Mount))

    return served


def routes_for(runtime: Runtime) -> list[BaseRoute]:
    """Every route but the protocols' create endpoints (the front registers those): their extra endpoints,
    the model list, the control API."""
    paths = runtime.profile.paths
    routes: list[BaseRoute] = []
    for adapter in runtime.adapters:
        routes.extend(adapter.extra_routes(paths[adapter.protocol]))
    routes.extend(model_routes(runtime))
    if runtime.metrics is not None:
        routes.extend(metrics_control.routes())
    routes.append(Mount(CONTROL_PREFIX, routes=[*control.routes(), *fault_control.routes()]))
    return routes


def build_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Front:
    settings = settings or Settings()
    runtime = runtime or Runtime.from_settings(settings)

    def crash_response(scope: Scope) -> Response:
        failure = Failure(status=500, message="Engine internal error: the emulator failed unexpectedly.")
        return error_response(runtime, runtime.adapter_for(scope.get("path", "")), failure)

    paths = runtime.profile.paths
    app = Front(
        routes=routes_for(runtime),
        exception_handlers={ApiError: api_error, HTTPException: http_error},
        journal=runtime.journal,
        protocol_for=runtime.protocol_for,
        on_crash=crash_response,
        endpoints={paths[a.protocol]: protocol_endpoint(runtime, a) for a in reversed(runtime.adapters)},
        request_log=RequestLog(runtime),
        metrics=runtime.metrics,
    )
    app.state.runtime = runtime
    return app
