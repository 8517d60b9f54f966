"""Anthropic Messages: request → Exchange, shaped Reply → a `message` body or its SSE event stream.

Also serves `POST …/v1/messages/count_tokens`, and keeps a prompt cache (`anthropic_cache`) so that
`cache_control` breakpoints show up in `usage` as cache writes, then cache reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams
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
from emulator.http import bearer_key, dumps, json_response, read_json
from emulator.ids import uuid4_int
from emulator.journal import current_entry
from emulator.names import TEST_ID_HEADER
from emulator.profiles import DECLARE_HINT, Catalog, CatalogModel, Profile, Range
from emulator.protocols import anthropic_catalog
from emulator.protocols import anthropic_messages_models as m
from emulator.protocols.anthropic_cache import (
    CachePlan,
    CacheUsage,
    PromptCache,
    breakpoints,
    cache_plan,
    prompt_blocks,
)
from emulator.protocols.anthropic_threads import KeptReply, ThreadStore
from emulator.protocols.base import Adapter, Context, RecordedEvent, counted
from emulator.ratelimit import BucketState, anthropic_limit_headers
from emulator.shaping import Shaped
from emulator.sse import SseEvent
from emulator.tokens import count_messages, count_text, split_tokens

VERSION_HEADER = "anthropic-version"
THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# ── what differs between the upstream API and the gateways ───────────────────


@dataclass(frozen=True)
class Traits:
    upstream: bool  # the real Anthropic API: unknown model → 404 `model: …`, temperature in [0, 1]
    caching: bool  # cache_control is honoured (usage reports cache writes and reads)
    parallel_switch: bool  # tool_choice.disable_parallel_tool_use is honoured
    history_thinking: bool  # thinking blocks of earlier turns reach the model


def traits_for(profile: Profile) -> Traits:
    route = profile.anthropic
    return Traits(
        upstream=route.upstream,
        caching=route.prompt_caching,
        parallel_switch=route.parallel_switch,
        history_thinking=route.history_thinking,
    )


# ── authentication ───────────────────────────────────────────────────────────


def authenticate(request: Request, context: Context) -> str:
    """The key from `x-api-key` (where the profile takes it) or `Authorization: Bearer`; then the version header."""
    key = _api_key(request, context)
    if context.profile.anthropic.version_required and not request.headers.get(VERSION_HEADER, "").strip():
        raise ApiError.invalid(f"{VERSION_HEADER}: header is required", param=VERSION_HEADER)
    return key


def _api_key(request: Request, context: Context) -> str:
    """Where the profile takes `x-api-key`, either header carries the key (SDKs ≥ 2 send `Authorization: Bearer`)
    and errors are worded as the API words them; a Bearer-only gateway answers in its own words."""
    if not context.profile.anthropic.key_header:
        return bearer_key(request, context.allowed_keys)
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    if not key:
        raise ApiError(401, "x-api-key header is required")
    if context.allowed_keys and key not in context.allowed_keys:
        raise ApiError(401, "invalid x-api-key")
    return key


# ── validation errors, worded as the API words them ──────────────────────────

_TYPE_LABELS = frozenset({"str", "int", "float", "bool", "none", "dict", "list"})


def _is_union_label(item: Any) -> bool:
    """Pydantic names the branches of a plain union in `loc` (`str`, `list[…]`); the API leaves them out.

    Discriminator tags (`text`, `tool_result`, `custom`, `enabled`) stay: the API shows them.
    """
    return isinstance(item, str) and ("[" in item or item in _TYPE_LABELS or item[:1].isupper())


def location(loc: Sequence[Any]) -> str:
    return ".".join(str(item) for item in loc if not _is_union_label(item))


def _depth(loc: Sequence[Any]) -> int:
    return sum(not _is_union_label(item) for item in loc)


def validation_error(exc: ValidationError) -> ApiError:
    """The first problem as `path: message`; within a union, the branch that got furthest says best what is wrong."""
    deepest = max(exc.errors(include_url=False), key=lambda e: _depth(e["loc"]))
    where = location(deepest["loc"])
    return ApiError.invalid(f"{where}: {deepest['msg']}" if where else deepest["msg"], param=where or None)


# ── tool ids ─────────────────────────────────────────────────────────────────

# The engine's generated call ids (`call_` + 24 [a-z0-9]) travel as `toolu_` + the same 24 characters, so a
# follow-up's tool_use_id maps back to the neutral id without any state. Ids a scenario spells out are sent
# as written.
_NEUTRAL_ID = re.compile(r"call_([a-z0-9]{24})")
_WIRE_ID = re.compile(r"toolu_([a-z0-9]{24})")


def wire_tool_id(call_id: str) -> str:
    match = _NEUTRAL_ID.fullmatch(call_id)
    return f"toolu_{match[1]}" if match else call_id


def neutral_tool_id(tool_use_id: str) -> str:
    match = _WIRE_ID.fullmatch(tool_use_id)
    return f"call_{match[1]}" if match else tool_use_id


# ── request → Exchange ───────────────────────────────────────────────────────


def _part(block: BaseModel) -> dict[str, Any]:
    return block.model_dump(mode="json", exclude={"cache_control"}, exclude_none=True)


def _result_parts(content: str | list[Any] | None) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return []
    return [_part(part) for part in content if not isinstance(part, m.TextBlock)]


class ConversationReader:
    """The request's system prompt and messages as neutral Messages, checked as the API checks them.

    `first_new` messages at the front came from a thread the request continues: the paths in errors count the
    request's own messages from 0, as the client sent them.
    """

    def __init__(self, profile: Profile, traits: Traits, first_new: int = 0) -> None:
        self.unsupported = profile.anthropic.unsupported_blocks
        self.traits = traits
        self.first_new = first_new

    def at(self, index: int) -> str:
        return f"messages.{max(index - self.first_new, 0)}"

    def read(self, request: m.CountTokensRequest) -> list[Message]:
        out = self._system(request.system)
        open_calls: dict[str, ToolCall] = {}  # tool_use blocks of the last assistant message, by neutral id
        answering = -1  # the index of that assistant message
        last = len(request.messages) - 1
        for index, message in enumerate(request.messages):
            blocks = m.as_blocks(message.content)
            if isinstance(message, m.SystemMessage):  # between a call and its result too: the calls stay open
                shown = self._system_message(message, blocks, index)
                if message.clear_at != "next_user_message" or not _user_after(request.messages, index):
                    out.extend(shown)
                continue
            self._check_blocks(blocks, index, final_assistant=index == last and message.role == "assistant")
            if message.role == "assistant":
                produced = [self._assistant(blocks)]
            else:
                produced = self._user(blocks, index, open_calls)
            _check_answered(open_calls, {p.tool_result.call_id for p in produced if p.tool_result}, self.at(answering))
            out.extend(produced)
            open_calls = {c.id: c for c in produced[0].tool_calls} if message.role == "assistant" else {}
            answering = index
        return out

    @staticmethod
    def _system(system: str | list[m.TextBlock] | None) -> list[Message]:
        text = m.result_text(system)
        return [Message("system", text)] if text else []

    def _system_message(self, message: m.SystemMessage, blocks: list[Any], index: int) -> list[Message]:
        """A mid-conversation system message (as the API takes it, beta header or not): never the first message,
        and with content or per-turn `output_config`."""
        where = self.at(index)
        if index == 0:
            raise ApiError.invalid(
                f"{where}: use the top-level `system` parameter for the initial system prompt; a role "
                '"system" message must follow a user or assistant message',
                param=where,
            )
        if not blocks and not message.output_config:
            raise ApiError.invalid(
                f'{where}: a role "system" message needs non-empty `content` or `output_config`', param=where
            )
        for block in blocks:
            if isinstance(block, m.TextBlock):
                _check_text(block.text)
        text = m.joined_text(blocks)
        return [Message("system", text)] if text else []

    def _check_blocks(self, blocks: list[Any], index: int, final_assistant: bool) -> None:
        where = self.at(index)
        if not blocks and not final_assistant:
            raise ApiError.invalid(
                f"{where}: all messages must have non-empty content except for the optional final assistant message",
                param=where,
            )
        for position, block in enumerate(blocks):
            self._check_supported(block.type, f"{where}.content.{position}")
            if isinstance(block, m.ToolResultBlock) and isinstance(block.content, list):
                for part_index, part in enumerate(block.content):
                    self._check_supported(part.type, f"{where}.content.{position}.content.{part_index}")
            if isinstance(block, m.TextBlock):
                _check_text(block.text)

    def _check_supported(self, block_type: str, path: str) -> None:
        if block_type in self.unsupported:
            raise ApiError.invalid(
                f"{path}.type: content blocks of type '{block_type}' are not supported by this gateway",
                param=f"{path}.type",
            )

    def _assistant(self, blocks: list[Any]) -> Message:
        calls = [
            ToolCall(neutral_tool_id(b.id), b.name, json.dumps(b.input, ensure_ascii=False))
            for b in blocks
            if isinstance(b, m.ToolUseBlock)
        ]
        thoughts = [b.thinking for b in blocks if isinstance(b, m.ThinkingBlock)]
        reasoning = "\n".join(thoughts) if thoughts and self.traits.history_thinking else None
        return Message("assistant", m.joined_text(blocks), tool_calls=calls, reasoning=reasoning)

    @staticmethod
    def _tool_message(block: m.ToolResultBlock, path: str, open_calls: Mapping[str, ToolCall]) -> Message:
        call = open_calls.get(neutral_tool_id(block.tool_use_id))
        if call is None:
            raise ApiError.invalid(
                f"{path}: unexpected `tool_use_id` found in `tool_result` blocks: {block.tool_use_id}. Each "
                "`tool_result` block must have a corresponding `tool_use` block in the previous message.",
                param=path,
            )
        text = m.result_text(block.content)
        return Message(
            "tool", text, tool_result=ToolResult(call.id, call.name, text), parts=_result_parts(block.content)
        )

    def _user(self, blocks: list[Any], index: int, open_calls: Mapping[str, ToolCall]) -> list[Message]:
        """One `tool` message per tool_result block, then the user's own words and attachments, if any."""
        out = [
            self._tool_message(block, f"{self.at(index)}.content.{position}", open_calls)
            for position, block in enumerate(blocks)
            if isinstance(block, m.ToolResultBlock)
        ]
        own = [b for b in blocks if not isinstance(b, m.ToolResultBlock | m.ServerBlock | m.ToolChangeBlock)]
        if own or not out:
            parts = [_part(b) for b in own if not isinstance(b, m.TextBlock)]
            out.append(Message("user", m.joined_text(own), parts=parts))
        return out


