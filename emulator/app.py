"""Build the Starlette app: the active profile's routes, one pipeline for every protocol, error handling."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Scope

from emulator import control, fault_control
from emulator.config import Settings
from emulator.errors import ApiError
from emulator.exchange import Failure
from emulator.generate import Generator
from emulator.http import GatewayMiddleware, bearer_key, json_response, read_json
from emulator.journal import CONTROL_PREFIX, Entry, Journal, JournalMiddleware, current_entry
from emulator.profiles import DEFAULT_PROFILE, PROFILES, Catalog, CatalogModel, Profile
from emulator.protocols.anthropic_messages import MessagesAdapter
from emulator.protocols.base import Adapter, Context
from emulator.protocols.openai_chat import ChatAdapter
from emulator.protocols.openai_responses import ResponsesAdapter
from emulator.scenarios import Engine, Problem, Scenario, load_scenarios, merged_settings
from emulator.scoped_engine import ScopedEngine
from emulator.shaping import shape
from emulator.streaming import sse_response
from emulator.test_scope import TestScopeMiddleware


@dataclass
class ScenarioStatus:
    """Where the shared scenarios came from, and how the last reload of the scenario files went."""

    from_files: int = 0  # engine.scenarios[:from_files] came from the scenario paths; the rest from the control API
    reloads: int = 0
    last_reload: float | None = None  # wall-clock time of the last successful reload
    last_error: list[Problem] | None = None  # problems of the last failed reload, cleared by a good one
    last_error_time: float | None = None


@dataclass
class Runtime:
    """Everything a request needs: settings, the gateway profile, the model catalog, the engine, the adapters."""

    settings: Settings
    profile: Profile
    catalog: Catalog
    engine: Engine
    adapters: list[Adapter] = field(default_factory=list)
    journal: Journal = field(default_factory=Journal)
    scenario_status: ScenarioStatus = field(default_factory=ScenarioStatus)

    @classmethod
    def from_settings(cls, settings: Settings, scenarios: list[Scenario] | None = None) -> Runtime:
        if scenarios is None:
            scenarios = load_scenarios(settings.scenarios)
        locale = merged_settings(scenarios).locale
        generator = Generator(seed=settings.seed, locale=locale) if locale else Generator(seed=settings.seed)
        engine = ScopedEngine(scenarios, generator=generator, fallback=settings.fallback)
        profile = PROFILES[settings.profile or DEFAULT_PROFILE]
        runtime = cls(settings, profile, catalog_for(engine), engine, default_adapters())
        runtime.scenario_status.from_files = len(scenarios)
        return runtime

    @property
    def context(self) -> Context:
        return Context(self.profile, self.catalog, frozenset(self.settings.api_keys))

    def reset(self, test_id: str | None = None) -> None:
        """Forget sequence counters, the journal, a test's own scenarios and failures (of one test id, or all)."""
        self.engine.reset(test_id)
        if isinstance(self.engine, ScopedEngine):
            had_overlay = test_id is None or test_id in self.engine.scopes()
            self.engine.forget(test_id)
            if had_overlay:
                self.catalog = catalog_for(self.engine)
        self.journal.clear(test_id)
        for adapter in self.adapters:
            adapter.reset(test_id)

    def replace_scenarios(self, scenarios: list[Scenario], from_files: int | None = None) -> None:
        """Serve these shared scenarios from now on; the first `from_files` came from the scenario paths."""
        self.engine.replace(scenarios)
        self.catalog = catalog_for(self.engine)
        if from_files is not None:
            self.scenario_status.from_files = from_files

    def set_overlay(self, test_id: str, scenarios: list[Scenario]) -> None:
        """Scenarios that answer this test id only (requires the ScopedEngine that from_settings builds)."""
        assert isinstance(self.engine, ScopedEngine)
        self.engine.set_overlay(test_id, scenarios)
        self.catalog = catalog_for(self.engine)

    def protocol_for(self, path: str) -> str | None:
        for adapter in self.adapters:
            if path.startswith(self.profile.paths[adapter.protocol]):
                return adapter.protocol
        return None

    def adapter_for(self, path: str) -> Adapter:
        """The adapter whose envelope an error on `path` is written in (OpenAI's unless it is an Anthropic path)."""
        for adapter in self.adapters:
            if adapter.protocol == "messages" and path.startswith(self.profile.paths["messages"]):
                return adapter
        return next(a for a in self.adapters if a.protocol == "chat")


def default_adapters() -> list[Adapter]:
    return [ChatAdapter(), ResponsesAdapter(), MessagesAdapter()]


