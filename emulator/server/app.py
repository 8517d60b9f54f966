"""Build the Starlette app: the active profile's routes, one pipeline for every protocol, error handling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Scope

from emulator import json_steps
from emulator.config import Settings
from emulator.control import api as control
from emulator.control import faults as fault_control
from emulator.errors import ApiError
from emulator.exchange import Exchange, Failure, Reply
from emulator.faults.effects import break_stream, error_failure, event_failure, transport_fault
from emulator.faults.rules import FaultBook, FaultRule, Who
from emulator.generate import Generator
from emulator.http import bearer_key, dumps, json_response, json_text_response, read_json
from emulator.journal import CONTROL_PREFIX, Entry, Journal, current_entry, elapsed_ms
from emulator.profiles import DECLARE_HINT, DEFAULT_PROFILE, PROFILES, Catalog, CatalogModel, Profile
from emulator.protocols import anthropic_catalog
from emulator.protocols.anthropic_messages import MessagesAdapter
from emulator.protocols.anthropic_threads import ThreadStore
from emulator.protocols.base import Adapter, Context
from emulator.protocols.openai_chat import ChatAdapter
from emulator.protocols.openai_responses import ResponsesAdapter
from emulator.protocols.responses_store import ResponseStore
from emulator.ratelimit import Admission, Limiter
from emulator.scenarios import Engine, Problem, Scenario, load_scenarios, merged_settings
from emulator.scenarios.actions import Decision
from emulator.scenarios.engine import decision_of
from emulator.scenarios.regexes import MoveOffLoop, matching
from emulator.scenarios.scoped_engine import ScopedEngine
from emulator.server.delivery import SSE_HEADERS, Delivery, encode
from emulator.server.front import Endpoint, Front
from emulator.server.request_log import RequestLog
from emulator.server.route_hints import hint_for
from emulator.server.transport import refusal_of
from emulator.server.url_scope import SCOPE_PREFIX
from emulator.shaping import Shaped, shape
from emulator.timing import NO_TIMING, Plan, TimingSpec, seed_material, timing_from_headers
from emulator.tokens import count_messages

SHUTTING_DOWN = "The server is shutting down; retry the request."
ON_LOOP_S = 0.005  # how long matching may hold the event loop before it moves to a worker thread
OFF_LOOP_BYTES = 256 * 1024  # a request body this large is read and matched in a worker thread


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
    faults: FaultBook = field(default_factory=FaultBook)  # run-time faults, counters, what was injected
    _limiter: Limiter | None = field(default=None, repr=False)
    _context: tuple[Any, Context] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, scenarios: list[Scenario] | None = None) -> Runtime:
        if scenarios is None:
            scenarios = load_scenarios(settings.scenarios)
        merged = merged_settings(scenarios)
        locale = merged.locale
        generator = Generator(seed=settings.seed, locale=locale) if locale else Generator(seed=settings.seed)
        engine = ScopedEngine(
            scenarios,
            generator=generator,
            fallback=settings.fallback,
            render_chars=settings.max_rendered_chars,
            ttl_s=settings.test_state_ttl_s,
        )
        profile = PROFILES[settings.profile or merged.profile or DEFAULT_PROFILE]
        adapters = default_adapters(settings)
        runtime = cls(settings, profile, catalog_for(engine), engine, adapters, journal_for(settings))
        runtime.faults = FaultBook(seed=settings.seed)
        runtime.scenario_status.from_files = len(scenarios)
        engine.on_forget = lambda had_overlay: setattr(runtime, "catalog", catalog_for(engine))
        return runtime

    @property
    def context(self) -> Context:
        """What adapters consult; made again only when the profile, the catalog or the accepted keys change."""
        made_of = (self.profile, self.catalog, self.engine.settings.api_keys, tuple(self.settings.api_keys))
        cached = self._context
        if cached is None or cached[0] != made_of:
            keys = frozenset(self.settings.api_keys).union(self.engine.settings.api_keys)
            cached = self._context = (made_of, Context(self.profile, self.catalog, keys))
        return cached[1]

    def reset(self, test_id: str | None = None) -> None:
        """Forget sequence counters, the journal, a test's own scenarios and failures (of one test id, or all)."""
        self.engine.reset(test_id)
        if isinstance(self.engine, ScopedEngine):
            had_overlay = test_id is None or test_id in self.engine.scopes()
            self.engine.forget(test_id)
            if had_overlay:
                self.catalog = catalog_for(self.engine)
        self.journal.clear(test_id)
        self.faults.reset(test_id)
        if test_id is None and self._limiter is not None:
            self._limiter.reset()
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

    def limiter(self) -> Limiter | None:
        """The scenarios' settings.rate_limits, else the flags'; a reload that changes them starts new buckets."""
        limits = self.engine.settings.rate_limits or self.settings.rate_limits
        if limits is None or not limits.active:
            self._limiter = None
        elif self._limiter is None or self._limiter.limits != limits:
            self._limiter = Limiter(limits)
        return self._limiter

    def protocol_for(self, path: str) -> str | None:
        for adapter in self.adapters:
            if path.startswith(self.profile.paths[adapter.protocol]):
                return adapter.protocol
        return None

    def adapter_for(self, path: str, headers: Mapping[str, str] | None = None) -> Adapter:
        """The adapter whose envelope an error on `path` is written in: Anthropic's on its paths, and for an
        Anthropic client (`anthropic-version`, `x-api-key`) anywhere but the OpenAI protocols' paths; else OpenAI's."""
        by_protocol = {adapter.protocol: adapter for adapter in self.adapters}
        protocol = self.protocol_for(path)
        if protocol is None and headers is not None and anthropic_catalog.wants_anthropic_shape(headers):
            protocol = "messages"
        return by_protocol.get(protocol or "chat") or by_protocol["chat"]