def _user_after(messages: Sequence[Any], index: int) -> bool:
    """Whether a `role: "user"` message follows: a `clear_at: next_user_message` system message is gone by then."""
    return any(message.role == "user" for message in messages[index + 1 :])


def _check_text(text: str) -> None:
    if not text:
        raise ApiError.invalid("messages: text content blocks must be non-empty", param="messages")
    if not text.strip():
        raise ApiError.invalid("messages: text content blocks must contain non-whitespace text", param="messages")


def _check_answered(open_calls: Mapping[str, ToolCall], answered: set[str], where: str) -> None:
    missing = [wire_tool_id(call_id) for call_id in open_calls if call_id not in answered]
    if missing:
        raise ApiError.invalid(
            f"{where}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
            "next message.",
            param=where,
        )


def _custom_tool(tool: m.CustomTool) -> Tool:
    return Tool(tool.name, tool.description or "", tool.input_schema.model_dump(mode="json", exclude_none=True))


def _tools(request: m.CountTokensRequest) -> list[Tool]:
    """The request's own tools, then the tool changes of its system messages folded over them in order: what is
    offered to the model when it answers."""
    declared: dict[str, Tool] = {}
    for tool in request.tools or ():
        if tool.name is not None and tool.name in declared:
            raise ApiError.invalid("tools: Tool names must be unique.", param="tools")
        if isinstance(tool, m.CustomTool):
            declared[tool.name] = _custom_tool(tool)
    offered = dict(declared)
    for message in request.messages:
        if isinstance(message, m.SystemMessage):
            for block in m.as_blocks(message.content):
                if isinstance(block, m.ToolChangeBlock):
                    _change_tools(block, declared, offered)
    return list(offered.values())


