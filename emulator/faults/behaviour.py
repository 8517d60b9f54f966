"""What the behaviour faults do: the model misbehaves. Each takes the reply a rule (or the generator) produced
and returns the reply a misbehaving model would have given, before it is shaped and rendered in the
protocol's own form (a refusal is chat `message.refusal`, a Responses `refusal` part, Anthropic
`stop_reason: "refusal"`; see the adapters).

Everything is drawn from `rng`, which the pipeline seeds from the server seed, the fault, the test id and the
request body: the same request under the same seed is broken the same way. What was sent (the bad calls, the
bad text) is returned with the reply, for the resilience report to judge what the client did next.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from emulator.exchange import Choice, Exchange, Reply, Tool, ToolCall
from emulator.generate import Generator

DEFAULT_REFUSAL = "I'm sorry, but I can't help with that request."
# names a model invents for tools it was not given: what agents most often hallucinate
UNOFFERED_TOOLS = ("web_search", "run_shell_command", "read_file", "send_email", "python", "browser_open")
TOOL_ARG_WAYS = ("wrong_type", "missing_required", "extra_key", "not_json")
FORMAT_WAYS = ("prose", "missing_key")
PROSE_REPLIES = (
    "Sure! Here is what you asked for:",
    "Of course. Let me put that together for you:",
    "Here's a summary of the result:",
)
# one value of each JSON type, with the schema types it satisfies (an integer is a number too)
TYPED_SAMPLES: tuple[tuple[Any, frozenset[str]], ...] = (
    ("not a valid value", frozenset({"string"})),
    (3.5, frozenset({"number"})),
    (7, frozenset({"integer", "number"})),
    (True, frozenset({"boolean"})),
    (["unexpected"], frozenset({"array"})),
    ({"unexpected": True}, frozenset({"object"})),
    (None, frozenset({"null"})),
)


@dataclass(frozen=True)
class Misbehaviour:
    """The reply as the misbehaving model gives it, and what in it is bad (for the report)."""

    reply: Reply
    way: str | None = None  # how, for the kinds that can misbehave in several ways
    calls: tuple[ToolCall, ...] = ()  # bad tool calls sent
    text: str | None = None  # bad text sent (prose for JSON, a refusal, a cut answer)
    applied: bool = True  # False: nothing in this request could be broken this way (the reply goes out as is)

    def detail(self, kind: str) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": kind, "way": self.way, "applied": self.applied}
        if self.calls:
            data["calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.calls]
        if self.text is not None:
            data["text"] = self.text
        return data


@dataclass(frozen=True)
class Ask:
    """What a behaviour fault is given: the fault's way (None: drawn), message, and the request."""

    exchange: Exchange
    rng: random.Random
    generator: Generator
    way: str | None = None
    message: str | None = None
    protocol_objects_only: bool = False  # the protocol sends tool arguments as an object (Anthropic `input`)
    keys: tuple[Any, ...] = field(default=())  # seed keys for generated values


Misbehave = Callable[[Reply, Ask], Misbehaviour]


def _each(reply: Reply, change: Callable[[Choice], Choice]) -> Reply:
    return replace(reply, choices=[change(choice) for choice in reply.choices])


def _call_id(rng: random.Random) -> str:
    return "call_" + "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(24))


def _arguments(call: ToolCall) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------- tool calls


def _target_tool(ask: Ask) -> Tool | None:
    tools = ask.exchange.tools
    if not tools:
        return None
    forced = ask.exchange.tool_choice.name
    named = [t for t in tools if t.name == forced]
    return named[0] if named else ask.rng.choice(tools)


def _types(schema: Mapping[str, Any]) -> frozenset[str] | None:
    kind = schema.get("type")
    if isinstance(kind, str):
        return frozenset({kind})
    if isinstance(kind, list) and all(isinstance(k, str) for k in kind):
        return frozenset(kind)
    return None


def _wrong_value(schema: Any) -> tuple[bool, Any]:
    """A value `schema` rejects, when one is sure: (found, value)."""
    if not isinstance(schema, Mapping):
        return False, None
    if "const" in schema:
        return True, ["not", schema["const"]]
    if isinstance(schema.get("enum"), list):
        return True, "not_one_of_the_allowed_values"
    allowed = _types(schema)
    if allowed is None or any(k in schema for k in ("anyOf", "oneOf", "allOf", "$ref", "not")):
        return False, None
    for value, satisfies in TYPED_SAMPLES:
        if not satisfies & allowed:
            return True, value
    return False, None


