"""Rules in order → the first that matches answers; otherwise the fallback (generated text or an error)."""

from __future__ import annotations

import difflib
import functools
import heapq
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emulator.exchange import Exchange, Failure, Reply
from emulator.names import TEST_ID_HEADER
from emulator.scenarios.actions import Decision, Run
from emulator.scenarios.index import RuleIndex
from emulator.scenarios.matchers import AllOf, Condition, TextIs
from emulator.scenarios.regexes import MatchTimeout, Regex, check_slice
from emulator.scenarios.schema import DEFAULT_SENTENCES, FALLBACKS, DeclaredModel, Rule, Scenario, ScenarioSettings
from emulator.scenarios.templates import RenderTooLarge

if TYPE_CHECKING:
    from emulator.generate import Generator

NEAREST_SHOWN = 3
COMPARED_CHARS = 64  # near-miss ranking compares this much of each end of two texts: its cost never grows with them

ReplyGenerator = Callable[..., Reply]  # generated_reply(exchange, generator, *, sentences, tool_calls) -> Reply


@dataclass(frozen=True)
class RuleMiss:
    """Why one rule did not match a request."""

    rule: str
    file: str
    line: int
    satisfied: int  # top-level conditions that held
    total: int
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        where = f"{Path(self.file).name}:{self.line}"
        held = f"{self.satisfied} of {self.total} " + ("condition holds" if self.total == 1 else "conditions hold")
        return f"{self.rule!r} ({where}, {held}): {'; '.join(self.reasons)}"


class State:
    """Sequence counters, kept per scope (test id) and rule key, so that parallel tests can be isolated by scope.

    A request whose matching moved off the event loop counts in a worker thread: the lock keeps each count whole.
    """

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    def next(self, scope: str, key: str) -> int:
        """How many times the rule answered in this scope before now; counts this time."""
        with self._lock:
            counts = self._counts.get(scope)
            if counts is None:
                counts = self._counts[scope] = {}
            count = counts.get(key, 0)
            counts[key] = count + 1
        return count

    def count(self, scope: str, key: str) -> int:
        return self._counts.get(scope, {}).get(key, 0)

    def scopes(self) -> list[str]:
        return list(self._counts)

    def reset(self, scope: str | None = None) -> None:
        with self._lock:
            if scope is None:
                self._counts.clear()
            else:
                self._counts.pop(scope, None)


def merged_settings(scenarios: Sequence[Scenario], fallback: str | None = None) -> ScenarioSettings:
    """For each setting, the first scenario that sets it wins; an explicit `fallback` (a flag) wins over them all."""
    settings = [scenario.settings for scenario in scenarios]
    return ScenarioSettings(
        fallback=fallback or next((s.fallback for s in settings if s.fallback), "generate"),
        locale=next((s.locale for s in settings if s.locale), None),
        sentences=next((s.sentences for s in settings if s.sentences), DEFAULT_SENTENCES),
        tool_calls=next((s.tool_calls for s in settings if s.tool_calls), "forced"),
        timing=next((s.timing for s in settings if s.timing), None),
        faults=tuple(fault for s in settings for fault in s.faults),
        rate_limits=next((s.rate_limits for s in settings if s.rate_limits), None),
        loop_guard=next((s.loop_guard for s in settings if s.loop_guard), None),
        profile=next((s.profile for s in settings if s.profile), None),
        api_keys=tuple(dict.fromkeys(key for s in settings for key in s.api_keys)),
    )