def _change_tools(block: m.ToolChangeBlock, declared: dict[str, Tool], offered: dict[str, Tool]) -> None:
    """One `tool_addition` / `tool_removal`: a reference names a tool of `tools` (or one added earlier), a
    `tool_definition` brings its own; MCP tools are the provider's to run, so they change nothing here."""
    tool = block.tool
    if tool.get("type") == "tool_definition" and isinstance(tool.get("definition"), dict):
        try:
            defined = m.CustomTool.model_validate(tool["definition"])
        except ValidationError:
            return  # a server tool's definition: accepted, never called
        declared[defined.name] = _custom_tool(defined)
        name = defined.name
    elif tool.get("type") == "tool_reference" and isinstance(tool.get("name"), str):
        name = tool["name"]
    else:
        return
    if block.type == "tool_removal":
        offered.pop(name, None)
    elif name in declared:
        offered[name] = declared[name]


def _tool_choice(request: m.CountTokensRequest, tools: list[Tool]) -> ToolChoice:
    choice = request.tool_choice
    if choice is None:
        return ToolChoice("auto" if tools else "none")
    if isinstance(choice, m.ToolChoiceTool):
        if choice.name not in {t.name for t in tools}:
            raise ApiError.invalid(
                f"tool_choice.tool.name: Tool '{choice.name}' not found in the provided tools",
                param="tool_choice.tool.name",
            )
        return ToolChoice("function", choice.name)
    if isinstance(choice, m.ToolChoiceAny) and not tools:
        raise ApiError.invalid(
            "tool_choice.any: `tool_choice` of type 'any' requires `tools` to be provided", param="tool_choice"
        )
    modes: dict[str, Literal["auto", "required", "none"]] = {"auto": "auto", "any": "required", "none": "none"}
    return ToolChoice(modes[choice.type])


