"""OpenAI Responses: request (plus the stored conversation it continues) → Exchange, shaped Reply → Response or events.

A request's input is normalised into items as `GET /v1/responses/{id}/input_items` lists them; with
`previous_response_id`, the stored conversation of that response comes first. The whole conversation is
then read as neutral Messages, so scenario rules see every turn. Replies become output items — a
`reasoning` item, a `message` item, `function_call` items — and the finished Response is stored (unless
`store: false`) before the first byte is sent, so a client that disconnects mid-stream loses nothing.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulator.errors import ApiError
from emulator.exchange import (
    Choice,
    Exchange,
    Failure,
    Message,
    Reply,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    UsageOverride,
)
from emulator.http import bearer_key, json_response, json_text_response
from emulator.ids import uuid4_hex
from emulator.names import TEST_ID_HEADER
from emulator.profiles import Catalog, Profile
from emulator.protocols import openai_responses_models as m
from emulator.protocols.base import Adapter, Context, RecordedEvent, counted
from emulator.protocols.openai_chat import dump, error_body
from emulator.protocols.responses_store import Item, ResponseStore, StoredResponse
from emulator.protocols.validation import to_api_error
from emulator.shaping import Shaped, Usage
from emulator.sse import SseEvent
from emulator.tokens import count_text, split_tokens

NO_THINKING_EFFORTS = frozenset({"none", "minimal"})
TOOL_CHOICE_MODES = ("none", "auto", "required")
ENCRYPTED_REASONING = "reasoning.encrypted_content"
INPUT_ITEMS_DEFAULT_LIMIT = 20
INPUT_ITEMS_MAX_LIMIT = 100
LONG_CONVERSATION = 2_000  # items: a request continuing more is read and answered in a worker thread


def new_id(prefix: str) -> str:
    """`resp_…`, `msg_…`, `rs_…`, `fc_…`: a prefix and 32 hex digits, as the gateways' ids look (CloudBase's examples)."""
    return f"{prefix}_{uuid4_hex()}"


@dataclass(frozen=True)
class ResponsesOptions:
    """What rendering needs beyond the Exchange: the request fields the Response repeats, and what to store."""

    echo: Mapping[str, Any]
    new_items: tuple[Item, ...]  # this request's input items, stored with the response
    previous: StoredResponse | None = None  # the stored response it continues
    reading: Reading | None = None  # the conversation read so far, kept with the response for the next turn
    store: bool = True
    include: frozenset[str] = frozenset()
    test_id: str = ""


# ── request → input items ────────────────────────────────────────────────────


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _content_parts(item: m.MessageItem) -> list[dict[str, Any]]:
    if isinstance(item.content, str):
        return [
            _output_text(item.content) if item.role == "assistant" else {"type": "input_text", "text": item.content}
        ]
    parts = []
    content: Sequence[BaseModel] = item.content  # a union of part models, made at run time
    for part in content:
        dumped = part.model_dump(by_alias=True, exclude_none=True)
        if dumped["type"] == "output_text":
            dumped = {**_output_text(dumped["text"]), **dumped}
        elif dumped["type"] == "input_image":
            dumped.setdefault("detail", "auto")
        parts.append(dumped)
    return parts


def _input_item(item: Any, index: int, store: ResponseStore) -> Item:
    """One request item in the form the API lists it: ids filled in, message content as a list of parts."""
    if isinstance(item, m.ItemReference):
        found = store.find_item(item.id)
        if found is None:
            raise ApiError(404, f"Item with id '{item.id}' not found.", param=f"input[{index}].id")
        return found
    # warnings off: pydantic cannot tell which member of a tagged content union it dumps, and dumps it right anyway
    dumped = item.model_dump(by_alias=True, exclude_none=True, warnings=False)
    if isinstance(item, m.MessageItem):
        return {"id": item.id or new_id("msg"), **dumped, "status": "completed", "content": _content_parts(item)}
    if isinstance(item, m.FunctionCallItem):
        return {"id": item.id or new_id("fc"), **dumped, "status": "completed"}
    if isinstance(item, m.FunctionCallOutputItem):
        return {"id": item.id or new_id("fco"), **dumped, "status": "completed"}
    if isinstance(item, m.ReasoningItem):
        return {"id": item.id or new_id("rs"), **dumped}
    return dumped  # a built-in tool's item: kept, not interpreted


def input_items(request: m.CreateResponseRequest, store: ResponseStore) -> list[Item]:
    """The request's `input` as items; a string is one user message."""
    if request.input is None:
        return []
    given = [m.MessageItem(role="user", content=request.input)] if isinstance(request.input, str) else request.input
    return [_input_item(item, index, store) for index, item in enumerate(given)]