def journal_for(settings: Settings) -> Journal:
    return Journal(
        settings.journal_entries,
        max_bytes=settings.journal_bytes,
        body_bytes=settings.journal_body_bytes,
        header_bytes=settings.journal_header_bytes,
    )


def error_body_for(runtime: Runtime) -> Callable[[str, int, str], bytes]:
    """What the connection layer (emulator/server/transport.py) answers its own errors with: the path's envelope."""

    def error_body(path: str, status: int, message: str) -> bytes:
        if path.startswith(SCOPE_PREFIX):  # /_emulator/t/<test id>/v1/…: the path after the test id
            path = "/" + path[len(SCOPE_PREFIX) :].partition("/")[2]
        adapter = runtime.adapter_for(path)
        return dumps(adapter.error_body(Failure(status=status, message=message), runtime.context)).encode()

    return error_body


def default_adapters(settings: Settings | None = None) -> list[Adapter]:
    if settings is None:
        return [ChatAdapter(), ResponsesAdapter(), MessagesAdapter()]
    responses, threads = ResponseStore(max_bytes=settings.store_bytes), ThreadStore(max_bytes=settings.store_bytes)
    return [ChatAdapter(), ResponsesAdapter(responses), MessagesAdapter(threads)]


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


def note_asked(entry: Entry, body: Any) -> None:
    """The model and stream flag a request's body names, for a journal entry that never got an Exchange."""
    if isinstance(body, dict):
        model, stream = body.get("model"), body.get("stream")
        entry.model = model if isinstance(model, str) else None
        entry.stream = stream is True


def error_response(runtime: Runtime, adapter: Adapter, failure: Failure, entry: Entry | None = None) -> Response:
    body = adapter.error_body(failure, runtime.context, entry.request_id if entry is not None else None)
    if entry is not None:
        entry.error = dict(body)
        entry.rule = entry.rule or failure.rule
    return json_response(body, failure.status, adapter.error_headers(failure))


def create_endpoint(adapter: Adapter):
    """The Starlette endpoint of `adapter`'s create route (the front calls `protocol_endpoint`'s directly)."""

    async def endpoint(request: Request) -> ASGIApp:
        return await answer(_runtime(request), adapter, request, current_entry(request.scope))

    return endpoint


def protocol_endpoint(runtime: Runtime, adapter: Adapter) -> Endpoint:
    """What the front calls for a POST to `adapter`'s path: the request and its journal entry → the response."""

    def endpoint(request: Request, entry: Entry | None) -> Awaitable[ASGIApp]:
        return answer(runtime, adapter, request, entry)

    return endpoint