def _parallel_tool_calls(request: m.CountTokensRequest, traits: Traits) -> bool:
    disabled = getattr(request.tool_choice, "disable_parallel_tool_use", None)
    return not (traits.parallel_switch and disabled)


def _resolve_model(context: Context, requested: str, traits: Traits) -> CatalogModel:
    model = context.catalog.find(requested)
    if model is not None:
        return model
    if traits.upstream:  # the API itself: `404 not_found_error` naming the model
        raise ApiError(
            404, f"model: {requested}. Available models: {context.catalog.available()}. {DECLARE_HINT}", param="model"
        )
    raise context.profile.unknown_model(requested, context.catalog)  # a gateway checks its catalogue first


def _check_ranges(request: m.MessagesRequest, profile: Profile, traits: Traits) -> None:
    ranges = dict(profile.ranges)
    if traits.upstream:
        ranges["temperature"] = Range(0.0, 1.0)
    for name, allowed in ranges.items():
        value = getattr(request, name, None)
        if value is None:
            continue
        if value > allowed.high:
            raise ApiError.invalid(f"{name}: Input should be less than or equal to {allowed.high:g}", param=name)
        if value < allowed.low:
            raise ApiError.invalid(f"{name}: Input should be greater than or equal to {allowed.low:g}", param=name)


def _check_thinking(request: m.MessagesRequest) -> None:
    thinking = request.thinking
    if isinstance(thinking, m.ThinkingEnabled) and thinking.budget_tokens >= request.max_tokens:
        raise ApiError.invalid(
            f"`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
            f"{THINKING_DOCS}",
            param="max_tokens",
        )


def _wants_thinking(request: m.CountTokensRequest) -> bool:
    return isinstance(request.thinking, m.ThinkingEnabled | m.ThinkingAdaptive | m.ThinkingBetweenTools)


