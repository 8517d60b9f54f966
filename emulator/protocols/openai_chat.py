"""OpenAI Chat Completions: request → Exchange, shaped Reply → JSON body or `chat.completion.chunk` events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from emulator.errors import ApiError
from emulator.exchange import Choice, Exchange, Failure, Message, ResponseFormat, Tool, ToolCall, ToolChoice, ToolResult
from emulator.http import bearer_key
from emulator.profiles import Catalog, Profile
from emulator.protocols import openai_chat_models as m
from emulator.protocols.base import Adapter, Context
from emulator.protocols.validation import to_api_error
from emulator.shaping import Shaped, Usage
from emulator.streaming import SseEvent
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
            made = [ToolCall(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or ()]
            for call in made:
                calls[call.id] = call
                pending[call.id] = index
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
        return ToolChoice("auto" if tools else "none")
    if not request.tools:
        raise ApiError.invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
        )
    if isinstance(choice, str):
        return ToolChoice(choice)
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
        return ResponseFormat()
    if isinstance(fmt, m.ResponseFormatJsonObject):
        return ResponseFormat("json_object")
    return ResponseFormat("json_schema", fmt.json_schema.schema_ or {}, fmt.json_schema.name)


def _wants_thinking(request: m.ChatCompletionRequest) -> bool:
    if request.enable_thinking is not None:
        return request.enable_thinking
    if request.thinking is not None:
        return request.thinking.get("type") == "enabled"
    return request.reasoning_effort in THINKING_EFFORTS


def parse(body: Any, headers: Mapping[str, str], catalog: Catalog, api_key: str) -> tuple[Exchange, ChatOptions]:
    """The request as an Exchange; ApiError(400/403) names what is wrong."""
    if not isinstance(body, dict):
        raise ApiError.invalid(f"The request body must be a JSON object, but got {type(body).__name__}.")
    try:
        request = m.ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise to_api_error(exc, m.UNION_TAGS) from None
    if request.stream_options is not None and not request.stream:
        raise ApiError.invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    model = catalog.resolve(request.model)
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
    return exchange, ChatOptions(include_usage=include_usage)


# ── rendering ────────────────────────────────────────────────────────────────


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4()}"


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


def _delta(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _deltas(index: int, choice: Choice, shaped: Shaped) -> Iterator[tuple[dict[str, Any], int]]:
    """The deltas of one choice, in the order a real model streams them, each with the tokens it carries."""
    yield _delta(index, {"role": "assistant", "content": ""}), 0
    for piece in shaped.pieces(choice.reasoning):
        yield _delta(index, {"reasoning_content": piece}), count_text(piece)
    for piece in shaped.pieces(choice.content):
        yield _delta(index, {"content": piece}), count_text(piece)
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
    """The stream's events, `[DONE]` last; choices of n > 1 follow one another."""
    head = {
        "id": completion_id(),
        "object": "chat.completion.chunk",
        "created": created if created is not None else int(time.time()),
        "model": model,
    }
    for index, choice in enumerate(shaped.choices):
        for delta, tokens in _deltas(index, choice, shaped):
            chunk = {**head, "choices": [delta]}
            if options.include_usage:
                chunk["usage"] = None
            yield SseEvent(dump(chunk), tokens=tokens)
    if options.include_usage:
        yield SseEvent(dump({**head, "choices": [], "usage": usage_body(shaped.usage)}))
    yield SseEvent("[DONE]")


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
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


class ChatAdapter(Adapter):
    protocol = "chat"

    def authenticate(self, request: Request, context: Context) -> str:
        return bearer_key(request, context.allowed_keys)

    def parse(self, body: Any, request: Request, key: str, context: Context) -> tuple[Exchange, ChatOptions]:
        exchange, options = parse(body, request.headers, context.catalog, key)
        context.profile.check_ranges({"temperature": exchange.temperature, "top_p": exchange.top_p})
        return exchange, options

    def render(self, shaped: Shaped, exchange: Exchange, options: ChatOptions) -> dict[str, Any]:
        return completion_body(shaped, exchange.model)

    def events(self, shaped: Shaped, exchange: Exchange, options: ChatOptions) -> Iterator[SseEvent]:
        return stream_events(shaped, exchange.model, options)

    def error_body(self, failure: Failure, context: Context, request_id: str | None = None) -> dict[str, Any]:
        return error_body(failure, context.profile)

    def error_event(self, failure: Failure, context: Context) -> SseEvent:
        return SseEvent(dump(error_body(failure, context.profile)))
