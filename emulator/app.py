"""Build the Starlette app: routes, middleware, error handling, and the runtime they share."""

from __future__ import annotations

from dataclasses import dataclass

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from emulator.config import Settings
from emulator.errors import ApiError
from emulator.exchange import Failure
from emulator.generate import Generator
from emulator.http import GatewayMiddleware, bearer_key, json_response, read_json
from emulator.profiles import Catalog, CatalogModel
from emulator.protocols import openai_chat
from emulator.scenarios import Engine, Scenario, load_scenarios, merged_settings
from emulator.shaping import shape


@dataclass
class Runtime:
    """Everything a request needs: settings, the model catalog and the scenario engine."""

    settings: Settings
    catalog: Catalog
    engine: Engine
    allowed_keys: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings, scenarios: list[Scenario] | None = None) -> Runtime:
        if scenarios is None:
            scenarios = load_scenarios(settings.scenarios)
        locale = merged_settings(scenarios).locale
        generator = Generator(seed=settings.seed, locale=locale) if locale else Generator(seed=settings.seed)
        engine = Engine(scenarios, generator=generator, fallback=settings.fallback)
        return cls(settings, catalog_for(engine), engine, frozenset(settings.api_keys))


def catalog_for(engine: Engine) -> Catalog:
    declared = [
        CatalogModel(
            id=d.id,
            owned_by=d.owned_by or "tokenhub-emulator",
            created=0,
            reasoning=d.reasoning,
            serves=d.serves,
        )
        for d in engine.declared_models
    ]
    return Catalog.with_builtins(declared)


def error_response(failure: Failure) -> Response:
    return json_response(openai_chat.error_body(failure), failure.status, failure.headers)


async def chat_completions(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    key = bearer_key(request, runtime.allowed_keys)
    body = await read_json(request, runtime.settings.max_body_bytes)
    exchange, options = openai_chat.parse(body, request.headers, runtime.catalog, key)
    outcome = runtime.engine.respond(exchange)
    if isinstance(outcome, Failure):
        return error_response(outcome)
    shaped = shape(outcome, exchange)
    if not exchange.stream:
        return json_response(openai_chat.completion_body(shaped, exchange.model))
    events = ({"data": data} for data in openai_chat.stream_chunks(shaped, exchange.model, options))
    return EventSourceResponse(events, sep="\n", headers={"cache-control": "no-cache"})


def _model_body(model: CatalogModel) -> dict[str, object]:
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": model.owned_by}


async def list_models(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    bearer_key(request, runtime.allowed_keys)
    return json_response({"object": "list", "data": [_model_body(m) for m in runtime.catalog.listed()]})


async def retrieve_model(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    bearer_key(request, runtime.allowed_keys)
    requested = request.path_params["model_id"]
    model = runtime.catalog.models.get(requested)
    if model is None:
        raise ApiError(404, f"The model '{requested}' does not exist.", param="model", code="model_not_found")
    return json_response(_model_body(model))


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.failure)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}. Please check the URL and method."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}."
    else:
        message = exc.detail
    return error_response(Failure(status=exc.status_code, message=message, headers=dict(exc.headers or {})))


def crash_response(scope: Scope) -> Response:
    return error_response(Failure(status=500, message="Engine internal error: the emulator failed unexpectedly."))


def build_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    settings = settings or Settings()
    runtime = runtime or Runtime.from_settings(settings)
    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(GatewayMiddleware, on_crash=crash_response)],
        exception_handlers={ApiError: api_error, HTTPException: http_error},
    )
    app.state.runtime = runtime
    return app
