"""What a matching rule does: reply, fail, or step through a sequence of those."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from emulator.exchange import Choice, Exchange, Failure, Reply, ToolCall, UsageOverride, cached
from emulator.scenarios.templates import RenderBudget, Template, template_context

if TYPE_CHECKING:
    from emulator.faults.rules import FaultRule
    from emulator.generate import Generator
    from emulator.timing import TimingSpec

Then = Literal["repeat_last", "cycle"]
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class Run:
    """One request being answered by one rule."""

    exchange: Exchange
    generator: Generator
    rule: str  # the rule's name, reported in Reply.rule / Failure.rule
    key: str  # stable identity of the rule (and sequence step); seeds call ids and generated text
    captures: dict[str, str] = field(default_factory=dict)
    sentences: tuple[int, int] = (1, 3)
    locale: str | None = None  # None: the generator's own locale
    next_count: Callable[[], int] = lambda: 0  # how many times this rule answered before (sequences)
    render_chars: int | None = None  # what the reply's templates may render to, in all (None: no bound)
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def context(self) -> dict[str, Any]:
        if "context" not in self._cache:
            budget = RenderBudget(self.render_chars) if self.render_chars is not None else None
            self._cache["context"] = template_context(self.exchange, self.captures, budget)
        return self._cache["context"]

    @property
    def conversation_digest(self) -> str:
        if "digest" not in self._cache:
            self._cache["digest"] = conversation_digest(self.exchange)
        return self._cache["digest"]

    def stable_id(self, *parts: object) -> str:
        """`call_` + 24 chars [a-z0-9], the same for the same rule, position and conversation."""
        seed = "|".join([self.key, self.conversation_digest, *map(str, parts)])
        number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
        chars = []
        for _ in range(24):
            number, digit = divmod(number, 36)
            chars.append(_ALPHABET[digit])
        return "call_" + "".join(chars)


def conversation_digest(exchange: Exchange) -> str:
    parts: list[Any] = []
    for message in exchange.messages:
        result = message.tool_result
        parts.append(
            [
                message.role,
                message.text,
                [[c.id, c.name, c.arguments] for c in message.tool_calls],
                [result.call_id, result.content] if result else None,
            ]
        )
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Decision:
    """What a rule answers, with the timing and the fault its rule or sequence step attaches; `misses`: the
    rules the journal should say did not match, and why (the nearest ones, or those the time budget cut)."""

    outcome: Reply | Failure
    timing: TimingSpec | None = None
    fault: FaultRule | None = None
    misses: tuple[Any, ...] = ()  # RuleMiss (emulator/scenarios/engine.py)


class Action(ABC):
    @abstractmethod
    def run(self, run: Run) -> Reply | Failure: ...

    def decide(self, run: Run) -> Decision:
        return Decision(self.run(run))


@dataclass(frozen=True)
class Attached(Action):
    """An action with a `timing` and a `fault` (a rule's or a sequence step's); the step's win over the rule's."""

    action: Action
    timing: TimingSpec | None = None
    fault: FaultRule | None = None

    def run(self, run: Run) -> Reply | Failure:
        return self.action.run(run)

    def decide(self, run: Run) -> Decision:
        inner = self.action.decide(run)
        if self.timing is None and self.fault is None:
            return inner
        timing = inner.timing.over(self.timing) if inner.timing is not None else self.timing
        return Decision(inner.outcome, timing, inner.fault or self.fault, inner.misses)


# Templated JSON for tool-call arguments: mappings and lists of templates and plain JSON scalars.
TemplatedJson = dict[str, "TemplatedJson"] | list["TemplatedJson"] | Template | int | float | bool | None


def render_json(value: TemplatedJson, context: dict[str, Any]) -> Any:
    if isinstance(value, Template):
        return value.render_value(context)
    if isinstance(value, dict):
        return {key: render_json(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_json(item, context) for item in value]
    return value


@dataclass(frozen=True)
class ToolCallSpec:
    name: str
    arguments: TemplatedJson | None = None  # a mapping of templated values
    arguments_text: Template | None = None  # or a JSON string, sent as written (after templating)
    id: str | None = None

    def build(self, run: Run, choice_index: int, call_index: int) -> ToolCall:
        if self.arguments_text is not None:
            arguments = self.arguments_text.render(run.context)
        elif self.arguments is not None:
            arguments = json.dumps(render_json(self.arguments, run.context), ensure_ascii=False)
        else:
            arguments = json.dumps(self._generated_arguments(run, choice_index, call_index), ensure_ascii=False)
        call_id = self.id or run.stable_id("call", choice_index, call_index)
        return ToolCall(id=call_id, name=self.name, arguments=arguments)

    def _generated_arguments(self, run: Run, choice_index: int, call_index: int) -> Any:
        offered = next((tool for tool in run.exchange.tools if tool.name == self.name), None)
        if offered is None:
            return {}
        keys = ("arguments", run.key, run.conversation_digest, str(choice_index), str(call_index))
        return run.generator.from_schema(dict(offered.parameters), *keys)


@dataclass(frozen=True)
class ChoiceSpec:
    content: Template | None = None
    reasoning: Template | None = None
    refusal: Template | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    finish_reason: str | None = None

    @cached
    def _fixed(self) -> tuple[str, str | None, str | None] | None:
        """(content, reasoning, refusal) when they are plain text: no template to fill in, no text to generate."""
        if self.content is None or self.tool_calls:
            return None
        texts = (self.content, self.reasoning, self.refusal)
        if any(t is not None and not t.is_static for t in texts):
            return None
        return self.content.source, _source(self.reasoning), _source(self.refusal)

    def build(self, run: Run, index: int) -> Choice:
        fixed = self._fixed
        if fixed is not None:
            return Choice(content=fixed[0], reasoning=fixed[1], refusal=fixed[2], finish_reason=self.finish_reason)
        content = _render(self.content, run)
        if content is None and not self.tool_calls and self.refusal is None:
            # a reply that says nothing about its content gets generated text
            keys = ("content", run.key, run.conversation_digest, str(index))
            content = run.generator.text(*keys, sentences=run.sentences, locale=run.locale)
        return Choice(
            content=content,
            reasoning=_render(self.reasoning, run),
            tool_calls=[call.build(run, index, i) for i, call in enumerate(self.tool_calls)],
            refusal=_render(self.refusal, run),
            finish_reason=self.finish_reason,
        )


@dataclass(frozen=True)
class ReplyAction(Action):
    choices: tuple[ChoiceSpec, ...]
    repeat: bool = True  # one choice given: repeat it for each of the request's `n`
    usage: UsageOverride = field(default_factory=UsageOverride)

    def run(self, run: Run) -> Reply:
        specs = self.choices * max(run.exchange.n, 1) if self.repeat else self.choices
        choices = [spec.build(run, index) for index, spec in enumerate(specs)]
        return Reply(choices=choices, usage=self.usage, rule=run.rule)


@dataclass(frozen=True)
class FailAction(Action):
    """An error answer. Without a message of its own, the profile's wording for the status is sent: the same
    words a `fault: {error: N}` or a real rate limit gets."""

    status: int
    message: Template | None = None
    type: str | None = None
    code: str | None = None
    param: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def run(self, run: Run) -> Failure:
        message = _render(self.message, run) or ""
        return Failure(
            status=self.status,
            message=message,
            type=self.type,
            code=self.code,
            param=self.param,
            headers=dict(self.headers),
            rule=run.rule,
        )


@dataclass(frozen=True)
class SequenceAction(Action):
    """The n-th matching request gets step n; past the end, `then` repeats the last step or starts over."""

    steps: tuple[Action, ...]
    then: Then = "repeat_last"

    def step_index(self, count: int) -> int:
        if count < len(self.steps):
            return count
        return len(self.steps) - 1 if self.then == "repeat_last" else count % len(self.steps)

    def run(self, run: Run) -> Reply | Failure:
        return self.decide(run).outcome

    def decide(self, run: Run) -> Decision:
        index = self.step_index(run.next_count())
        return self.steps[index].decide(replace(run, key=f"{run.key}/{index + 1}"))


def _source(template: Template | None) -> str | None:
    return None if template is None else template.source


def _render(template: Template | None, run: Run) -> str | None:
    if template is None:
        return None
    return template.source if template.is_static else template.render(run.context)