def broken_arguments(
    arguments: dict[str, Any], schema: Mapping[str, Any], way: str | None, ask: Ask
) -> tuple[str, str] | None:
    """(way, arguments text) that break `schema`; `way` first when it can, else a seeded one that can; None
    when nothing is sure to break it."""
    given = schema.get("properties")
    properties: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    required = [k for k in schema.get("required") or () if isinstance(k, str) and k in arguments]
    options: dict[str, Callable[[], str]] = {}
    typed = [name for name in sorted(properties) if _wrong_value(properties[name])[0]]
    if typed:

        def wrong_type() -> str:
            name = ask.rng.choice(typed)
            return json.dumps({**arguments, name: _wrong_value(properties[name])[1]}, ensure_ascii=False)

        options["wrong_type"] = wrong_type
    if required:

        def missing_required() -> str:
            gone = ask.rng.choice(required)
            return json.dumps({k: v for k, v in arguments.items() if k != gone}, ensure_ascii=False)

        options["missing_required"] = missing_required
    if schema.get("additionalProperties") is False and not schema.get("patternProperties"):

        def extra_key() -> str:
            name = next(n for n in ("unexpected", "extra_field", "debug_note", "x_extra") if n not in properties)
            return json.dumps({**arguments, name: "not in the schema"}, ensure_ascii=False)

        options["extra_key"] = extra_key
    if not ask.protocol_objects_only:

        def not_json() -> str:
            text = json.dumps(arguments, ensure_ascii=False)
            return text[: max(1, ask.rng.randint(len(text) // 3, max(len(text) // 3, len(text) - 2)))]

        options["not_json"] = not_json
    if not options:
        return None
    chosen = way if way in options else ask.rng.choice(sorted(options))
    return chosen, options[chosen]()


def invalid_tool_args(reply: Reply, ask: Ask) -> Misbehaviour:
    """One tool call whose arguments break the offered tool's schema: the reply's own call of an offered tool
    when it makes one, else a new call of an offered tool (the forced one, if the request names one)."""
    offered = {t.name: t for t in ask.exchange.tools}
    choice = reply.choices[0]
    index = next((i for i, c in enumerate(choice.tool_calls) if c.name in offered), None)
    if index is not None:
        call = choice.tool_calls[index]
        tool = offered[call.name]
    else:
        picked = _target_tool(ask)
        if picked is None:
            return Misbehaviour(reply, applied=False)
        tool = picked
        valid = ask.generator.from_schema(dict(tool.parameters) or {"type": "object"}, "misbehave", *ask.keys)
        call = ToolCall(_call_id(ask.rng), tool.name, json.dumps(valid if isinstance(valid, dict) else {}))
    broken = broken_arguments(_arguments(call), tool.parameters, ask.way, ask)
    if broken is None:
        return Misbehaviour(reply, applied=False)
    way, text = broken
    bad = replace(call, arguments=text)
    calls = list(choice.tool_calls)
    if index is None:
        calls = [bad]
    else:
        calls[index] = bad
    changed = Choice(content=choice.content if index is not None else None, tool_calls=calls)
    return Misbehaviour(replace(reply, choices=[changed, *reply.choices[1:]]), way=way, calls=(bad,))


def unknown_tool(reply: Reply, ask: Ask) -> Misbehaviour:
    """A call to a tool the request did not offer."""
    offered = {t.name for t in ask.exchange.tools}
    names = [n for n in UNOFFERED_TOOLS if n not in offered] or [f"{n}_v2" for n in UNOFFERED_TOOLS]
    query = ask.exchange.last_user_text[:200] or "latest results"
    call = ToolCall(_call_id(ask.rng), ask.rng.choice(names), json.dumps({"query": query}, ensure_ascii=False))
    return Misbehaviour(_each(reply, lambda c: Choice(tool_calls=[call])), calls=(call,))


def repeat_tool_call(reply: Reply, ask: Ask) -> Misbehaviour:
    """The previous assistant turn's tool calls again, the same names and arguments, with new ids."""
    previous = next((m.tool_calls for m in reversed(ask.exchange.messages) if m.tool_calls), None)
    if not previous:
        return Misbehaviour(reply, applied=False)
    calls = [ToolCall(_call_id(ask.rng), c.name, c.arguments) for c in previous]
    return Misbehaviour(_each(reply, lambda c: Choice(tool_calls=list(calls))), calls=tuple(calls))


# ---------------------------------------------------------------- text


def _prose(ask: Ask) -> str:
    return f"{ask.rng.choice(PROSE_REPLIES)} {ask.generator.text('misbehave', *ask.keys, sentences=(2, 3))}"


def wrong_format(reply: Reply, ask: Ask) -> Misbehaviour:
    """JSON was asked (`json_object` / `json_schema`): prose instead, or JSON without a required key."""
    fmt = ask.exchange.response_format
    required = [k for k in (fmt.schema or {}).get("required") or () if isinstance(k, str)]
    ways = ["prose", "missing_key"] if fmt.type == "json_schema" and required else ["prose"]
    way = ask.way if ask.way in ways else ask.rng.choice(ways)
    if way == "prose":
        text = _prose(ask)
    else:
        try:
            value = json.loads(reply.choices[0].content or "")
        except ValueError:
            value = None
        if not isinstance(value, dict) or not set(required) <= set(value):
            value = ask.generator.from_schema(dict(fmt.schema or {}), "misbehave", *ask.keys)
            value = value if isinstance(value, dict) else {}
        gone = ask.rng.choice(required)
        text = json.dumps({k: v for k, v in value.items() if k != gone}, ensure_ascii=False)
    return Misbehaviour(_each(reply, lambda c: Choice(content=text)), way=way, text=text)


def refusal(reply: Reply, ask: Ask) -> Misbehaviour:
    text = ask.message or DEFAULT_REFUSAL
    return Misbehaviour(_each(reply, lambda c: Choice(refusal=text, finish_reason="stop")), text=text)


def _cut_point(text: str, rng: random.Random) -> int:
    """Somewhere in the middle: at least one character kept, at least one left out."""
    return rng.randint(1, len(text) - 1) if len(text) > 2 else max(len(text) - 1, 0)


def _content(reply: Reply, ask: Ask) -> str:
    return reply.choices[0].content or reply.choices[0].refusal or _prose(ask)


def content_filter(reply: Reply, ask: Ask) -> Misbehaviour:
    """The gateway's filter stops the answer part-way: what came before it, then `content_filter`."""
    text = _content(reply, ask)
    kept = text[: _cut_point(text, ask.rng)]
    return Misbehaviour(_each(reply, lambda c: Choice(content=kept, finish_reason="content_filter")), text=kept)


def truncated(reply: Reply, ask: Ask) -> Misbehaviour:
    """Cut mid-structure at the token limit (`length`): the last tool call's arguments part-way through, else
    the answer (its JSON, when JSON was asked) part-way through."""
    choice = reply.choices[0]
    if choice.tool_calls:
        last = choice.tool_calls[-1]
        text = last.arguments if len(last.arguments) > 2 else '{"value": "' + ask.generator.text("misbehave") + '"}'
        cut = replace(last, arguments=text[: _cut_point(text, ask.rng)])
        changed = Choice(content=choice.content, tool_calls=[*choice.tool_calls[:-1], cut], finish_reason="length")
        return Misbehaviour(replace(reply, choices=[changed, *reply.choices[1:]]), way="tool_call", calls=(cut,))
    text = choice.content or ""
    if ask.exchange.response_format.type != "text" and not text.lstrip().startswith(("{", "[")):
        schema = ask.exchange.response_format.schema or {"type": "object"}
        text = json.dumps(ask.generator.from_schema(dict(schema), "misbehave", *ask.keys), ensure_ascii=False)
    text = text or _prose(ask)
    kept = text[: _cut_point(text, ask.rng)]
    changed = Choice(content=kept, reasoning=choice.reasoning, finish_reason="length")
    return Misbehaviour(replace(reply, choices=[changed, *reply.choices[1:]]), way="content", text=kept)


def empty_reply(reply: Reply, ask: Ask) -> Misbehaviour:
    """No content, no calls: an empty answer that says it stopped normally."""
    return Misbehaviour(_each(reply, lambda c: Choice(content="", finish_reason="stop")), text="")


def reasoning_only(reply: Reply, ask: Ask) -> Misbehaviour:
    """Thinking, and then no answer: reasoning, no content, no calls."""
    first = reply.choices[0]
    thought = first.reasoning or f"Let me think about this. {first.content or _prose(ask)}"
    return Misbehaviour(_each(reply, lambda c: Choice(reasoning=thought, finish_reason="stop")), text=thought)


BEHAVIOURS: dict[str, tuple[Misbehave, Sequence[str]]] = {
    "invalid_tool_args": (invalid_tool_args, TOOL_ARG_WAYS),
    "unknown_tool": (unknown_tool, ()),
    "wrong_format": (wrong_format, FORMAT_WAYS),
    "refusal": (refusal, ()),
    "content_filter": (content_filter, ()),
    "truncated": (truncated, ()),
    "repeat_tool_call": (repeat_tool_call, ()),
    "empty_reply": (empty_reply, ()),
    "reasoning_only": (reasoning_only, ()),
}