# ── input items → neutral messages ───────────────────────────────────────────


def _texts(parts: Any, kinds: tuple[str, ...]) -> str:
    if isinstance(parts, str):
        return parts
    return "\n".join(p.get("text", "") for p in parts or () if p.get("type") in kinds)


def _media(parts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(p) for p in parts if p.get("type") in ("input_image", "input_file")]


def encrypt_reasoning(text: str) -> str:
    """Not encryption, just opaque to the client: the emulator reads it back when the item is sent again."""
    return base64.b64encode(text.encode()).decode()


def _reasoning_text(item: Mapping[str, Any]) -> str:
    text = _texts(item.get("summary"), ("summary_text",)) or _texts(item.get("content"), ("reasoning_text",))
    if text or not item.get("encrypted_content"):
        return text
    try:
        return base64.b64decode(item["encrypted_content"], validate=True).decode()
    except (binascii.Error, ValueError):  # not base64 (ValueError: not ASCII), or not UTF-8 once decoded
        return ""


def _assistant_turn(messages: list[Message], fresh_if_spoken: bool) -> Message:
    """The assistant message that one turn's reasoning, text and calls are gathered into, as Chat has them."""
    last = messages[-1] if messages else None
    if last is None or last.role != "assistant" or (fresh_if_spoken and (last.text or last.tool_calls)):
        messages.append(Message("assistant"))
    return messages[-1]


def _add_message(messages: list[Message], item: Mapping[str, Any]) -> None:
    role, content = item["role"], item["content"]
    if role == "assistant":
        _assistant_turn(messages, fresh_if_spoken=True).text = _texts(content, ("output_text", "input_text"))
    elif role == "user":
        messages.append(Message("user", _texts(content, ("input_text", "output_text")), parts=_media(content)))
    else:
        messages.append(Message("system", _texts(content, ("input_text",))))


def _last_open(calls: Mapping[str, ToolCall], answered: set[str], name: str | None) -> ToolCall | None:
    """The call an output without `call_id` answers: the latest one not yet answered (of that tool, if named)."""
    open_calls = [c for c in calls.values() if c.id not in answered and (name is None or c.name == name)]
    return open_calls[-1] if open_calls else None


@dataclass
class Reading:
    """A conversation read into Messages so far, with what reading on needs: the tool calls made, those answered.

    A stored response keeps the reading of its conversation (on the newest turn of a chain only), so that a
    request continuing it reads its own items, not the whole conversation again: a chain of n turns costs n
    reads, not n²/2.
    """

    messages: list[Message] = field(default_factory=list)
    calls: dict[str, ToolCall] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)

    def copy(self) -> Reading:
        """A reading to go on from, leaving this one as it is (the last message is the one reading on changes)."""
        messages = list(self.messages)
        if messages:
            messages[-1] = replace(messages[-1], tool_calls=list(messages[-1].tool_calls))
        return Reading(messages, dict(self.calls), set(self.answered))

    def read(self, items: Sequence[Item], named: bool = False) -> Reading:
        """Read `items` on; a bad one is named `input[i]` in the 400 when `named` (the request's own items)."""
        messages, calls, answered = self.messages, self.calls, self.answered
        for position, item in enumerate(items):
            kind = item.get("type")
            if kind == "message":
                _add_message(messages, item)
            elif kind == "reasoning":
                _assistant_turn(messages, fresh_if_spoken=True).reasoning = _reasoning_text(item)
            elif kind == "function_call":
                made = ToolCall(item["call_id"], item["name"], item["arguments"])
                calls[made.id] = made
                _assistant_turn(messages, fresh_if_spoken=False).tool_calls.append(made)
            elif kind == "function_call_output":
                call_id = item.get("call_id")
                call = calls.get(call_id) if call_id else _last_open(calls, answered, item.get("name"))
                if call is None:
                    where = f"input[{position}].call_id" if named else "input"
                    raise ApiError.invalid(
                        f"No tool call found for function call output with call_id {call_id}."
                        if call_id
                        else f"Invalid '{where}': no function call before this output is waiting for one; name it.",
                        param=where,
                    )
                answered.add(call.id)
                output = _texts(item["output"], ("input_text",))
                messages.append(Message("tool", output, tool_result=ToolResult(call.id, call.name, output)))
        return self

    def check_answered(self) -> None:
        unanswered = [call_id for call_id in self.calls if call_id not in self.answered]
        if unanswered:
            raise ApiError.invalid(f"No tool output found for function call {unanswered[0]}.", param="input")