def _response_format(body: Mapping[str, Any]) -> ResponseFormat:
    """`output_config.format` (structured outputs) asks for JSON; anything else is plain text."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return ResponseFormat("json_schema", fmt["schema"])
    return ResponseFormat()


def _generation(request: m.CountTokensRequest) -> dict[str, Any]:
    """The Exchange fields only a create request has (count_tokens has none of them)."""
    if not isinstance(request, m.MessagesRequest):
        return {}
    return {
        "max_tokens": request.max_tokens,
        "stop": list(request.stop_sequences or ()),
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stream": bool(request.stream),
    }


def validate(body: Any, profile: Profile, kind: type[m.CountTokensRequest]) -> m.CountTokensRequest:
    """The body as `kind`; fields the profile ignores are dropped first, unchecked."""
    if not isinstance(body, dict):
        raise ApiError.invalid(f"The request body must be a JSON object, but got {type(body).__name__}.")
    accepted = {k: v for k, v in body.items() if k not in profile.anthropic.ignored_fields}
    try:
        request = kind.model_validate(accepted)
    except ValidationError as exc:
        raise validation_error(exc) from None
    continues = isinstance(getattr(request, "thread", None), m.ThreadContinue)
    if not request.messages and not continues:  # a `continue` may resume an unfinished turn with no new message
        raise ApiError.invalid("messages: at least one message is required", param="messages")
    return request


def build_exchange(
    request: m.CountTokensRequest,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    key: str,
    context: Context,
    first_new: int = 0,
) -> Exchange:
    """`request` is the whole conversation; its first `first_new` messages came from the thread it continues."""
    traits = traits_for(context.profile)
    if isinstance(request, m.MessagesRequest):
        _check_ranges(request, context.profile, traits)
        _check_thinking(request)
    model = _resolve_model(context, request.model, traits)
    tools = _tools(request)
    return Exchange(
        protocol="messages",
        model=model.id,
        requested_model=request.model,
        messages=ConversationReader(context.profile, traits, first_new).read(request),
        tools=tools,
        tool_choice=_tool_choice(request, tools),
        parallel_tool_calls=_parallel_tool_calls(request, traits),
        reasoning=model.reasoning and _wants_thinking(request),
        response_format=_response_format(body),
        headers=headers,
        body=body,
        api_key=key,
        **_generation(request),
    )


# ── rendering ────────────────────────────────────────────────────────────────


Pieces = Callable[[str], list[str]]


@dataclass(frozen=True)
class ThreadPlan:
    """What to keep once the reply is decided: the conversation so far, under the reply's id."""

    request: m.MessagesRequest  # the whole conversation, with the thread's system and tools
    test_id: str
    continues: str | None  # the reply this one continues, which may not be continued again


@dataclass(frozen=True)
class MessagesOptions:
    cache: CachePlan | None = None  # None: cache_control is not honoured here
    thread: ThreadPlan | None = None  # None: the request has no `thread`