class Engine:
    def __init__(
        self,
        scenarios: Sequence[Scenario],
        *,
        generator: Generator,
        fallback: str | None = None,
        reply_generator: ReplyGenerator | None = None,
        render_chars: int | None = None,
    ) -> None:
        if fallback is not None and fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
        if reply_generator is None:
            from emulator.generate import generated_reply

            reply_generator = generated_reply
        self.generator = generator
        self.state = State()
        self.fallback_flag = fallback  # the --fallback flag: wins over every scenario's settings.fallback
        self.reply_generator = reply_generator  # what answers when no rule matches and the fallback is generate
        self.render_chars = render_chars  # what one reply's templates may render to, in all (None: no bound)
        self.replace(scenarios)

    def replace(self, scenarios: Sequence[Scenario]) -> None:
        """Swap in reloaded scenarios; sequence counters start over."""
        self.scenarios = list(scenarios)
        self.settings = merged_settings(self.scenarios, self.fallback_flag)
        self._rules: list[tuple[Rule, ScenarioSettings]] = [
            (rule, _own_settings(scenario.settings, self.settings))
            for scenario in self.scenarios
            for rule in scenario.rules
        ]
        self._index = RuleIndex(
            [((rule, settings, _may_capture(rule.when)), rule.when) for rule, settings in self._rules]
        )
        self.uses_regex = any(_has_regex(rule.when) for rule, _ in self._rules)  # else matching needs no clock
        self.state.reset()

    @property
    def rules(self) -> list[Rule]:
        return [rule for rule, _ in self._rules]

    @property
    def has_rules(self) -> bool:
        return bool(self._rules)

    @property
    def fallback(self) -> str:
        return self.settings.fallback or "generate"

    @property
    def declared_models(self) -> list[DeclaredModel]:
        """Models the scenarios declare, in load order; the first declaration of an id wins."""
        models: dict[str, DeclaredModel] = {}
        for scenario in self.scenarios:
            for model in scenario.models:
                models.setdefault(model.id, model)
        return list(models.values())

    def reset(self, scope: str | None = None) -> None:
        """Clear sequence counters of one scope (the x-emulator-test-id header value), or of all."""
        self.state.reset(scope)

    def match(self, exchange: Exchange) -> Rule | None:
        return next((rule for rule, _, _ in self._index.candidates(exchange) if rule.when.matches(exchange)), None)

    def respond(self, exchange: Exchange) -> Reply | Failure:
        """The answer alone (`decide` without the timing, fault and misses that come with it)."""
        return self.decide(exchange).outcome

    def decide(self, exchange: Exchange) -> Decision:
        """The answer, with the timing (scenario settings, rule, step) and the fault the matching rule attaches.

        On a matching clock (emulator/scenarios/regexes.py), a regex reached once the budget is spent is not run:
        its rule misses, and the decision lists it among its misses.
        """
        scope = exchange.headers.get(TEST_ID_HEADER, "")
        cut: list[RuleMiss] = []
        for tried, (rule, settings, captures) in enumerate(self._index.candidates(exchange)):
            if tried & 15 == 15:  # now and then: a regex checks the clock itself
                check_slice()
            try:
                if not rule.when.matches(exchange):
                    continue
            except MatchTimeout as timeout:
                cut.append(_cut_short(rule, timeout))
                continue
            run = Run(
                exchange=exchange,
                generator=self.generator,
                rule=rule.name,
                key=rule.seed or rule.key,
                captures=_captures(rule.when, exchange) if captures else {},
                sentences=settings.sentences or DEFAULT_SENTENCES,
                locale=settings.locale,
                next_count=functools.partial(self.state.next, scope, rule.key),
                render_chars=self.render_chars,
            )
            try:
                decision = rule.action.decide(run)
            except RenderTooLarge as too_large:
                where = f"{rule.file}:{rule.pos.line}"
                message = f"The reply of rule {rule.name!r} ({where}) is too large for this emulator: {too_large} (--max-rendered-chars)."
                decision = Decision(Failure(status=400, message=message, code="reply_too_large", rule=rule.name))
            timing = decision.timing.over(settings.timing) if decision.timing else settings.timing
            if timing is not decision.timing or cut:
                decision = Decision(decision.outcome, timing, decision.fault, tuple(cut))
            return decision
        if self.fallback == "error":
            nearest = self.explain(exchange, NEAREST_SHOWN) if self._rules else []
            message = self._no_match_message(nearest)
            return Decision(Failure(status=400, message=message), self.settings.timing, misses=(*cut, *nearest))
        sentences = self.settings.sentences or DEFAULT_SENTENCES
        tool_calls = self.settings.tool_calls or "forced"  # merged_settings' default
        reply = self.reply_generator(exchange, self.generator, sentences=sentences, tool_calls=tool_calls)
        return Decision(reply, self.settings.timing, misses=tuple(cut))

    def explain(self, exchange: Exchange, limit: int | None = None) -> list[RuleMiss]:
        """Rules that do not match, nearest first: fewest failed conditions, closest text, most held.

        With a `limit`, only that many; texts are compared only for the rules that compete for those places,
        and only by their ends (COMPARED_CHARS), so the cost grows with the rules, never with the prompt.
        """
        misses = []
        for order, (rule, _) in enumerate(self._rules):
            check_slice()
            conditions = _top_level(rule.when)
            failed = [reason for c in conditions if (reason := _explained(c, exchange)) is not None]
            if not failed:
                continue
            satisfied = len(conditions) - len(failed)
            miss = RuleMiss(rule.name, rule.file, rule.pos.line, satisfied, len(conditions), tuple(failed))
            misses.append((len(failed), order, miss, conditions))
        if limit is not None and len(misses) > limit:  # the places go to the fewest failed conditions first
            boundary = heapq.nsmallest(limit, (m[0] for m in misses))[-1]
            misses = [m for m in misses if m[0] <= boundary]
        ranked = [
            (failed, -_closeness(exchange, conditions), -miss.satisfied, order, miss)
            for failed, order, miss, conditions in misses
        ]
        ranked.sort(key=lambda entry: entry[:4])
        return [entry[-1] for entry in ranked[:limit]]

    def _no_match_message(self, nearest: Sequence[RuleMiss]) -> str:
        if not self._rules:
            return "No scenario rule matched this request: no rules are loaded."
        listed = " ".join(f"{i}) {miss}." for i, miss in enumerate(nearest, start=1))
        return f"No scenario rule matched this request. Nearest rules: {listed}"