def conversation(items: Sequence[Item], first_new: int = 0) -> list[Message]:
    """The items as Messages, each tool output tied to the call it answers.

    Items before `first_new` come from the store; a bad item after it is named as `input[i]` in the 400.
    """
    reading = Reading().read(items[:first_new]).read(items[first_new:], named=True)
    reading.check_answered()
    return reading.messages


READING_BYTES = 400  # what a kept reading costs per message (the Message, its lists), for the store's budget


# ── request → Exchange ───────────────────────────────────────────────────────


def _tools(request: m.CreateResponseRequest) -> list[Tool]:
    tools = []
    for index, tool in enumerate(request.tools or ()):
        if tool.type != "function":
            continue
        if tool.name is None:
            raise ApiError.invalid(f"Missing required parameter: 'tools[{index}].name'.", param=f"tools[{index}].name")
        tools.append(Tool(tool.name, tool.description or "", tool.parameters or {"type": "object", "properties": {}}))
    return tools


def _tool_choice(raw: str | dict[str, Any] | None, tools: list[Tool]) -> ToolChoice:
    if raw is None:
        return ToolChoice("auto" if tools else "none")
    if isinstance(raw, str):
        if raw not in TOOL_CHOICE_MODES:
            raise ApiError.invalid(
                f"Invalid value for 'tool_choice': {raw!r}. Supported values are: 'none', 'auto' or 'required'.",
                param="tool_choice",
            )
        return ToolChoice(raw)  # type: ignore[arg-type]
    kind = raw.get("type")
    if kind == "function":
        return _named_function(raw.get("name"), tools)
    if kind == "allowed_tools":
        return ToolChoice("required" if raw.get("mode") == "required" else "auto")
    if kind is None:
        raise ApiError.invalid("Missing required parameter: 'tool_choice.type'.", param="tool_choice.type")
    return ToolChoice("auto")  # a built-in tool (file_search, web_search, …), which the emulator does not run


def _named_function(name: Any, tools: list[Tool]) -> ToolChoice:
    if not isinstance(name, str):
        raise ApiError.invalid("Missing required parameter: 'tool_choice.name'.", param="tool_choice.name")
    if name not in {t.name for t in tools}:
        raise ApiError.invalid(
            f"Invalid value for 'tool_choice.name': no function named {name!r} was specified in 'tools'.",
            param="tool_choice.name",
        )
    return ToolChoice("function", name)


def _response_format(request: m.CreateResponseRequest) -> ResponseFormat:
    fmt = request.text.format if request.text is not None else None
    if isinstance(fmt, m.FormatJsonSchema):
        return ResponseFormat("json_schema", fmt.schema_, fmt.name)
    if isinstance(fmt, m.FormatJsonObject):
        return ResponseFormat("json_object")
    return ResponseFormat()


def _wants_reasoning(request: m.CreateResponseRequest) -> bool:
    return request.reasoning is not None and (request.reasoning.effort or "medium") not in NO_THINKING_EFFORTS


def _previous(request: m.CreateResponseRequest, store: ResponseStore) -> StoredResponse | None:
    if request.previous_response_id is None:
        return None
    previous = store.get(request.previous_response_id)
    if previous is None:
        raise ApiError(
            404,
            f"Previous response with id '{request.previous_response_id}' not found.",
            param="previous_response_id",
        )
    return previous