def catalog_for(engine: Engine) -> Catalog:
    declared = [
        CatalogModel(
            id=d.id, owned_by=d.owned_by or "tokenhub-emulator", created=0, reasoning=d.reasoning, serves=d.serves
        )
        for d in engine.declared_models
    ]
    return Catalog.with_builtins(declared)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def error_response(runtime: Runtime, adapter: Adapter, failure: Failure, entry: Entry | None = None) -> Response:
    body = adapter.error_body(failure, runtime.context)
    if entry is not None:
        entry.error = dict(body)
        entry.rule = entry.rule or failure.rule
    return json_response(body, failure.status, adapter.error_headers(failure))


def create_endpoint(adapter: Adapter):
    """The one pipeline: auth → body → parse → scenario engine → shape → JSON or SSE."""

    async def endpoint(request: Request) -> Response:
        runtime = _runtime(request)
        context = runtime.context
        entry = current_entry(request.scope)
        try:
            key = adapter.authenticate(request, context)
            body = await read_json(request, runtime.settings.max_body_bytes)
            if entry is not None:
                entry.body = body
            exchange, options = adapter.parse(body, request, key, context)
        except ApiError as exc:
            if entry is not None:
                entry.action = "rejected"
            return error_response(runtime, adapter, exc.failure, entry)
        outcome = runtime.engine.respond(exchange)
        if entry is not None:
            entry.model, entry.stream, entry.rule = exchange.model, exchange.stream, outcome.rule
            entry.action = "fail" if isinstance(outcome, Failure) else ("reply" if outcome.rule else "generated")
        if isinstance(outcome, Failure):
            if outcome.rule is None and entry is not None:  # the error fallback: keep why each rule missed
                entry.misses = [asdict(miss) for miss in runtime.engine.explain(exchange)[:3]]
            return error_response(runtime, adapter, outcome, entry)
        shaped = shape(outcome, exchange)
        if exchange.stream:
            return sse_response(adapter.events(shaped, exchange, options))
        return json_response(adapter.render(shaped, exchange, options))

    return endpoint


def _model_body(model: CatalogModel) -> dict[str, object]:
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": model.owned_by}


async def list_models(request: Request) -> Response:
    runtime = _runtime(request)
    bearer_key(request, runtime.context.allowed_keys)
    return json_response({"object": "list", "data": [_model_body(m) for m in runtime.catalog.listed()]})


async def retrieve_model(request: Request) -> Response:
    runtime = _runtime(request)
    bearer_key(request, runtime.context.allowed_keys)
    requested = request.path_params["model_id"]
    model = runtime.catalog.models.get(requested)
    if model is None:
        raise ApiError(404, f"The model '{requested}' does not exist.", param="model", code="model_not_found")
    return json_response(_model_body(model))


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    runtime = _runtime(request)
    return error_response(runtime, runtime.adapter_for(request.url.path), exc.failure)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}. Please check the URL and method."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}."
    else:
        message = str(exc.detail)
    failure = Failure(status=exc.status_code, message=message, headers=dict(exc.headers or {}))
    runtime = _runtime(request)
    return error_response(runtime, runtime.adapter_for(request.url.path), failure)


def routes_for(runtime: Runtime) -> list[BaseRoute]:
    paths = runtime.profile.paths
    routes: list[BaseRoute] = []
    for adapter in runtime.adapters:
        routes.append(Route(paths[adapter.protocol], create_endpoint(adapter), methods=["POST"]))
        routes.extend(adapter.extra_routes(paths[adapter.protocol]))
    routes.append(Route(paths["models"], list_models, methods=["GET"]))
    routes.append(Route(paths["models"] + "/{model_id:path}", retrieve_model, methods=["GET"]))
    routes.append(Mount(CONTROL_PREFIX, routes=[*control.routes(), *fault_control.routes()]))
    return routes


def build_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    settings = settings or Settings()
    runtime = runtime or Runtime.from_settings(settings)

    def crash_response(scope: Scope) -> Response:
        failure = Failure(status=500, message="Engine internal error: the emulator failed unexpectedly.")
        return error_response(runtime, runtime.adapter_for(scope.get("path", "")), failure)

    app = Starlette(
        routes=routes_for(runtime),
        middleware=[
            Middleware(TestScopeMiddleware),
            Middleware(GatewayMiddleware, on_crash=crash_response),
            Middleware(JournalMiddleware, journal=runtime.journal, protocol_for=runtime.protocol_for),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error},
    )
    app.state.runtime = runtime
    return app