def _base62(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


def message_id() -> str:
    return "msg_01" + _base62(uuid4_int(), 22)


def thinking_signature(model: str, thinking: str) -> str:
    """An opaque, deterministic stand-in for the signature the API puts on thinking blocks."""
    seed = f"{model}\n{thinking}".encode()
    return base64.b64encode(hashlib.sha512(seed).digest() + hashlib.sha512(b"signature\n" + seed).digest()).decode()


def tool_input(arguments: str) -> dict[str, Any]:
    """`input` must be an object: arguments that are not one (cut short by max_tokens, say) become `{}`."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def content_blocks(choice: Choice, model: str) -> list[dict[str, Any]]:
    """Thinking first, then text (a refusal's text included), then tool_use blocks."""
    blocks: list[dict[str, Any]] = []
    if choice.reasoning:
        signature = thinking_signature(model, choice.reasoning)
        blocks.append({"type": "thinking", "thinking": choice.reasoning, "signature": signature})
    text = "\n\n".join(t for t in (choice.content, choice.refusal) if t)
    if text:
        blocks.append({"type": "text", "text": text})
    for call in choice.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": wire_tool_id(call.id), "name": call.name, "input": tool_input(call.arguments)}
        )
    return blocks


def stop_reason(choice: Choice, stop_sequence: str | None) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a shaped choice; `stop_sequence` is the one that cut its text, if any."""
    if choice.refusal or choice.finish_reason == "content_filter":
        return "refusal", None
    if choice.finish_reason == "length":
        return "max_tokens", None
    if choice.finish_reason == "tool_calls":
        return "tool_use", None
    if stop_sequence is not None:
        return "stop_sequence", stop_sequence
    return "end_turn", None


def usage_body(shaped: Shaped, cache: CacheUsage) -> dict[str, Any]:
    """Anthropic semantics: `input_tokens` excludes what was read from or written to the cache."""
    prompt = shaped.usage.prompt_tokens
    return {
        "input_tokens": max(prompt - cache.read - cache.written, 0),
        "cache_creation_input_tokens": cache.written,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.written_5m,
            "ephemeral_1h_input_tokens": cache.written_1h,
        },
        "output_tokens": shaped.usage.completion_tokens,
        "service_tier": "standard",
    }


def message_body(shaped: Shaped, model: str, cache: CacheUsage) -> dict[str, Any]:
    choice = shaped.choices[0]  # the Messages API has no `n`
    cut_by = shaped.stop_sequences[0] if shaped.stop_sequences else None
    reason, sequence = stop_reason(choice, cut_by)
    body: dict[str, Any] = {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content_blocks(choice, model),
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_body(shaped, cache),
    }
    if reason == "refusal":
        body["stop_details"] = {"type": "refusal", "category": None, "explanation": None}
    return body


def _event(payload: dict[str, Any], tokens: int = 0) -> SseEvent:
    return SseEvent(dump(payload), event=payload["type"], tokens=tokens)


def _delta_tokens(delta: Mapping[str, Any]) -> int:
    """Generated tokens a content_block_delta carries (signatures carry none), for the timing plan."""
    text = delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""
    return count_text(text)


def _block_head(block: Mapping[str, Any]) -> dict[str, Any]:
    if block["type"] == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if block["type"] == "tool_use":
        return {**block, "input": {}}
    return {"type": "text", "text": ""}


def _block_deltas(block: Mapping[str, Any], pieces: Pieces) -> Iterator[dict[str, Any]]:
    if block["type"] == "thinking":
        for piece in pieces(block["thinking"]):
            yield {"type": "thinking_delta", "thinking": piece}
        yield {"type": "signature_delta", "signature": block["signature"]}
    elif block["type"] == "tool_use":
        yield {"type": "input_json_delta", "partial_json": ""}
        for piece in pieces(json.dumps(block["input"], ensure_ascii=False)):
            yield {"type": "input_json_delta", "partial_json": piece}
    else:
        for piece in pieces(block["text"]):
            yield {"type": "text_delta", "text": piece}


def stream_events(body: Mapping[str, Any], pieces: Pieces = split_tokens) -> Iterator[SseEvent]:
    """The events whose accumulation (`MessageStream.get_final_message()`) is exactly `body`.

    `pieces` cuts text into deltas (`Shaped.pieces`: one token each unless a timing plan says otherwise).
    """
    usage = body["usage"]
    start = {k: v for k, v in body.items() if k != "stop_details"}
    start.update(content=[], stop_reason=None, stop_sequence=None, usage={**usage, "output_tokens": 1})
    yield _event({"type": "message_start", "message": start})
    if not body["content"]:
        yield _event({"type": "ping"})
    for index, block in enumerate(body["content"]):
        yield _event({"type": "content_block_start", "index": index, "content_block": _block_head(block)})
        if index == 0:
            yield _event({"type": "ping"})
        for delta in _block_deltas(block, pieces):
            yield _event({"type": "content_block_delta", "index": index, "delta": delta}, _delta_tokens(delta))
        yield _event({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": body["stop_reason"], "stop_sequence": body["stop_sequence"]}
    if "stop_details" in body:
        delta["stop_details"] = body["stop_details"]
    totals = {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
    yield _event(
        {"type": "message_delta", "delta": delta, "usage": {**totals, "output_tokens": usage["output_tokens"]}}
    )
    yield _event({"type": "message_stop"})


def dump(payload: Any) -> str:
    return dumps(payload)


# ── errors ───────────────────────────────────────────────────────────────────

# status → (error.type, message when the failure brings none of its own); other 4xx are invalid_request_error,
# other 5xx api_error. 503 is overloaded_error: a temporary lack of capacity, retried like the API's own 529.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    408: ("timeout_error", "Request timed out."),
    409: ("conflict_error", "The request conflicts with the current state of the resource."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit. Please try again later."),
    500: ("api_error", "Internal server error"),
    502: ("api_error", "Bad gateway"),
    503: ("overloaded_error", "Overloaded"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def error_kind(status: int) -> tuple[str, str]:
    return ERRORS.get(status) or ERRORS[400 if status < 500 else 500]


def error_body(failure: Failure, request_id: str | None = None) -> dict[str, Any]:
    """The Anthropic envelope; a scenario's own `type` and `message` win over the table."""
    kind, default = error_kind(failure.status)
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": failure.type or kind, "message": failure.message or default},
    }
    if failure.code is not None:  # what the SDKs read as `error_code` and branch on
        body["error"]["details"] = {"error_code": failure.code}
    if request_id is not None:
        body["request_id"] = request_id
    return body


# ── an answer read back (what `record` writes) ──────────────────────────────


