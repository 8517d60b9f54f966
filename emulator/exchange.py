"""The protocol-neutral meeting point: what a request asks (Exchange) and what the emulator answers (Reply or Failure).

Protocol adapters build an Exchange from their wire format and render a Reply back into it;
the scenario engine only ever sees these types.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]

# What a client adds to the user's message on its own: Claude Code puts `<system-reminder>…</system-reminder>`
# blocks (the date, the todo list, attribution rules) before and after what the person typed.
REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)
REMINDER_OPEN = "<system-reminder>"


def typed_text(text: str) -> str | None:
    """What the person typed: the text without the client's reminders, trimmed; None when nothing is left."""
    if REMINDER_OPEN not in text:
        return text
    own = REMINDER.sub("", text).strip()
    return own or None


class cached:  # noqa: N801 - used as a decorator, like functools.cached_property
    """`functools.cached_property` without its lock: Python 3.11 takes a lock on each first read, and every
    request reads a few of these views once. Computed on first read and kept as an instance attribute (set with
    object.__setattr__, so frozen dataclasses can use it too, and without touching `__dict__`, which would make
    every later attribute read of the instance slower)."""

    def __init__(self, compute: Callable[[Any], Any]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = self.compute(instance)
        object.__setattr__(instance, self.name, value)
        return value


@dataclass(frozen=True)
class ToolCall:
    """A call the assistant makes; `arguments` is the JSON text exactly as sent on the wire."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer to an earlier call; `name` is resolved from the call it answers."""

    call_id: str
    name: str | None
    content: str


@dataclass
class Message:
    role: Role
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_result: ToolResult | None = None
    reasoning: str | None = None
    parts: list[dict[str, Any]] = field(default_factory=list)  # non-text content parts (images, files)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)  # JSON Schema of the arguments


@dataclass(frozen=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "function"] = "auto"
    name: str | None = None  # set when mode == "function"


@dataclass(frozen=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: Mapping[str, Any] | None = None
    name: str | None = None


@dataclass
class Exchange:
    """One request, seen the same way whichever protocol carried it.

    Built once by an adapter and not changed afterwards: the derived views (system, last_user_text, …) are
    computed on first use and kept, since every rule's conditions read them.
    """

    protocol: str  # the name of the protocol that carried it (emulator/protocols/registry.py)
    model: str  # the model that serves the request, after alias resolution
    messages: list[Message]
    requested_model: str = ""  # what the client sent in `model`
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True
    stream: bool = False
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    seed: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    reasoning: bool = False  # the client asked for thinking on a model that can think
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-cased names
    body: Mapping[str, Any] = field(default_factory=dict)  # the request body as parsed JSON
    api_key: str = ""

    @cached
    def system(self) -> str:
        return "\n".join(m.text for m in self.messages if m.role == "system")

    @cached
    def last_user_text(self) -> str:
        """The text of the last user message that holds words of the user's own: reminder blocks a client adds
        (Claude Code's `<system-reminder>`) are left out, and a message of nothing but reminders is passed over."""
        for message in reversed(self.messages):
            if message.role == "user":
                typed = typed_text(message.text)
                if typed is not None:
                    return typed
        return ""

    @cached
    def tool_results(self) -> list[ToolResult]:
        return [m.tool_result for m in self.messages if m.tool_result is not None]

    @cached
    def turn(self) -> int:
        """1 for the first user message, 2 after one assistant answer and a new user message, …"""
        return sum(1 for m in self.messages if m.role == "user")


@dataclass(frozen=True)
class UsageOverride:
    """Token counts a scenario pins; None means "estimate it"."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


ESTIMATED = UsageOverride()  # nothing pinned: every count estimated (shared: building a frozen dataclass costs ~1 µs)


@dataclass
class Choice:
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    refusal: str | None = None
    finish_reason: str | None = None  # None: derived (tool_calls / length / stop)


@dataclass
class Reply:
    """What the assistant answers: one Choice per requested `n`."""

    choices: list[Choice]
    usage: UsageOverride = field(default_factory=UsageOverride)
    rule: str | None = None  # name of the scenario rule that produced it, for the journal


@dataclass
class Failure:
    """An error answer chosen by a scenario or raised by validation."""

    status: int
    message: str
    type: str | None = None  # None: the profile's error table decides
    code: str | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    rule: str | None = None
