"""OpenAI Chat Completions: request → Exchange, shaped Reply → JSON body or `chat.completion.chunk` events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

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
from emulator.http import bearer_key, dumps
from emulator.ids import uuid4_str
from emulator.profiles import Catalog, Profile
from emulator.protocols import openai_chat_models as m
from emulator.protocols.base import Adapter, Context, RecordedEvent, counted
from emulator.protocols.validation import to_api_error
from emulator.shaping import Shaped, Usage
from emulator.sse import SseEvent
from emulator.tokens import count_text

MAX_STOP_SEQUENCES = 4
THINKING_EFFORTS = frozenset({"low", "medium", "high", "xhigh"})


@dataclass(frozen=True)
class ChatOptions:
    """What the request asks of the rendering, beyond the neutral Exchange."""

    include_usage: bool = False


def _joined_text(content: str | list[Any] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content if isinstance(part, m.TextPart))


def _extra_parts(content: str | list[Any] | None) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return []
    return [part.model_dump(by_alias=True, exclude_none=True) for part in content if not isinstance(part, m.TextPart)]


def _messages(request: m.ChatCompletionRequest) -> list[Message]:
    """The conversation, with every tool result tied to the call it answers."""
    calls: dict[str, ToolCall] = {}
    pending: dict[str, int] = {}  # call id → index of the assistant message that made it
    out: list[Message] = []
    for index, msg in enumerate(request.messages):
        if pending and msg.role not in ("tool", "function"):
            ids = ", ".join(pending)
            raise ApiError.invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {ids}",
                param=f"messages[{index}].role",
            )
        if isinstance(msg, m.SystemMessage):
            out.append(Message("system", _joined_text(msg.content)))
        elif isinstance(msg, m.UserMessage):
            out.append(Message("user", _joined_text(msg.content), parts=_extra_parts(msg.content)))
        elif isinstance(msg, m.AssistantMessage):
            made = [ToolCall(c.id, c.name, c.arguments) for c in msg.tool_calls or ()]
            for made_call in made:
                calls[made_call.id] = made_call
                pending[made_call.id] = index
            text = _joined_text(msg.content)
            out.append(Message("assistant", text, tool_calls=made, reasoning=msg.reasoning_content))
        elif isinstance(msg, m.ToolMessage):
            call = calls.get(msg.tool_call_id)
            if call is None:
                raise ApiError.invalid(
                    f"Invalid 'messages[{index}].tool_call_id': {msg.tool_call_id!r} does not answer any tool call "
                    "made by an earlier assistant message.",
                    param=f"messages[{index}].tool_call_id",
                )
            pending.pop(call.id, None)
            content = _joined_text(msg.content)
            out.append(Message("tool", content, tool_result=ToolResult(call.id, call.name, content)))
        else:  # legacy `function` role
            content = msg.content or ""
            out.append(Message("tool", content, tool_result=ToolResult("", msg.name, content)))
    return out


def _tools(request: m.ChatCompletionRequest) -> list[Tool]:
    tools = []
    for index, tool in enumerate(request.tools or ()):
        if tool.type != "function":
            continue
        if tool.function is None:
            raise ApiError.invalid(
                f"Missing required parameter: 'tools[{index}].function'.", param=f"tools[{index}].function"
            )
        fn = tool.function
        tools.append(Tool(fn.name, fn.description or "", fn.parameters or {"type": "object", "properties": {}}))
    return tools


def _tool_choice(request: m.ChatCompletionRequest, tools: list[Tool]) -> ToolChoice:
    choice = request.tool_choice
    if choice is None:
        return _AUTO if tools else _NONE
    if not request.tools:
        raise ApiError.invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
        )
    if isinstance(choice, str):
        return ToolChoice(choice)
    if isinstance(choice, m.AllowedToolsChoice):
        return ToolChoice(choice.allowed_tools.mode)
    if isinstance(choice, m.NamedCustomToolChoice):  # a free-form tool, which generated replies do not call
        return _AUTO
    if choice.function.name not in {t.name for t in tools}:
        raise ApiError.invalid(
            f"Invalid value for 'tool_choice': no function named {choice.function.name!r} was specified in 'tools'.",
            param="tool_choice.function.name",
        )
    return ToolChoice("function", choice.function.name)


def _stop(request: m.ChatCompletionRequest) -> list[str]:
    if request.stop is None:
        return []
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if len(stops) > MAX_STOP_SEQUENCES:
        raise ApiError.invalid(
            f"Invalid 'stop': too long. Expected at most {MAX_STOP_SEQUENCES} stop sequences, but got {len(stops)}.",
            param="stop",
        )
    return stops


def _response_format(request: m.ChatCompletionRequest) -> ResponseFormat:
    fmt = request.response_format
    if fmt is None or isinstance(fmt, m.ResponseFormatText):
        return _TEXT
    if isinstance(fmt, m.ResponseFormatJsonObject):
        return ResponseFormat("json_object")
    return ResponseFormat("json_schema", fmt.json_schema.schema_ or {}, fmt.json_schema.name)


_AUTO, _NONE, _TEXT = ToolChoice("auto"), ToolChoice("none"), ResponseFormat()  # frozen: shared by every request
_WITH_USAGE, _WITHOUT_USAGE = ChatOptions(include_usage=True), ChatOptions(include_usage=False)
_validate = m.ChatCompletionRequest.__pydantic_validator__.validate_python  # model_validate, minus a call


def _wants_thinking(request: m.ChatCompletionRequest) -> bool:
    if request.enable_thinking is not None:
        return request.enable_thinking
    if request.thinking is not None:
        return request.thinking.get("type") == "enabled"
    return request.reasoning_effort in THINKING_EFFORTS


def parse(
    body: Any, headers: Mapping[str, str], catalog: Catalog, api_key: str, profile: Profile | None = None
) -> tuple[Exchange, ChatOptions]:
    """The request as an Exchange; ApiError(400/403) names what is wrong."""
    if not isinstance(body, dict):
        raise ApiError.invalid(f"The request body must be a JSON object, but got {type(body).__name__}.")
    try:
        request = _validate(body)
    except ValidationError as exc:
        raise to_api_error(exc, m.UNION_TAGS) from None
    if request.stream_options is not None and not request.stream:
        raise ApiError.invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    model = catalog.resolve(request.model, profile)
    tools = _tools(request)
    exchange = Exchange(
        protocol="chat",
        model=model.id,
        requested_model=request.model,
        messages=_messages(request),
        tools=tools,
        tool_choice=_tool_choice(request, tools),
        parallel_tool_calls=request.parallel_tool_calls is not False,
        stream=bool(request.stream),
        max_tokens=request.max_completion_tokens or request.max_tokens,
        stop=_stop(request),
        n=request.n or 1,
        seed=request.seed,
        temperature=request.temperature,
        top_p=request.top_p,
        reasoning=model.reasoning and _wants_thinking(request),
        response_format=_response_format(request),
        headers=headers,
        body=body,
        api_key=api_key,
    )
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return exchange, _WITH_USAGE if include_usage else _WITHOUT_USAGE


# ── rendering ────────────────────────────────────────────────────────────────


def completion_id() -> str:
    return "chatcmpl-" + uuid4_str()


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _tool_call_body(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def completion_body(shaped: Shaped, model: str, created: int | None = None) -> dict[str, Any]:
    choices = []
    for index, choice in enumerate(shaped.choices):
        message: dict[str, Any] = {"role": "assistant", "content": choice.content, "refusal": choice.refusal}
        if choice.reasoning is not None:
            message["reasoning_content"] = choice.reasoning
        if choice.tool_calls:
            message["tool_calls"] = [_tool_call_body(c) for c in choice.tool_calls]
        choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": choice.finish_reason})
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage_body(shaped.usage),
    }


def completion_json(shaped: Shaped, model: str, created: int | None = None) -> str:
    """`dump(completion_body(shaped, model, created))`, written out directly: the body of every non-streamed
    reply, so its fixed parts are not built as dicts and encoded again each time (tests pin the two equal)."""
    choices = []
    for index, choice in enumerate(shaped.choices):
        message = _MESSAGE % (_text(choice.content), _text(choice.refusal))
        if choice.reasoning is not None:
            message += ',"reasoning_content":' + _encode_text(choice.reasoning)
        if choice.tool_calls:
            message += ',"tool_calls":' + dump([_tool_call_body(c) for c in choice.tool_calls])
        choices.append(_CHOICE % (index, message, _text(choice.finish_reason)))
    usage = shaped.usage
    counts = p, c, t, cached, r = (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
    )
    if type(p) is int and type(c) is int and type(t) is int and type(cached) is int and type(r) is int:
        usage_text = _USAGE % counts
    else:
        usage_text = _USAGE_ANY % tuple(map(_number, counts))
    if created is None:
        created = int(time.time())
    return _COMPLETION % (
        _encode_text(completion_id()),
        created if type(created) is int else _number(created),
        _text(model),
        ",".join(choices),
        usage_text,
    )


_MESSAGE = '{"role":"assistant","content":%s,"refusal":%s'
_CHOICE = '{"index":%d,"message":%s},"logprobs":null,"finish_reason":%s}'
# fast path: mirrors completion_body dumped by json.dumps; pinned by tests/unit/server/test_fastpaths.py::test_a_completion_body_is_written_as_dumping_it_would
_COMPLETION = '{"id":%s,"object":"chat.completion","created":%s,"model":%s,"choices":[%s],"usage":%s}'
_USAGE_ANY = (
    '{"prompt_tokens":%s,"completion_tokens":%s,"total_tokens":%s,"prompt_tokens_details":{"cached_tokens":%s},'
    '"completion_tokens_details":{"reasoning_tokens":%s}}'
)
_USAGE = _USAGE_ANY.replace("%s", "%d")  # every count an int (a bool is not): what _number writes for one
_encode_text = json.encoder.encode_basestring  # a JSON string as `dump` writes one (ensure_ascii=False)


def _text(value: Any) -> str:
    if type(value) is str:
        return _encode_text(value)
    return "null" if value is None else dump(value)


def _number(value: Any) -> str:
    return int.__repr__(value) if type(value) is int else dump(value)


def _delta(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _deltas(index: int, choice: Choice, shaped: Shaped) -> Iterator[tuple[dict[str, Any] | str, int]]:
    """The deltas of one choice, in the order a real model streams them, each with the tokens it carries
    (a content delta as its bare text: `_delta(index, {"content": text})`)."""
    yield _delta(index, {"role": "assistant", "content": ""}), 0
    for piece in shaped.pieces(choice.reasoning):
        yield _delta(index, {"reasoning_content": piece}), count_text(piece)
    for piece in shaped.pieces(choice.content):
        yield piece, count_text(piece)  # the most frequent delta by far: stream_events writes it out directly
    for piece in shaped.pieces(choice.refusal):
        yield _delta(index, {"refusal": piece}), count_text(piece)
    for call_index, call in enumerate(choice.tool_calls):
        head = {
            "index": call_index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        yield _delta(index, {"tool_calls": [head]}), count_text(call.name)
        for piece in shaped.pieces(call.arguments):
            yield (
                _delta(index, {"tool_calls": [{"index": call_index, "function": {"arguments": piece}}]}),
                count_text(piece),
            )
    yield _delta(index, {}, choice.finish_reason), 0


def stream_events(shaped: Shaped, model: str, options: ChatOptions, created: int | None = None) -> Iterator[SseEvent]:
    """The stream's events, `[DONE]` last; choices of n > 1 follow one another.

    Each chunk is `{**head, "choices": [delta]}` (and `"usage": null` when usage is asked for), written as the
    head's JSON once, then each delta's: the same text as dumping the whole chunk, at a fraction of the cost.
    """
    head = {
        "id": completion_id(),
        "object": "chat.completion.chunk",
        "created": created if created is not None else int(time.time()),
        "model": model,
    }
    opening = dump(head)[:-1] + ',"choices":['
    closing = '],"usage":null}' if options.include_usage else "]}"
    for index, choice in enumerate(shaped.choices):
        for delta, tokens in _deltas(index, choice, shaped):
            text = _CONTENT_DELTA % (index, _encode_text(delta)) if type(delta) is str else dump(delta)
            yield SseEvent(opening + text + closing, tokens=tokens)
    if options.include_usage:
        yield SseEvent(dump({**head, "choices": [], "usage": usage_body(shaped.usage)}))
    yield SseEvent("[DONE]")


_CONTENT_DELTA = '{"index":%d,"delta":{"content":%s},"logprobs":null,"finish_reason":null}'  # _delta(i, {"content": …})


def error_body(failure: Failure, profile: Profile) -> dict[str, Any]:
    """The OpenAI envelope; type and code from the profile's error table unless the failure names them."""
    kind = profile.error_kind(failure.status)
    return {
        "error": {
            "message": failure.message or kind.message,
            "type": failure.type or kind.type,
            "param": failure.param,
            "code": failure.code or kind.code,
        }
    }