def _validated(body: Any) -> m.CreateResponseRequest:
    if not isinstance(body, dict):
        raise ApiError.invalid(f"The request body must be a JSON object, but got {type(body).__name__}.")
    try:
        return m.CreateResponseRequest.model_validate(body)
    except ValidationError as exc:
        raise to_api_error(exc, m.UNION_TAGS) from None


def parse(
    body: Any,
    headers: Mapping[str, str],
    catalog: Catalog,
    store: ResponseStore,
    api_key: str = "",
    profile: Profile | None = None,
) -> tuple[Exchange, ResponsesOptions]:
    """The request, with the conversation it continues, as an Exchange; ApiError(400/403/404) names what is wrong."""
    request = _validated(body)
    model = catalog.resolve(request.model, profile)
    previous = _previous(request, store)
    new_items = input_items(request, store)
    kept = previous.link.derived if previous is not None else None
    if isinstance(kept, Reading):
        reading = kept.copy()
    else:
        reading = Reading().read(previous.conversation if previous is not None else ())
    reading.read(new_items, named=True).check_answered()
    instructions = [Message("system", request.instructions)] if request.instructions else []
    tools = _tools(request)
    exchange = Exchange(
        protocol="responses",
        model=model.id,
        requested_model=request.model,
        messages=instructions + reading.messages,
        tools=tools,
        tool_choice=_tool_choice(request.tool_choice, tools),
        parallel_tool_calls=request.parallel_tool_calls is not False,
        stream=bool(request.stream),
        max_tokens=request.max_output_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        reasoning=model.reasoning and _wants_reasoning(request),
        response_format=_response_format(request),
        headers=headers,
        body=body,
        api_key=api_key,
    )
    options = ResponsesOptions(
        echo=_echo(request),
        new_items=tuple(new_items),
        previous=previous,
        reading=reading,
        store=request.store is not False,
        include=frozenset(request.include or ()),
        test_id=headers.get(TEST_ID_HEADER, ""),
    )
    return exchange, options


# ── the Response object ──────────────────────────────────────────────────────


def _tool_echo(tool: m.ToolDefinition) -> dict[str, Any]:
    dumped = tool.model_dump(by_alias=True, exclude_none=True)
    if tool.type != "function":
        return dumped
    # Responses function tools are strict unless the request says otherwise
    return {
        **dumped,
        "description": tool.description,
        "parameters": tool.parameters,
        "strict": tool.strict is not False,
    }


def _text_echo(request: m.CreateResponseRequest) -> dict[str, Any]:
    text = request.text or m.TextParam()
    fmt: dict[str, Any] = text.format.model_dump(by_alias=True, exclude_none=True) if text.format else {"type": "text"}
    if fmt["type"] == "json_schema":
        fmt.setdefault("strict", False)
    return {"format": fmt, "verbosity": text.verbosity or "medium"}


def _echo(request: m.CreateResponseRequest) -> dict[str, Any]:
    """The request fields a Response repeats, with the defaults the API fills in."""
    reasoning = request.reasoning or m.ReasoningParam()
    echo = {
        "background": bool(request.background),
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": request.max_tool_calls,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "prompt_cache_key": request.prompt_cache_key,
        "reasoning": {"effort": reasoning.effort, "summary": reasoning.summary or reasoning.generate_summary},
        "safety_identifier": request.safety_identifier,
        "service_tier": "default",
        "store": request.store is not False,
        "temperature": request.temperature if request.temperature is not None else 1.0,
        "text": _text_echo(request),
        "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
        "tools": [_tool_echo(tool) for tool in request.tools or ()],
        "top_logprobs": request.top_logprobs or 0,
        "top_p": request.top_p if request.top_p is not None else 1.0,
        "truncation": request.truncation or "disabled",
        "metadata": request.metadata or {},
    }
    if request.user is not None:
        echo["user"] = request.user
    return echo


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _reasoning_item(text: str, include: frozenset[str]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": new_id("rs"),
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}],
    }
    if ENCRYPTED_REASONING in include:
        item["encrypted_content"] = encrypt_reasoning(text)
    return item