async def answer(runtime: Runtime, adapter: Adapter, request: Request, entry: Entry | None) -> ASGIApp:
    """The one pipeline: auth → body → parse (and the x-emulator-* headers) → rate limits → faults →
    scenario engine → shape → JSON or SSE, delivered on the request's timing plan.

    Returns a Response, or a Delivery on the timing plan.
    """
    context = runtime.context
    size = 0
    body: Any = None

    def keep(raw: bytes | bytearray, value: Any, is_json: bool) -> None:
        nonlocal size
        size = len(raw)
        if entry is not None:
            runtime.journal.keep_body(entry, raw, value, is_json)

    try:
        key = adapter.authenticate(request, context)
        body = await read_json(request, runtime.settings.max_body_bytes, keep)
        large = size > OFF_LOOP_BYTES or adapter.long_read(body)
        if large:  # read, matched and shaped in a worker thread: the Python part of the work stalls no one
            exchange, options = await asyncio.to_thread(adapter.parse, body, request, key, context)
        else:
            exchange, options = adapter.parse(body, request, key, context)
        asked_timing = timing_from_headers(exchange.headers)
        asked_fault = runtime.faults.from_header(exchange.headers)
    except ApiError as exc:
        if entry is not None:
            entry.action = "rejected"
            note_asked(entry, body)
        if size > OFF_LOOP_BYTES and isinstance(body, dict | list):  # millions of objects, maybe: freed in slices
            json_steps.free_in_slices(body)
        return error_response(runtime, adapter, exc.failure, entry)
    except ClientDisconnect:  # the client left while sending its body (or stopped sending it): nothing to answer
        refusal = refusal_of(request.scope)
        if entry is not None:
            entry.action, entry.disconnected = "rejected", refusal is None
            if refusal is not None:
                entry.error = {"message": refusal[1]}
        return Response(status_code=refusal[0] if refusal is not None else 499)
    if entry is not None:
        entry.model, entry.stream = exchange.model, exchange.stream
    call = Call(runtime, adapter, exchange, options, entry, asked_timing, asked_fault, large=large)
    limiter = runtime.limiter()
    if limiter is None:
        return await call.answer()
    prompt = count_messages(exchange.messages, exchange.tools) if limiter.limits.tokens else 0
    admission = limiter.admit(exchange, prompt, adapter.protocol)
    if admission.refusal is not None:
        call.note("rate_limited", f"rate limit ({admission.reason})")
        return error_response(runtime, adapter, admission.refusal, entry)
    call.limits = (limiter, admission)
    try:
        response = await call.answer()
    except BaseException:
        limiter.release(admission)
        raise
    return _Finally(response, lambda: limiter.release(admission))


