"""The scenario engine plus what one test id adds for itself: its own scenarios and injected failures.

A test that loads a scenario through the control API (or the pytest plugin) with its test id gets an
overlay: its rules are tried before the shared ones, for its requests only. `fail_next` queues failures
that the test's next requests get before any rule is tried.

What a test id keeps (its overlay, queued failures, sequence counters) is forgotten once the id has been idle
for `ttl_s` (--test-state-ttl-s), or, when more than `max_scopes` ids are in use, the least recently used
first: a suite that never resets, or requests with a new id each time, cannot grow it without end.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from emulator.exchange import Exchange, Failure
from emulator.names import TEST_ID_HEADER
from emulator.scenarios.actions import Decision
from emulator.scenarios.engine import Engine, RuleMiss
from emulator.scenarios.schema import DeclaredModel, Rule, Scenario, ScenarioSettings

if TYPE_CHECKING:
    from emulator.generate import Generator

FAIL_NEXT_RULE = "fail_next"  # the rule name journaled for an injected failure
MAX_SCOPES = 10_000  # test ids whose state is kept at once
SWEEP_EVERY_S = 60.0  # how often idle test ids are looked for (at most)


class ScopedEngine(Engine):
    def __init__(
        self,
        scenarios: Sequence[Scenario],
        *,
        generator: Generator,
        fallback: str | None = None,
        render_chars: int | None = None,
        ttl_s: float = 3600.0,
        max_scopes: int = MAX_SCOPES,
    ) -> None:
        self._overlays: dict[str, list[Scenario]] = {}
        self._overlay_engines: dict[str, Engine] = {}
        self._failures: dict[str, deque[Failure]] = {}
        self._used: OrderedDict[str, float] = OrderedDict()  # test id → when it was last used, oldest first
        self.ttl_s = ttl_s
        self.max_scopes = max_scopes
        self._sweep_at = 0.0
        self.on_forget: Callable[[bool], None] | None = None  # told whether a forgotten id had an overlay
        super().__init__(scenarios, generator=generator, fallback=fallback, render_chars=render_chars)

    # ------------------------------------------------------------ shared scenarios

    def replace(self, scenarios: Sequence[Scenario]) -> None:
        super().replace(scenarios)
        for scope in list(self._overlays):
            self._rebuild(scope)
        self._note_regexes()

    # ------------------------------------------------------------ one test's own

    def overlay(self, scope: str) -> list[Scenario]:
        return list(self._overlays.get(scope, ()))

    def scopes(self) -> list[str]:
        return list(self._overlays)

    def set_overlay(self, scope: str, scenarios: Sequence[Scenario]) -> None:
        """Scenarios that answer requests of this test id only, before the shared ones (empty: drop them)."""
        self.touch(scope)
        if scenarios:
            self._overlays[scope] = list(scenarios)
            self._rebuild(scope)
        else:
            self._overlays.pop(scope, None)
            self._overlay_engines.pop(scope, None)
        self._note_regexes()

    def fail_next(self, scope: str, failures: Sequence[Failure]) -> None:
        self.touch(scope)
        self._failures.setdefault(scope, deque()).extend(failures)

    def pending_failures(self, scope: str) -> int:
        return len(self._failures.get(scope, ()))

    def forget(self, scope: str | None = None) -> None:
        """Drop overlays and queued failures of one test id, or of all."""
        for table in (self._overlays, self._overlay_engines, self._failures, self._used):
            if scope is None:
                table.clear()
            else:
                table.pop(scope, None)
        self._note_regexes()

    def touch(self, scope: str) -> None:
        """Note that a test id is in use; forget the ids idle past the ttl, or past `max_scopes` ids."""
        if not scope:
            return
        now = time.monotonic()
        used = self._used
        used.pop(scope, None)
        used[scope] = now
        if len(used) > self.max_scopes or now >= self._sweep_at:
            self._expire(now)

    def _expire(self, now: float) -> None:
        """Forget the ids idle past the ttl and those past `max_scopes`, oldest first (as many as go, no more)."""
        self._sweep_at = now + min(self.ttl_s, SWEEP_EVERY_S)
        used = self._used
        had_overlay = False
        while used:
            scope, last = next(iter(used.items()))
            if len(used) <= self.max_scopes and now - last < self.ttl_s:
                break  # the rest were used more recently
            had_overlay = had_overlay or scope in self._overlays
            self.forget(scope)
            self.state.reset(scope)
        if had_overlay and self.on_forget is not None:
            self.on_forget(had_overlay)

    def _rebuild(self, scope: str) -> None:
        engine = Engine(
            [*self._overlays[scope], *self.scenarios],
            generator=self.generator,
            fallback=self.fallback_flag,
            reply_generator=self.reply_generator,
            render_chars=self.render_chars,
        )
        engine.state = self.state  # counters stay keyed by (scope, rule), shared with the plain engine
        self._overlay_engines[scope] = engine

    def _note_regexes(self) -> None:
        """Whether some rule (shared or a test's own) holds a regex: then matching runs on a clock."""
        self.matches_with_regex = self.uses_regex or any(e.uses_regex for e in self._overlay_engines.values())

    def _for(self, exchange: Exchange) -> Engine | None:
        if not self._overlay_engines:
            return None
        return self._overlay_engines.get(exchange.headers.get(TEST_ID_HEADER, ""))

    # ------------------------------------------------------------ answering

    def decide(self, exchange: Exchange) -> Decision:
        """A queued failure first (it comes with no timing or fault of its own), then the test's overlay, then
        the shared rules."""
        scope = exchange.headers.get(TEST_ID_HEADER, "")
        if scope:
            self.touch(scope)
        if self._failures:
            queued = self._failures.get(scope)
            if queued:
                return Decision(queued.popleft())
        engine = self._for(exchange)
        return engine.decide(exchange) if engine else super().decide(exchange)

    def settings_for(self, exchange: Exchange) -> ScenarioSettings:
        """The settings a request sees: its test's scenarios' (over the shared ones), else the shared ones."""
        engine = self._for(exchange)
        return engine.settings if engine else self.settings

    def match(self, exchange: Exchange) -> Rule | None:
        engine = self._for(exchange)
        return engine.match(exchange) if engine else super().match(exchange)

    def explain(self, exchange: Exchange, limit: int | None = None) -> list[RuleMiss]:
        engine = self._for(exchange)
        return engine.explain(exchange, limit) if engine else super().explain(exchange, limit)

    @property
    def declared_models(self) -> list[DeclaredModel]:
        """Shared declarations first, then the overlays' (a model is global to the catalog)."""
        models = {model.id: model for model in super().declared_models}
        for scenarios in self._overlays.values():
            for scenario in scenarios:
                for model in scenario.models:
                    models.setdefault(model.id, model)
        return list(models.values())