def _has_message(choice: Choice) -> bool:
    if choice.content or choice.refusal:
        return True
    # an empty answer is still a message, unless the budget ran out before it or the turn is all tool calls
    return choice.content is not None and not choice.tool_calls and choice.finish_reason != "length"


def _message_item(choice: Choice) -> dict[str, Any]:
    parts = []
    if choice.content is not None and (choice.content or not choice.refusal):
        parts.append(_output_text(choice.content))
    if choice.refusal:
        parts.append({"type": "refusal", "refusal": choice.refusal})
    return {"id": new_id("msg"), "type": "message", "status": "completed", "content": parts, "role": "assistant"}


def _function_call_item(call: ToolCall) -> dict[str, Any]:
    return {
        "id": new_id("fc"),
        "type": "function_call",
        "status": "completed",
        "arguments": call.arguments,
        "call_id": call.id,
        "name": call.name,
    }


def output_items(choice: Choice, include: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """A reasoning item, a message item, then one item per function call; what was cut short is incomplete."""
    items = []
    if choice.reasoning:
        items.append(_reasoning_item(choice.reasoning, include))
    if _has_message(choice):
        items.append(_message_item(choice))
    items.extend(_function_call_item(call) for call in choice.tool_calls)
    if _incomplete_reason(choice) and items and "status" in items[-1]:
        items[-1]["status"] = "incomplete"
    return items


def _incomplete_reason(choice: Choice) -> str | None:
    return {"length": "max_output_tokens", "content_filter": "content_filter"}.get(choice.finish_reason or "")


def response_body(shaped: Shaped, exchange: Exchange, options: ResponsesOptions) -> dict[str, Any]:
    choice = shaped.choices[0]
    reason = _incomplete_reason(choice)
    now = int(time.time())
    echo = dict(options.echo)
    metadata = echo.pop("metadata")
    return {
        "id": new_id("resp"),
        "object": "response",
        "created_at": now,
        "status": "incomplete" if reason else "completed",
        "completed_at": None if reason else now,
        "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "model": exchange.model,
        "output": output_items(choice, options.include),
        **echo,
        "usage": usage_body(shaped.usage),
        "metadata": metadata,
    }


# ── streaming ────────────────────────────────────────────────────────────────

EventFields = tuple[str, dict[str, Any]]
Pieces = Callable[[str], list[str]]  # cuts streamed text into deltas


def _opened(item: Mapping[str, Any]) -> dict[str, Any]:
    """An output item as `response.output_item.added` announces it: nothing generated yet."""
    opened = {**item, "status": "in_progress"} if "status" in item else dict(item)
    empty = {"message": ("content", []), "reasoning": ("summary", []), "function_call": ("arguments", "")}
    if item["type"] in empty:
        key, value = empty[item["type"]]
        opened[key] = value
    return opened


def _message_events(index: int, item: Mapping[str, Any], pieces: Pieces) -> Iterator[EventFields]:
    for content_index, part in enumerate(item["content"]):
        at = {"item_id": item["id"], "output_index": index, "content_index": content_index}
        if part["type"] == "output_text":
            yield "response.content_part.added", {**at, "part": {**part, "text": ""}}
            for piece in pieces(part["text"]):
                yield "response.output_text.delta", {**at, "delta": piece, "logprobs": []}
            yield "response.output_text.done", {**at, "text": part["text"], "logprobs": []}
        else:
            yield "response.content_part.added", {**at, "part": {**part, "refusal": ""}}
            for piece in pieces(part["refusal"]):
                yield "response.refusal.delta", {**at, "delta": piece}
            yield "response.refusal.done", {**at, "refusal": part["refusal"]}
        yield "response.content_part.done", {**at, "part": part}


def _reasoning_events(index: int, item: Mapping[str, Any], pieces: Pieces) -> Iterator[EventFields]:
    for summary_index, part in enumerate(item["summary"]):
        at = {"item_id": item["id"], "output_index": index, "summary_index": summary_index}
        yield "response.reasoning_summary_part.added", {**at, "part": {**part, "text": ""}}
        for piece in pieces(part["text"]):
            yield "response.reasoning_summary_text.delta", {**at, "delta": piece}
        yield "response.reasoning_summary_text.done", {**at, "text": part["text"]}
        yield "response.reasoning_summary_part.done", {**at, "part": part}


def _call_events(index: int, item: Mapping[str, Any], pieces: Pieces) -> Iterator[EventFields]:
    at = {"item_id": item["id"], "output_index": index}
    for piece in pieces(item["arguments"]):
        yield "response.function_call_arguments.delta", {**at, "delta": piece}
    yield "response.function_call_arguments.done", {**at, "name": item["name"], "arguments": item["arguments"]}


_ITEM_EVENTS = {"message": _message_events, "reasoning": _reasoning_events, "function_call": _call_events}


def item_events(index: int, item: Mapping[str, Any], pieces: Pieces = split_tokens) -> Iterator[EventFields]:
    yield "response.output_item.added", {"output_index": index, "item": _opened(item)}
    if item["type"] in _ITEM_EVENTS:
        yield from _ITEM_EVENTS[item["type"]](index, item, pieces)
    yield "response.output_item.done", {"output_index": index, "item": item}


def _snapshot(body: Mapping[str, Any], status: str, output: list[Any]) -> dict[str, Any]:
    """The Response as it stands while in progress (or after failing): no usage yet, nothing completed."""
    snapshot = {**body, "status": status, "completed_at": None, "incomplete_details": None, "output": output}
    snapshot.pop("usage", None)
    return snapshot


def _error_code(failure: Failure) -> str:
    return "rate_limit_exceeded" if failure.status == 429 else "server_error"


class ResponseEvents(Iterator[SseEvent]):
    """The events of one streamed Response, numbered from 0, ending in `response.completed` (or `.incomplete`).

    A fault injector that cuts the stream short can end it with `failed(failure)`: `response.failed`,
    numbered after the last event sent, with the items finished so far.
    """

    def __init__(self, body: Mapping[str, Any], pieces: Pieces = split_tokens) -> None:
        self.body = body
        self._pieces = pieces
        self.sequence_number = 0  # of the next event
        self._finished: list[Mapping[str, Any]] = []
        self._events = self._all()

    def __next__(self) -> SseEvent:
        return next(self._events)

    def failed(self, failure: Failure) -> SseEvent:
        snapshot = _snapshot(self.body, "failed", list(self._finished))
        snapshot["error"] = {"code": _error_code(failure), "message": failure.message}
        return self._event("response.failed", {"response": snapshot})

    def _all(self) -> Iterator[SseEvent]:
        in_progress = _snapshot(self.body, "in_progress", [])
        yield self._event("response.created", {"response": in_progress})
        yield self._event("response.in_progress", {"response": in_progress})
        for index, item in enumerate(self.body["output"]):
            for kind, fields in item_events(index, item, self._pieces):
                yield self._event(kind, fields)
            self._finished.append(item)
        last = "response.completed" if self.body["status"] == "completed" else "response.incomplete"
        yield self._event(last, {"response": self.body})

    def _event(self, kind: str, fields: Mapping[str, Any]) -> SseEvent:
        payload = {"type": kind, **fields, "sequence_number": self.sequence_number}
        self.sequence_number += 1
        tokens = count_text(fields["delta"]) if "delta" in fields else 0  # what the timing plan paces
        return SseEvent(dump(payload), event=kind, tokens=tokens)


def error_event_body(failure: Failure, code: str | None, sequence_number: int = 0) -> dict[str, Any]:
    return {
        "type": "error",
        "code": code,
        "message": failure.message,
        "param": failure.param,
        "sequence_number": sequence_number,
    }


# ── stored responses over HTTP ───────────────────────────────────────────────


def _authenticated(request: Request) -> None:
    bearer_key(request, request.app.state.runtime.context.allowed_keys)


def _not_found(response_id: str) -> ApiError:
    return ApiError(404, f"Response with id '{response_id}' not found.")


def _limit(raw: str | None) -> int:
    if raw is None:
        return INPUT_ITEMS_DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= INPUT_ITEMS_MAX_LIMIT:
        raise ApiError.invalid(
            f"Invalid 'limit': expected an integer between 1 and {INPUT_ITEMS_MAX_LIMIT}, but got {raw!r}.",
            param="limit",
        )
    return int(raw)


def _ordered(items: Sequence[Item], order: str | None) -> list[Item]:
    if order not in (None, "asc", "desc"):
        raise ApiError.invalid(
            f"Invalid value for 'order': {order!r}. Supported values are: 'asc' or 'desc'.", param="order"
        )
    return list(items) if order == "asc" else list(reversed(items))


def _after(items: list[Item], after: str | None) -> int:
    """Where the page starts: just past the item named by `after`."""
    if after is None:
        return 0
    for index, item in enumerate(items):
        if item.get("id") == after:
            return index + 1
    raise ApiError.invalid(f"Invalid 'after': no input item with id '{after}'.", param="after")


def item_page(items: Sequence[Item], order: str | None, limit: str | None, after: str | None) -> dict[str, Any]:
    """A `list` of input items, newest first unless `order=asc`, `limit` at a time, starting past `after`."""
    ordered = _ordered(items, order)
    size = _limit(limit)
    start = _after(ordered, after)
    page = ordered[start : start + size]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": start + size < len(ordered),
    }