def dump(payload: Any) -> str:
    """Compact JSON, as the gateways write it: `json.dumps(payload, ensure_ascii=False, separators=(",", ":"))`."""
    return dumps(payload)


# ── an answer read back (what `record` writes) ──────────────────────────────


def reply_of(body: Mapping[str, Any]) -> Reply:
    """A chat.completion body in the neutral terms: one Choice per choice, by index."""
    choices = []
    for choice in sorted(body.get("choices") or [], key=lambda c: c.get("index", 0)):
        message = choice.get("message") or {}
        calls = [
            ToolCall(c.get("id", ""), c["function"]["name"], c["function"].get("arguments", ""))
            for c in message.get("tool_calls") or []
        ]
        choices.append(
            Choice(
                content=message.get("content"),
                reasoning=message.get("reasoning_content") or message.get("reasoning"),
                tool_calls=calls,
                refusal=message.get("refusal"),
                finish_reason=choice.get("finish_reason"),
            )
        )
    usage = body.get("usage") or {}
    return Reply(
        choices or [Choice(content="")],
        UsageOverride(
            prompt_tokens=counted(usage.get("prompt_tokens")),
            completion_tokens=counted(usage.get("completion_tokens")),
            total_tokens=counted(usage.get("total_tokens")),
            cached_tokens=counted((usage.get("prompt_tokens_details") or {}).get("cached_tokens")),
            reasoning_tokens=counted((usage.get("completion_tokens_details") or {}).get("reasoning_tokens")),
        ),
    )