def _explained(condition: Condition, exchange: Exchange) -> str | None:
    try:
        return condition.explain(exchange)
    except MatchTimeout as timeout:
        return f"{condition.describe()}: not tried, {timeout}"


def _captures(condition: Condition, exchange: Exchange) -> dict[str, str]:
    try:
        return condition.captures(exchange)
    except MatchTimeout:
        return {}


def _cut_short(rule: Rule, timeout: MatchTimeout) -> RuleMiss:
    total = len(_top_level(rule.when))
    return RuleMiss(rule.name, rule.file, rule.pos.line, 0, total, (f"{rule.when.describe()}: not tried, {timeout}",))


def _own_settings(own: ScenarioSettings, merged: ScenarioSettings) -> ScenarioSettings:
    """A rule's generated text follows its own scenario's settings, then the merged ones."""
    return ScenarioSettings(
        fallback=merged.fallback,
        locale=own.locale or merged.locale,
        sentences=own.sentences or merged.sentences,
        timing=own.timing or merged.timing,
    )


def _closeness(exchange: Exchange, conditions: tuple[Condition, ...]) -> float:
    """How alike the request's text is to what a failed `last_user` condition expected (0–1), to rank near misses:
    their ends compared, COMPARED_CHARS of each, whatever their length."""
    text = _ends(exchange.last_user_text)
    ratios = []
    for condition in conditions:
        if isinstance(condition, TextIs) and condition.subject == "last_user":
            try:
                if condition.matches(exchange):
                    continue
            except MatchTimeout:
                pass
            ratios += [
                difflib.SequenceMatcher(None, text, _ends(value), autojunk=False).ratio()
                for value in condition.matcher.values
            ]
    return round(max(ratios, default=0.0), 2)


def _ends(text: str) -> str:
    return text if len(text) <= 2 * COMPARED_CHARS else text[:COMPARED_CHARS] + text[-COMPARED_CHARS:]


def _has_regex(value: object) -> bool:
    """Whether a condition holds a regex anywhere (a text matcher of its own, or of a child, a field test, …)."""
    if isinstance(value, Regex):
        return True
    if isinstance(value, tuple | list):
        return any(_has_regex(item) for item in value)
    if is_dataclass(value) and not isinstance(value, type):
        return any(_has_regex(getattr(value, f.name)) for f in fields(value))
    return False


def _may_capture(condition: Condition) -> bool:
    """Whether `condition.captures` can find anything (a regex on `last_user`, alone or in `all`); the others
    are not asked for each request."""
    if isinstance(condition, AllOf):
        return any(_may_capture(child) for child in condition.children)
    if isinstance(condition, TextIs):
        return condition.subject == "last_user" and condition.matcher.pattern is not None
    return type(condition).captures is not Condition.captures


def _top_level(condition: Condition) -> tuple[Condition, ...]:
    return condition.children if isinstance(condition, AllOf) else (condition,)