# ── an answer read back (what `record` writes) ──────────────────────────────


def reply_of(body: Mapping[str, Any]) -> Reply:
    """A Response in the neutral terms: its message text, reasoning summary and function calls as one Choice."""
    texts, reasoning, calls, refusals = [], [], [], []
    for item in body.get("output") or []:
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    texts.append(part.get("text", ""))
                elif part.get("type") == "refusal":
                    refusals.append(part.get("refusal", ""))
        elif kind == "reasoning":
            reasoning += [s.get("text", "") for s in item.get("summary") or []]
        elif kind == "function_call":
            calls.append(ToolCall(item.get("call_id", ""), item.get("name", ""), item.get("arguments", "")))
    reason = (body.get("incomplete_details") or {}).get("reason")
    finish = {"max_output_tokens": "length", "content_filter": "content_filter"}.get(reason or "")
    usage = body.get("usage") or {}
    choice = Choice(
        content="".join(texts) if texts or not calls else None,
        reasoning="\n".join(reasoning) or None,
        tool_calls=calls,
        refusal="".join(refusals) or None,
        finish_reason=finish or ("tool_calls" if calls else "stop"),
    )
    return Reply(
        [choice],
        UsageOverride(
            prompt_tokens=counted(usage.get("input_tokens")),
            completion_tokens=counted(usage.get("output_tokens")),
            total_tokens=counted(usage.get("total_tokens")),
            cached_tokens=counted((usage.get("input_tokens_details") or {}).get("cached_tokens")),
            reasoning_tokens=counted((usage.get("output_tokens_details") or {}).get("reasoning_tokens")),
        ),
    )