def reply_of(body: Mapping[str, Any]) -> Reply:
    """A Message in the neutral terms: its text, thinking and tool uses as one Choice; the stop reason as the
    finish reason the other protocols use; the prompt counted with what the cache read and wrote."""
    texts, thinking, calls = [], [], []
    for block in body.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            thinking.append(block.get("thinking", ""))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            calls.append(ToolCall(neutral_tool_id(block.get("id", "")), block.get("name", ""), arguments))
    stop = body.get("stop_reason")
    finish = {"max_tokens": "length", "tool_use": "tool_calls", "refusal": "content_filter"}.get(stop or "", "stop")
    text = "\n\n".join(texts)
    refusal = text if stop == "refusal" and text else None
    usage = body.get("usage") or {}
    read, written = usage.get("cache_read_input_tokens") or 0, usage.get("cache_creation_input_tokens") or 0
    prompt = usage.get("input_tokens")
    choice = Choice(
        content=None if refusal else (text if texts or not calls else None),
        reasoning="".join(thinking) or None,
        tool_calls=calls,
        refusal=refusal,
        finish_reason=finish,
    )
    return Reply(
        [choice],
        UsageOverride(
            prompt_tokens=counted(prompt + read + written) if isinstance(prompt, int) else None,
            completion_tokens=counted(usage.get("output_tokens")),
            cached_tokens=counted(read) if read else None,
        ),
    )


def body_of(events: Sequence[RecordedEvent]) -> dict[str, Any]:
    """message_start … message_stop folded into one Message body."""
    message: dict[str, Any] = {"content": [], "usage": {}}
    partial: dict[int, str] = {}
    for _, data in events:
        if not isinstance(data, dict):
            continue
        kind = data.get("type")
        if kind == "message_start":
            started = data.get("message") or {}
            message = {
                **started,
                "content": list(started.get("content") or []),
                "usage": dict(started.get("usage") or {}),
            }
        elif kind == "content_block_start":
            block = dict(data.get("content_block") or {})
            index = data.get("index", len(message["content"]))
            while len(message["content"]) <= index:
                message["content"].append({})
            message["content"][index] = block
        elif kind == "content_block_delta":
            index, delta = data.get("index", 0), data.get("delta") or {}
            block = message["content"][index] if index < len(message["content"]) else {}
            if delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif delta.get("type") == "input_json_delta":
                partial[index] = partial.get(index, "") + delta.get("partial_json", "")
        elif kind == "message_delta":
            message.update({k: v for k, v in (data.get("delta") or {}).items() if v is not None})
            message["usage"].update(data.get("usage") or {})
    for index, text in partial.items():
        try:
            message["content"][index]["input"] = json.loads(text) if text else {}
        except (ValueError, IndexError):
            continue
    return message


# ── the adapter ──────────────────────────────────────────────────────────────