@dataclass(slots=True)
class Call:
    """One parsed request on its way to an answer: faults first, then the engine, then the timing plan."""

    runtime: Runtime
    adapter: Adapter
    exchange: Exchange
    options: Any
    entry: Entry | None
    asked_timing: TimingSpec | None
    asked_fault: FaultRule | None
    large: bool = False  # a body this large is matched in a worker thread from the start
    limits: tuple[Limiter, Admission] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return self.limits[1].headers if self.limits else {}

    def note(self, action: str, fault: str | None = None) -> None:
        if self.entry is not None:
            self.entry.action = action
            if fault is not None:
                self.entry.fault = fault
                self.runtime.faults.record(self.entry.id, fault)

    async def answer(self) -> ASGIApp:
        runtime, exchange, entry = self.runtime, self.exchange, self.entry
        faults, background = runtime.faults, runtime.engine.settings.faults
        fault = who = None
        if self.asked_fault is not None or faults.runtime or background:  # else there is nothing to count or draw
            who = Who.of(exchange)
            fault = faults.before_reply(self.asked_fault, who, background)
            if fault is not None and not fault.fault.spec.needs_reply:
                return self.fault_response(fault)
        budget = runtime.settings.match_budget_ms / 1000
        shaped: Shaped | None = None
        try:
            if self.large:
                raise MoveOffLoop
            engine = runtime.engine
            if getattr(engine, "matches_with_regex", True):
                with matching(budget, ON_LOOP_S):
                    outcome = engine.respond(exchange)
            else:  # nothing to time: without a regex, matching a request that is not large is short
                outcome = engine.respond(exchange)
            decision = decision_of(outcome)
        except MoveOffLoop:  # long texts, or slow matching: the whole of it again, where it stalls no one
            outcome, decision, shaped = await asyncio.to_thread(self.decide_within, budget)
        if entry is not None:
            entry.rule = outcome.rule
            entry.action = "fail" if isinstance(outcome, Failure) else ("reply" if outcome.rule else "generated")
            if decision.misses:
                entry.misses = [asdict(miss) for miss in decision.misses]
        if fault is None and decision.fault is not None:
            fault = faults.pick([decision.fault], who or Who.of(exchange))
            if fault is not None and not fault.fault.spec.needs_reply:
                return self.fault_response(fault)
        if isinstance(outcome, Failure):  # only a latency applies to an error; the other faults break replies
            return self.failure_response(outcome, fault if fault and fault.fault.kind == "latency" else None)
        if fault is not None:
            self.note("fault", fault.fault.label)
        timing = (self.asked_timing or NO_TIMING).over(decision.timing).over(runtime.settings.timing)
        plan = timing.plan(lambda: seed_material(runtime.settings.seed, Who.of(exchange).test_id, exchange.body))
        if shaped is None:
            shaped = shape(outcome, exchange)
        if plan.chunk is not None:
            shaped.chunker = plan.chunk.split
        headers = self.headers
        if self.limits is not None:
            limiter, admission = self.limits
            headers = limiter.charge(admission, shaped.usage.completion_tokens, self.adapter.protocol)
        if exchange.stream:
            return self.stream_response(shaped, plan, headers, fault)
        return self.json_response(shaped, plan, headers, fault)

    def decide(self) -> tuple[Reply | Failure, Decision]:
        outcome = self.runtime.engine.respond(self.exchange)
        return outcome, decision_of(outcome)

    def decide_within(self, budget: float) -> tuple[Reply | Failure, Decision, Shaped | None]:
        """`decide` in a worker thread, with the whole matching budget; a reply shaped there too (its token
        counts are the other long part)."""
        with matching(budget):
            outcome, decision = self.decide()
        return outcome, decision, shape(outcome, self.exchange) if isinstance(outcome, Reply) else None

    def stream_response(self, shaped: Shaped, plan: Plan, headers: dict[str, str], fault: FaultRule | None) -> ASGIApp:
        adapter, context = self.adapter, self.runtime.context
        events = adapter.events(shaped, self.exchange, self.options)
        if fault is not None and fault.fault.spec.applies == "stream":
            failure = event_failure(fault.fault, adapter.protocol)
            parts, ending = break_stream(
                fault.fault, plan.schedule(events), lambda: adapter.error_event(failure, context)
            )
        elif plan.instant:  # every event at once: no schedule to work out
            parts, ending = ((encode(event), 0.0) for event in events), "complete"
        else:
            parts, ending = ((encode(event), at) for event, at in plan.schedule(events)), "complete"
        return Delivery(
            200,
            {**SSE_HEADERS, **headers},
            parts,
            delay=_latency_s(fault),
            ending=ending,
            chunked=True,
            on_done=self.on_stream_done,
            on_write=self.on_stream_write,
        )

    def json_response(self, shaped: Shaped, plan: Plan, headers: dict[str, str], fault: FaultRule | None) -> ASGIApp:
        response = json_text_response(self.adapter.render_json(shaped, self.exchange, self.options), headers=headers)
        delay = _latency_s(fault)
        if fault is not None and fault.fault.kind == "truncate":
            size = len(response.body)
            cut = min(fault.fault.bytes if fault.fault.bytes is not None else size // 2, max(size - 1, 0))
            return Delivery.of(response, delay=delay, cut=cut, on_done=self.on_stream_done)
        delay += plan.latency_ms / 1000
        return Delivery.of(response, delay=delay, on_done=self.on_stream_done) if delay > 0 else response

    def on_stream_write(self) -> None:
        """A chunk the pump wrote past the middleware: the journal times it as its middleware would."""
        entry = self.entry
        if entry is not None:
            now = elapsed_ms(entry)
            if entry.first_byte_ms is None:
                entry.first_byte_ms = now
            entry.chunk_times_ms.append(now)

    def on_stream_done(self, client_left: bool) -> None:
        if client_left and self.entry is not None:
            self.entry.disconnected = True

    def failure_response(self, failure: Failure, latency: FaultRule | None) -> ASGIApp:
        runtime, entry = self.runtime, self.entry
        if latency is not None:
            self.note("fault", latency.fault.label)
        if self.headers:
            failure = replace(failure, headers={**self.headers, **failure.headers})
        response = error_response(runtime, self.adapter, failure, entry)
        delay = _latency_s(latency)
        return Delivery.of(response, delay=delay, on_done=self.on_stream_done) if delay > 0 else response

    def fault_response(self, rule: FaultRule) -> ASGIApp:
        """An error or a transport fault that replaces the answer."""
        self.note("fault", rule.fault.label)
        if rule.fault.kind == "error":
            failure = error_failure(rule.fault, self.adapter.protocol, self.headers)
            return error_response(self.runtime, self.adapter, failure, self.entry)
        stopping = Failure(status=503, message=SHUTTING_DOWN)
        return transport_fault(rule.fault, self.on_stream_done, error_response(self.runtime, self.adapter, stopping))


def _latency_s(fault: FaultRule | None) -> float:
    """The wait before the headers a `latency` fault asks for."""
    return (fault.fault.value or 0) / 1000 if fault is not None and fault.fault.kind == "latency" else 0.0


class _Finally:
    """A response that runs `callback` once it has been sent (or abandoned)."""

    def __init__(self, response: ASGIApp, callback: Callable[[], None]) -> None:
        self.response = response
        self.callback = callback

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            self.callback()


def _model_body(model: CatalogModel) -> dict[str, object]:
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": model.owned_by}


def _anthropic_caller(request: Request, runtime: Runtime) -> bool:
    """Whether an Anthropic client asks (its `anthropic-version` or `x-api-key` header), once its key is checked
    the way its protocol checks it; a failed check answers in that protocol's envelope (see `api_error`)."""
    if anthropic_catalog.wants_anthropic_shape(request.headers):
        runtime.adapter_for(request.url.path, request.headers).authenticate(request, runtime.context)
        return True
    bearer_key(request, runtime.context.allowed_keys)
    return False


async def list_models(request: Request) -> Response:
    runtime = _runtime(request)
    if not _anthropic_caller(request, runtime):
        return json_response({"object": "list", "data": [_model_body(m) for m in runtime.catalog.listed()]})
    query = request.query_params
    lifecycle = [*query.getlist("lifecycle"), *query.getlist("lifecycle[]")]
    return json_response(anthropic_catalog.model_page(runtime.catalog.listed(), query, lifecycle))


async def retrieve_model(request: Request) -> Response:
    runtime = _runtime(request)
    anthropic = _anthropic_caller(request, runtime)
    requested = request.path_params["model_id"]
    model = runtime.catalog.models.get(requested)
    if model is None and anthropic:
        raise anthropic_catalog.not_found(requested)
    if model is None:  # a resource that is not there: 404 on every gateway
        available = f"Available models: {runtime.catalog.available()}. {DECLARE_HINT}"
        raise ApiError(
            404, f"The model '{requested}' does not exist. {available}", param="model", code="model_not_found"
        )
    return json_response(anthropic_catalog.model_info(model) if anthropic else _model_body(model))


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
        hint = hint_for(request.url.path, runtime.profile, _served_by(request), str(request.base_url))
        message = f"Unknown request URL: {request.method} {request.url.path}. Please check the URL and method."
        if hint is not None:
            message = hint.message(request.method, request.url.path)
            adapter = next(
                a for a in runtime.adapters if a.protocol == ("chat" if hint.protocol == "models" else hint.protocol)
            )
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
    paths = runtime.profile.paths
    routes: list[BaseRoute] = []
    for adapter in runtime.adapters:
        routes.append(Route(paths[adapter.protocol], create_endpoint(adapter), methods=["POST"]))
        routes.extend(adapter.extra_routes(paths[adapter.protocol]))
    # an Anthropic client's base URL is where its SDK appends /v1/messages: its /v1/models sits beside that
    for models in dict.fromkeys((paths["models"], paths["messages"].rsplit("/", 1)[0] + "/models")):
        routes.append(Route(models, list_models, methods=["GET"]))
        routes.append(Route(models + "/{model_id:path}", retrieve_model, methods=["GET"]))
    routes.append(Mount(CONTROL_PREFIX, routes=[*control.routes(), *fault_control.routes()]))
    return routes


def build_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
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
    )
    app.state.runtime = runtime
    return app