def body_of(events: Sequence[RecordedEvent]) -> dict[str, Any]:
    """The finished Response that the last `response.completed` / `response.incomplete` event carries."""
    final: dict[str, Any] = {}
    for name, data in events:
        if isinstance(data, dict) and (name or data.get("type", "")).startswith("response.") and "response" in data:
            final = data["response"]
    return final


# ── the adapter ──────────────────────────────────────────────────────────────


class ResponsesAdapter(Adapter):
    protocol = "responses"
    sdk_path = "/responses"

    def __init__(self, store: ResponseStore | None = None) -> None:
        self.store = store if store is not None else ResponseStore()

    @classmethod
    def made(cls, store_bytes: int | None = None) -> ResponsesAdapter:
        return cls(ResponseStore() if store_bytes is None else ResponseStore(max_bytes=store_bytes))

    def reply_from(self, body: Any) -> Reply:
        return reply_of(body)

    def body_from(self, events: Sequence[RecordedEvent]) -> Any:
        return body_of(events)

    def authenticate(self, request: Request, context: Context) -> str:
        return bearer_key(request, context.allowed_keys)

    def continues(self, body: Any) -> tuple[str, str] | None:
        previous = body.get("previous_response_id") if isinstance(body, dict) else None
        return ("responses", previous) if isinstance(previous, str) else None

    def holds(self, key: str) -> bool:
        return self.store.get(key) is not None

    def adopt(self, record: Mapping[str, Any], continued: bool = False) -> None:
        previous = self.store.get(record["previous"]) if record.get("previous") else None
        self.store.put(record["body"], record["new_input"], previous, record.get("test_id", ""))

    def long_read(self, body: Any) -> bool:
        previous = body.get("previous_response_id") if isinstance(body, dict) else None
        stored = self.store.get(previous) if isinstance(previous, str) else None
        return stored is not None and stored.link.length > LONG_CONVERSATION

    def parse(self, body: Any, request: Request, key: str, context: Context) -> tuple[Exchange, ResponsesOptions]:
        exchange, options = parse(body, request.headers, context.catalog, self.store, key, context.profile)
        context.profile.check_ranges({"temperature": exchange.temperature, "top_p": exchange.top_p})
        return exchange, options

    def render(self, shaped: Shaped, exchange: Exchange, options: ResponsesOptions) -> dict[str, Any]:
        return self._kept(response_body(shaped, exchange, options), options)

    def events(self, shaped: Shaped, exchange: Exchange, options: ResponsesOptions) -> ResponseEvents:
        # stored before the first event is sent: a client that drops the stream can still fetch or chain it
        return ResponseEvents(self._kept(response_body(shaped, exchange, options), options), shaped.pieces)

    def error_body(self, failure: Failure, context: Context, request_id: str | None = None) -> dict[str, Any]:
        return error_body(failure, context.profile)

    def error_event(self, failure: Failure, context: Context, sequence_number: int = 0) -> SseEvent:
        code = failure.code or context.profile.error_kind(failure.status).code
        return SseEvent(dump(error_event_body(failure, code, sequence_number)), event="error")

    def reset(self, test_id: str | None = None) -> None:
        self.store.clear(test_id)

    def extra_routes(self, path: str) -> list[BaseRoute]:
        return [
            # one route for both methods, so that a 405 lists them all in its `allow` header
            Route(path + "/{response_id}", self._retrieve_or_delete, methods=["GET", "DELETE"]),
            Route(path + "/{response_id}/input_items", self._input_items, methods=["GET"]),
        ]

    async def _retrieve_or_delete(self, request: Request) -> Response:
        return await (self._delete if request.method == "DELETE" else self._retrieve)(request)

    def _kept(self, body: dict[str, Any], options: ResponsesOptions) -> dict[str, Any]:
        if options.store:
            stored = self.store.put(body, options.new_items, options.previous, options.test_id)
            if options.reading is not None:  # the reading moves to the newest turn: kept once per chain
                reading = options.reading.copy().read(body["output"])
                self.store.keep_reading(stored, reading, READING_BYTES * len(reading.messages))
                if options.previous is not None:
                    self.store.keep_reading(options.previous, None, 0)
        return body

    async def _stored(self, request: Request) -> StoredResponse:
        _authenticated(request)
        response_id = request.path_params["response_id"]
        shared = request.app.state.runtime.shared
        if shared is not None:  # stored on another replica, maybe: the turns this process lacks, oldest first
            for record in await shared.chain("responses", response_id, self.holds):
                self.adopt(record, continued=False)
        stored = self.store.get(response_id)
        if stored is None:
            raise _not_found(response_id)
        return stored

    async def _retrieve(self, request: Request) -> Response:
        return json_text_response((await self._stored(request)).text.decode())

    async def _delete(self, request: Request) -> Response:
        stored = await self._stored(request)
        self.store.delete(stored.id)
        shared = request.app.state.runtime.shared
        if shared is not None:
            await shared.forget("responses", stored.id)
        return json_response({"id": stored.id, "object": "response.deleted", "deleted": True})

    async def _input_items(self, request: Request) -> Response:
        stored = await self._stored(request)
        query = request.query_params
        return json_response(item_page(stored.input_items, query.get("order"), query.get("limit"), query.get("after")))