class MessagesAdapter(Adapter):
    protocol = "messages"
    client = "Anthropic"
    sdk_path = "/v1/messages"
    sdk_models_path = "/v1/models"
    overload_status = 529  # Anthropic's `overloaded_error`
    tool_input_is_object = True  # a tool_use block's `input` is an object: arguments are never broken JSON

    def __init__(self, threads: ThreadStore | None = None) -> None:
        self.cache = PromptCache()
        self.threads = threads if threads is not None else ThreadStore()

    @classmethod
    def made(cls, store_bytes: int | None = None) -> MessagesAdapter:
        return cls(ThreadStore() if store_bytes is None else ThreadStore(max_bytes=store_bytes))

    def claims(self, headers: Mapping[str, str]) -> bool:
        return anthropic_catalog.wants_anthropic_shape(headers)

    def limit_headers(self, requests: BucketState | None, tokens: BucketState | None) -> dict[str, str]:
        return anthropic_limit_headers(requests, tokens)

    def model_list(self, models: Sequence[CatalogModel], query: QueryParams) -> dict[str, Any]:
        lifecycle = [*query.getlist("lifecycle"), *query.getlist("lifecycle[]")]
        return anthropic_catalog.model_page(models, query, lifecycle)

    def model_info(self, model: CatalogModel | None, requested: str, catalog: Catalog) -> dict[str, Any]:
        if model is None:
            raise anthropic_catalog.not_found(requested)
        return anthropic_catalog.model_info(model)

    def reply_from(self, body: Any) -> Reply:
        return reply_of(body)

    def body_from(self, events: Sequence[RecordedEvent]) -> Any:
        return body_of(events)

    def authenticate(self, request: Request, context: Context) -> str:
        return authenticate(request, context)

    def parse(self, body: Any, request: Request, key: str, context: Context) -> tuple[Exchange, MessagesOptions]:
        parsed = validate(body, context.profile, m.MessagesRequest)
        assert isinstance(parsed, m.MessagesRequest)
        test_id = request.headers.get(TEST_ID_HEADER, "")
        first_new, thread = 0, None
        if isinstance(parsed.thread, m.ThreadContinue):
            parsed, first_new = self.threads.continued_request(parsed, test_id)
        exchange = build_exchange(parsed, body, request.headers, key, context, first_new)
        if parsed.thread is not None:
            continues = parsed.thread.previous_message_id if isinstance(parsed.thread, m.ThreadContinue) else None
            thread = ThreadPlan(parsed, test_id, continues)
        cache = None
        if traits_for(context.profile).caching:
            cache = cache_plan(parsed, exchange.tools, (test_id, key, exchange.model))
        return exchange, MessagesOptions(cache=cache, thread=thread)

    def _cache_usage(self, shaped: Shaped, options: MessagesOptions) -> CacheUsage:
        prompt = shaped.usage.prompt_tokens
        if shaped.usage.cached_tokens:  # pinned by the scenario
            return CacheUsage(read=min(shaped.usage.cached_tokens, prompt))
        if options.cache is None:
            return CacheUsage()
        return self.cache.settle(options.cache, prompt)

    def _body(self, shaped: Shaped, exchange: Exchange, options: MessagesOptions) -> dict[str, Any]:
        """The reply, kept in its thread as soon as it is decided (before the first byte goes out)."""
        body = message_body(shaped, exchange.model, self._cache_usage(shaped, options))
        plan = options.thread
        if plan is not None:
            answer = [m.InputMessage(role="assistant", content=body["content"])] if body["content"] else []
            request = plan.request
            kept = KeptReply(body["id"], (*request.messages, *answer), request.system, request.tools, plan.test_id)
            self.threads.keep(kept, plan.continues)
        return body

    def render(self, shaped: Shaped, exchange: Exchange, options: MessagesOptions) -> dict[str, Any]:
        return self._body(shaped, exchange, options)

    def events(self, shaped: Shaped, exchange: Exchange, options: MessagesOptions) -> Iterator[SseEvent]:
        return stream_events(self._body(shaped, exchange, options), shaped.pieces)  # settled now, not lazily

    def error_body(self, failure: Failure, context: Context, request_id: str | None = None) -> dict[str, Any]:
        return error_body(failure, request_id)

    def error_event(self, failure: Failure, context: Context) -> SseEvent:
        return SseEvent(dump(error_body(failure)), event="error")

    def continues(self, body: Any) -> tuple[str, str] | None:
        thread = body.get("thread") if isinstance(body, dict) else None
        if isinstance(thread, dict) and thread.get("type") == "continue":
            previous = thread.get("previous_message_id")
            return ("threads", previous) if isinstance(previous, str) else None
        return None

    def holds(self, key: str) -> bool:
        return self.threads.holds(key)

    def adopt(self, record: Mapping[str, Any], continued: bool = False) -> None:
        self.threads.adopt(record, continued)

    def mark_continued(self, key: str, test_id: str) -> None:
        self.threads.set_continued(key, test_id)

    def reset(self, test_id: str | None = None) -> None:
        self.cache.reset(test_id)
        self.threads.clear(test_id)

    def extra_routes(self, path: str) -> list[BaseRoute]:
        return [Route(path + "/count_tokens", self.count_tokens, methods=["POST"])]

    async def count_tokens(self, request: Request) -> Response:
        """`{"input_tokens": N}`: the estimate a create request with the same prompt reports in its usage."""
        runtime = request.app.state.runtime
        context: Context = runtime.context
        entry = current_entry(request.scope)
        key = self.authenticate(request, context)
        body = await read_json(request, runtime.settings.max_body_bytes)
        if entry is not None:
            entry.body = body
            entry.model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
        parsed = validate(body, context.profile, m.CountTokensRequest)
        exchange = build_exchange(parsed, body, request.headers, key, context)
        if entry is not None:
            entry.model = exchange.model
        if traits_for(context.profile).caching:
            breakpoints(parsed, prompt_blocks(parsed, exchange.tools))  # the same breakpoint limit
        return json_response({"input_tokens": count_messages(exchange.messages, exchange.tools)})
