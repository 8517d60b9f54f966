"""The Runtime: everything one server holds — settings, the gateway profile, the model catalog, the scenario
engine, the protocol adapters and their stores, the journal, the fault book, the rate limiter.

The request pipeline reads it; the control API (emulator/control/) changes it; it is the app's
`state.runtime`, which is how Starlette's routes (the control API's, the models', the adapters' extra ones)
reach it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.requests import Request

from emulator.config import Settings
from emulator.errors import ApiError
from emulator.exchange import Failure
from emulator.faults.book import FaultBook
from emulator.faults.kinds import BEHAVIOUR_KINDS
from emulator.generate import Generator
from emulator.http import dumps
from emulator.journal import SECRET_HEADERS, Entry, Journal
from emulator.loop_guard import LoopWatch
from emulator.names import SCOPE_PREFIX
from emulator.profiles import DEFAULT_PROFILE, PROFILES, Catalog, CatalogModel, Profile
from emulator.protocols import registry
from emulator.protocols.base import Adapter, Context
from emulator.ratelimit import Limiter
from emulator.scenarios.engine import NEAREST_SHOWN, Engine, merged_settings
from emulator.scenarios.loader import load_scenarios
from emulator.scenarios.problems import Problem
from emulator.scenarios.regexes import matching
from emulator.scenarios.schema import Scenario
from emulator.scenarios.scoped_engine import ScopedEngine
from emulator.server.metrics import Metrics
from emulator.state.counters import SharedCounters
from emulator.state.journal import SharedJournal
from emulator.state.redis_state import RedisState


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
    engine: ScopedEngine
    adapters: list[Adapter] = field(default_factory=registry.adapters)
    journal: Journal = field(default_factory=Journal)
    scenario_status: ScenarioStatus = field(default_factory=ScenarioStatus)
    faults: FaultBook = field(default_factory=FaultBook)  # run-time faults, counters, what was injected
    shared: RedisState | None = field(default=None, repr=False)  # the state shared with other workers (--state)
    metrics: Metrics | None = None  # what GET /metrics counts; None: --metrics off
    loops: LoopWatch = field(default_factory=lambda: LoopWatch(BEHAVIOUR_KINDS))  # the agent-loop guard's memory
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
        adapters = registry.adapters(settings.store_bytes)
        runtime = cls(settings, profile, catalog_for(engine), engine, adapters, journal_for(settings))
        runtime.faults = FaultBook(seed=settings.seed)
        if settings.state is not None:
            runtime.share(settings.state)
        runtime.metrics = Metrics() if settings.metrics != "off" else None
        runtime.scenario_status.from_files = len(scenarios)
        engine.on_forget = lambda had_overlay: setattr(runtime, "catalog", catalog_for(engine))
        return runtime

    def share(self, url: str) -> None:
        """Keep what workers and replicas must have in common in the shared state at `url` (emulator/state/)."""
        settings = self.settings
        state = RedisState(
            url,
            journal_entries=settings.journal_entries,
            journal_bytes=settings.journal_bytes,
            store_bytes=settings.store_bytes,
            ttl_s=settings.test_state_ttl_s,
        )
        state.file_scenarios = list(self.engine.scenarios)
        self.shared = state
        self.engine.state = SharedCounters()
        self.journal = SharedJournal(
            state,
            settings.journal_entries,
            max_bytes=settings.journal_bytes,
            body_bytes=settings.journal_body_bytes,
            header_bytes=settings.journal_header_bytes,
        )

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
        had_overlay = test_id is None or test_id in self.engine.scopes()
        self.engine.forget(test_id)
        if had_overlay:
            self.catalog = catalog_for(self.engine)
        self.journal.clear(test_id)
        self.faults.reset(test_id)
        self.loops.reset(test_id)
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
        """Scenarios that answer this test id only."""
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
        """The adapter whose envelope an answer on `path` is written in: the protocol's own on its paths;
        elsewhere the one that claims the caller by its headers (an Anthropic client: `anthropic-version`,
        `x-api-key`), else the first (OpenAI's)."""
        protocol = self.protocol_for(path)
        for adapter in self.adapters:
            if adapter.protocol == protocol:
                return adapter
        if headers is not None:
            for adapter in self.adapters:
                if adapter.claims(headers):
                    return adapter
        return self.adapters[0]

    def adapter_named(self, protocol: str) -> Adapter | None:
        return next((adapter for adapter in self.adapters if adapter.protocol == protocol), None)

    def error_body(self, path: str, status: int, message: str) -> bytes:
        """What the connection layer (emulator/server/transport.py) answers its own errors with: the path's
        envelope."""
        if path.startswith(SCOPE_PREFIX):  # /_emulator/t/<test id>/v1/…: the path after the test id
            path = "/" + path[len(SCOPE_PREFIX) :].partition("/")[2]
        adapter = self.adapter_for(path)
        return dumps(adapter.error_body(Failure(status=status, message=message), self.context)).encode()

    def explain(self, entry: Entry) -> list[dict[str, Any]]:
        """The nearest rules and why each missed, from a journaled request (the rules loaded now).

        Explaining a miss costs a pass over every rule, so the request path does not do it: an entry answered
        by the generate fallback keeps its body and headers, and this works it out from them when asked.
        """
        adapter = self.adapter_named(entry.protocol) if entry.protocol is not None else None
        if adapter is None or not isinstance(entry.body, dict):
            return []
        headers = [
            (name.encode("latin-1"), value.encode("latin-1", "replace"))
            for name, value in entry.headers.items()
            if name not in SECRET_HEADERS
        ]
        request = Request({"type": "http", "method": entry.method, "path": entry.path, "headers": headers})
        try:
            exchange, _ = adapter.parse(entry.body, request, "", self.context)
        except (ApiError, NotImplementedError):
            return []
        with matching(self.settings.match_budget_ms / 1000):
            return [asdict(miss) for miss in self.engine.explain(exchange, NEAREST_SHOWN)]


def journal_for(settings: Settings) -> Journal:
    return Journal(
        settings.journal_entries,
        max_bytes=settings.journal_bytes,
        body_bytes=settings.journal_body_bytes,
        header_bytes=settings.journal_header_bytes,
    )


def catalog_for(engine: Engine) -> Catalog:
    declared = [
        CatalogModel(
            id=d.id, owned_by=d.owned_by or "tokenhub-emulator", created=0, reasoning=d.reasoning, serves=d.serves
        )
        for d in engine.declared_models
    ]
    return Catalog.with_builtins(declared)
