"""Apply the request's limits to a Reply and count its tokens: the protocol-neutral last step before rendering.

`stop` cuts the text before the first stop sequence; `max_tokens` spends its budget on reasoning,
then content, then tool-call arguments, truncating where it runs out (finish reason `length`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

from emulator.exchange import Choice, Exchange, Reply, ToolCall
from emulator.tokens import count_messages, count_text, split_tokens, truncate_to_tokens


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class Shaped:
    choices: list[Choice]
    usage: Usage
    chunker: Callable[[str], list[str]] = split_tokens  # how streamed text is cut into deltas
    stop_sequences: list[str | None] = field(default_factory=list)  # per choice: the `stop` entry that cut it

    def pieces(self, text: str | None) -> list[str]:
        """`text` cut into the deltas a stream sends (one token each unless the timing plan says otherwise)."""
        return self.chunker(text) if text else []


def first_stop(text: str | None, stops: list[str]) -> str | None:
    """The stop sequence that occurs first in `text` (the one `stop` cuts at), or None."""
    found = [(i, s) for s in stops if s and text and (i := text.find(s)) >= 0]
    return min(found, key=lambda hit: hit[0])[1] if found else None


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _spend(text: str | None, budget: int) -> tuple[str | None, int, bool]:
    """Fit `text` into `budget` tokens: (text kept, budget left, was it truncated)."""
    if not text:
        return text, budget, False
    cost = count_text(text)
    if cost <= budget:
        return text, budget - cost, False
    return truncate_to_tokens(text, budget), 0, True


def _tool_call_tokens(call: ToolCall) -> int:
    return count_text(call.name) + count_text(call.arguments)


def _limit(choice: Choice, budget: int) -> tuple[Choice, bool]:
    reasoning, budget, cut = _spend(choice.reasoning, budget)
    if cut:
        return replace(choice, reasoning=reasoning, content=None if choice.content is None else "", tool_calls=[]), True
    content, budget, cut = _spend(choice.content, budget)
    if cut:
        return replace(choice, reasoning=reasoning, content=content, tool_calls=[]), True
    calls: list[ToolCall] = []
    for call in choice.tool_calls:
        cost = _tool_call_tokens(call)
        if cost <= budget:
            calls.append(call)
            budget -= cost
            continue
        arguments = truncate_to_tokens(call.arguments, max(budget - count_text(call.name), 0))
        calls.append(replace(call, arguments=arguments))
        return replace(choice, reasoning=reasoning, content=content, tool_calls=calls), True
    return choice, False


def shape_choice(choice: Choice, exchange: Exchange) -> Choice:
    stopped = False
    if choice.content and exchange.stop:
        content, stopped = _cut_at_stop(choice.content, exchange.stop)
        choice = replace(choice, content=content)
    truncated = False
    if exchange.max_tokens is not None:
        choice, truncated = _limit(choice, exchange.max_tokens)
    if choice.finish_reason is None:
        if truncated:
            reason = "length"
        elif choice.tool_calls and not stopped:
            reason = "tool_calls"
        else:
            reason = "stop"
        choice = _finished(choice, reason)
    return choice


def _finished(choice: Choice, reason: str) -> Choice:
    """`replace(choice, finish_reason=reason)`, without dataclasses.replace's cost per field."""
    if type(choice) is not Choice:
        return replace(choice, finish_reason=reason)
    return Choice(choice.content, choice.reasoning, choice.tool_calls, choice.refusal, reason)


_CHOICE_FIELDS = [f.name for f in fields(Choice)]
assert _CHOICE_FIELDS == ["content", "reasoning", "tool_calls", "refusal", "finish_reason"], "update _finished"


def completion_tokens(choice: Choice) -> int:
    total = 0
    for text in (choice.reasoning, choice.content, choice.refusal):
        if text:
            total += count_text(text)
    for call in choice.tool_calls:
        total += _tool_call_tokens(call)
    return total


def shape(reply: Reply, exchange: Exchange) -> Shaped:
    choices = [shape_choice(c, exchange) for c in reply.choices]
    pinned = reply.usage
    prompt = pinned.prompt_tokens
    if prompt is None:
        prompt = count_messages(exchange.messages, exchange.tools)
    completion = pinned.completion_tokens
    if completion is None:
        completion = 0
        for choice in choices:
            completion += completion_tokens(choice)
    reasoning = pinned.reasoning_tokens
    if reasoning is None:
        reasoning = 0
        for choice in choices:
            if choice.reasoning:
                reasoning += count_text(choice.reasoning)
    usage = Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=pinned.total_tokens if pinned.total_tokens is not None else prompt + completion,
        cached_tokens=pinned.cached_tokens or 0,
        reasoning_tokens=reasoning,
    )
    stops = exchange.stop
    stop_sequences: list[str | None] = (
        [first_stop(c.content, stops) for c in reply.choices] if stops else [None] * len(reply.choices)
    )
    return Shaped(choices=choices, usage=usage, stop_sequences=stop_sequences)