def body_of(events: Sequence[RecordedEvent]) -> dict[str, Any]:
    """The chunks folded into one chat.completion body."""
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for _, data in events:
        if not isinstance(data, dict):
            continue
        usage = data.get("usage") or usage
        for chunk in data.get("choices") or []:
            choice = choices.setdefault(chunk.get("index", 0), {"message": {"content": None}, "calls": {}})
            delta = chunk.get("delta") or {}
            message = choice["message"]
            for key in ("content", "reasoning_content", "reasoning", "refusal"):
                if isinstance(delta.get(key), str):
                    message[key] = (message.get(key) or "") + delta[key]
            for call in delta.get("tool_calls") or []:
                slot = choice["calls"].setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            if chunk.get("finish_reason"):
                choice["finish_reason"] = chunk["finish_reason"]
    body_choices = []
    for index, choice in sorted(choices.items()):
        calls = [choice["calls"][i] for i in sorted(choice["calls"])]
        message = choice["message"]
        if calls:
            message["tool_calls"] = [
                {"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls
            ]
        body_choices.append({"index": index, "message": message, "finish_reason": choice.get("finish_reason")})
    return {"choices": body_choices, "usage": usage}


# ── the adapter ──────────────────────────────────────────────────────────────


class ChatAdapter(Adapter):
    protocol = "chat"
    sdk_path = "/chat/completions"

    def authenticate(self, request: Request, context: Context) -> str:
        return bearer_key(request, context.allowed_keys)

    def parse(self, body: Any, request: Request, key: str, context: Context) -> tuple[Exchange, ChatOptions]:
        exchange, options = parse(body, request.headers, context.catalog, key, context.profile)
        if exchange.temperature is not None or exchange.top_p is not None:
            context.profile.check_ranges({"temperature": exchange.temperature, "top_p": exchange.top_p})
        return exchange, options

    def render(self, shaped: Shaped, exchange: Exchange, options: ChatOptions) -> dict[str, Any]:
        return completion_body(shaped, exchange.model)

    def render_json(self, shaped: Shaped, exchange: Exchange, options: ChatOptions) -> str:
        return completion_json(shaped, exchange.model)

    def events(self, shaped: Shaped, exchange: Exchange, options: ChatOptions) -> Iterator[SseEvent]:
        return stream_events(shaped, exchange.model, options)

    def error_body(self, failure: Failure, context: Context, request_id: str | None = None) -> dict[str, Any]:
        return error_body(failure, context.profile)

    def error_event(self, failure: Failure, context: Context) -> SseEvent:
        return SseEvent(dump(error_body(failure, context.profile)))

    def reply_from(self, body: Any) -> Reply:
        return reply_of(body)

    def body_from(self, events: Sequence[RecordedEvent]) -> Any:
        return body_of(events)
