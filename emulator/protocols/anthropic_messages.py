"""Anthropic Messages: request → Exchange, shaped Reply → a `message` body or its SSE event stream.

Also serves `POST …/v1/messages/count_tokens`, and keeps a small in-memory prompt cache so that
`cache_control` breakpoints show up in `usage` as cache writes, then cache reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulator.errors import ApiError
from emulator.exchange import Choice, Exchange, Failure, Message, ResponseFormat, Tool, ToolCall, ToolChoice, ToolResult
from emulator.http import bearer_key, json_response, read_json
from emulator.journal import TEST_ID_HEADER
from emulator.profiles import Catalog, CatalogModel, Profile, Range
from emulator.protocols import anthropic_messages_models as m
from emulator.protocols.base import Adapter, Context
from emulator.scenarios.actions import default_message
from emulator.shaping import Shaped
from emulator.streaming import SseEvent
from emulator.tokens import (
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    OTHER_PART_TOKENS,
    TOOL_CALL_OVERHEAD,
    TOOL_OVERHEAD,
    count_messages,
    count_text,
    split_tokens,
)

MAX_CACHE_BREAKPOINTS = 4
CACHE_LOOKBACK_BLOCKS = 20  # how far before a breakpoint the API looks for an earlier cache hit
CACHE_ENTRIES = 4096
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
    # Seed 000's compatibility layer — the profile with an ignored-field list — also ignores every
    # cache_control, disable_parallel_tool_use and history thinking blocks; Profile has no fields for those.
    compatibility_layer = bool(profile.anthropic_ignored_fields)
    return Traits(
        upstream=profile.name == "anthropic",
        caching=not compatibility_layer,
        parallel_switch=not compatibility_layer,
        history_thinking="thinking" not in profile.anthropic_ignored_fields,
    )


# ── authentication ───────────────────────────────────────────────────────────


def authenticate(request: Request, context: Context) -> str:
    """The key from `x-api-key` (where the profile takes it) or `Authorization: Bearer`; then the version header."""
    key = _api_key(request, context)
    if context.profile.anthropic_version_required and not request.headers.get(VERSION_HEADER, "").strip():
        raise ApiError.invalid(f"{VERSION_HEADER}: header is required", param=VERSION_HEADER)
    return key


def _api_key(request: Request, context: Context) -> str:
    takes_key_header = context.profile.anthropic_key_header
    if takes_key_header and "x-api-key" in request.headers:
        key = request.headers["x-api-key"].strip()
        if not key:
            raise ApiError(401, "x-api-key header is required")
        if context.allowed_keys and key not in context.allowed_keys:
            raise ApiError(401, "invalid x-api-key")
        return key
    if takes_key_header and "authorization" not in request.headers:
        raise ApiError(401, "x-api-key header is required")
    return bearer_key(request, context.allowed_keys)


# ── validation errors, worded as the API words them ──────────────────────────

_TYPE_LABELS = frozenset({"str", "int", "float", "bool", "none", "dict", "list"})


def _is_union_label(item: Any) -> bool:
    """Pydantic names the branches of a plain union in `loc` (`str`, `list[…]`); the API leaves them out.

    Discriminator tags (`text`, `tool_result`, `custom`, `enabled`) stay: the API shows them.
    """
    return isinstance(item, str) and ("[" in item or item in _TYPE_LABELS or item[:1].isupper())


def location(loc: Sequence[Any]) -> str:
    return ".".join(str(item) for item in loc if not _is_union_label(item))


def validation_error(exc: ValidationError) -> ApiError:
    """The first problem as `path: message`; within a union, the branch that got furthest says best what is wrong."""
    errors = exc.errors(include_url=False)
    deepest = max(errors, key=lambda e: len(location(e["loc"]).split(".")) if location(e["loc"]) else 0)
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


def _blocks(content: str | list[Any]) -> list[Any]:
    if isinstance(content, str):
        return [m.TextBlock(type="text", text=content)] if content else []
    return content


def _joined_text(blocks: Sequence[Any]) -> str:
    return "\n".join(block.text for block in blocks if isinstance(block, m.TextBlock))


def _part(block: BaseModel) -> dict[str, Any]:
    return block.model_dump(mode="json", exclude={"cache_control"}, exclude_none=True)


def _result_text(content: str | list[Any] | None) -> str:
    return content if isinstance(content, str) else _joined_text(content or [])


def _result_parts(content: str | list[Any] | None) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return []
    return [_part(part) for part in content if not isinstance(part, m.TextBlock)]


class ConversationReader:
    """The request's system prompt and messages as neutral Messages, checked as the API checks them."""

    def __init__(self, profile: Profile, traits: Traits) -> None:
        self.unsupported = profile.anthropic_unsupported_blocks
        self.traits = traits

    def read(self, request: m.CountTokensRequest) -> list[Message]:
        out = self._system(request.system)
        open_calls: dict[str, ToolCall] = {}  # tool_use blocks of the previous message, by neutral id
        last = len(request.messages) - 1
        for index, message in enumerate(request.messages):
            blocks = _blocks(message.content)
            self._check_blocks(blocks, index, final_assistant=index == last and message.role == "assistant")
            if message.role == "assistant":
                produced = [self._assistant(blocks)]
            else:
                produced = self._user(blocks, index, open_calls)
            _check_answered(open_calls, {p.tool_result.call_id for p in produced if p.tool_result}, index - 1)
            out.extend(produced)
            open_calls = {c.id: c for c in produced[0].tool_calls} if message.role == "assistant" else {}
        return out

    @staticmethod
    def _system(system: str | list[m.TextBlock] | None) -> list[Message]:
        text = _result_text(system)
        return [Message("system", text)] if text else []

    def _check_blocks(self, blocks: list[Any], index: int, final_assistant: bool) -> None:
        if not blocks and not final_assistant:
            raise ApiError.invalid(
                f"messages.{index}: all messages must have non-empty content except for the optional final "
                "assistant message",
                param=f"messages.{index}",
            )
        for position, block in enumerate(blocks):
            self._check_supported(block.type, f"messages.{index}.content.{position}")
            if isinstance(block, m.ToolResultBlock) and isinstance(block.content, list):
                for part_index, part in enumerate(block.content):
                    self._check_supported(part.type, f"messages.{index}.content.{position}.content.{part_index}")
            if isinstance(block, m.TextBlock) and not block.text:
                raise ApiError.invalid("messages: text content blocks must be non-empty", param="messages")
            if isinstance(block, m.TextBlock) and not block.text.strip():
                raise ApiError.invalid(
                    "messages: text content blocks must contain non-whitespace text", param="messages"
                )

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
        return Message("assistant", _joined_text(blocks), tool_calls=calls, reasoning=reasoning)

    @staticmethod
    def _tool_results(blocks: list[Any], index: int, open_calls: Mapping[str, ToolCall]) -> list[ToolResult]:
        results = []
        for position, block in enumerate(blocks):
            if not isinstance(block, m.ToolResultBlock):
                continue
            call = open_calls.get(neutral_tool_id(block.tool_use_id))
            if call is None:
                raise ApiError.invalid(
                    f"messages.{index}.content.{position}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block.tool_use_id}. Each `tool_result` block must have a corresponding `tool_use` block in "
                    "the previous message.",
                    param=f"messages.{index}.content.{position}",
                )
            results.append(ToolResult(call.id, call.name, _result_text(block.content)))
        return results

    def _user(self, blocks: list[Any], index: int, open_calls: Mapping[str, ToolCall]) -> list[Message]:
        """One `tool` message per tool_result block, then the user's own words and attachments, if any."""
        results = self._tool_results(blocks, index, open_calls)
        out = []
        result_blocks = [b for b in blocks if isinstance(b, m.ToolResultBlock)]
        for result, block in zip(results, result_blocks, strict=True):
            out.append(Message("tool", result.content, tool_result=result, parts=_result_parts(block.content)))
        own = [b for b in blocks if not isinstance(b, m.ToolResultBlock | m.ServerBlock)]
        if own or not results:
            parts = [_part(b) for b in own if not isinstance(b, m.TextBlock)]
            out.append(Message("user", _joined_text(own), parts=parts))
        return out


def _check_answered(open_calls: Mapping[str, ToolCall], answered: set[str], index: int) -> None:
    missing = [wire_tool_id(call_id) for call_id in open_calls if call_id not in answered]
    if missing:
        raise ApiError.invalid(
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
            "next message.",
            param=f"messages.{index}",
        )


def _tools(request: m.CountTokensRequest) -> list[Tool]:
    tools = []
    seen: set[str] = set()
    for tool in request.tools or ():
        if tool.name in seen:
            raise ApiError.invalid("tools: Tool names must be unique.", param="tools")
        seen.add(tool.name)
        if isinstance(tool, m.CustomTool):
            schema = tool.input_schema.model_dump(mode="json", exclude_none=True)
            tools.append(Tool(tool.name, tool.description or "", schema))
    return tools


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
    return ToolChoice({"auto": "auto", "any": "required", "none": "none"}[choice.type])


def _parallel_tool_calls(request: m.CountTokensRequest, traits: Traits) -> bool:
    disabled = getattr(request.tool_choice, "disable_parallel_tool_use", None)
    return not (traits.parallel_switch and disabled)


def _resolve_model(catalog: Catalog, requested: str, traits: Traits) -> CatalogModel:
    try:
        return catalog.resolve(requested)
    except ApiError:
        if traits.upstream:  # the API itself: `404 not_found_error` naming the model
            raise ApiError(404, f"model: {requested}", param="model") from None
        raise  # a gateway checks its catalogue before any protocol: its own 403


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
    return isinstance(request.thinking, m.ThinkingEnabled | m.ThinkingAdaptive)


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
    accepted = {k: v for k, v in body.items() if k not in profile.anthropic_ignored_fields}
    try:
        request = kind.model_validate(accepted)
    except ValidationError as exc:
        raise validation_error(exc) from None
    if not request.messages:
        raise ApiError.invalid("messages: at least one message is required", param="messages")
    return request


def build_exchange(
    request: m.CountTokensRequest, body: Mapping[str, Any], headers: Mapping[str, str], key: str, context: Context
) -> Exchange:
    traits = traits_for(context.profile)
    if isinstance(request, m.MessagesRequest):
        _check_ranges(request, context.profile, traits)
        _check_thinking(request)
    model = _resolve_model(context.catalog, request.model, traits)
    tools = _tools(request)
    return Exchange(
        protocol="messages",
        model=model.id,
        requested_model=request.model,
        messages=ConversationReader(context.profile, traits).read(request),
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


# ── prompt caching ───────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Breakpoint:
    end: int  # how many prompt blocks it caches
    ttl: str  # "5m" | "1h"


@dataclass(frozen=True)
class CachePlan:
    """The prompt as blocks in cache order (tools, system, messages): a digest and a token count per prefix."""

    owner: tuple[str, str, str]  # test id, api key, model: caches are never shared across them
    digests: tuple[str, ...]  # digests[k] identifies the first k blocks
    tokens: tuple[int, ...]  # tokens[k]: their estimated tokens
    breakpoints: tuple[Breakpoint, ...]


@dataclass(frozen=True)
class CacheUsage:
    read: int = 0
    written_5m: int = 0
    written_1h: int = 0

    @property
    def written(self) -> int:
        return self.written_5m + self.written_1h


@dataclass(frozen=True)
class _Block:
    path: str
    data: Any  # what identifies it, cache_control removed
    tokens: int
    cache_control: m.CacheControl | None


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def _block_tokens(block: Any) -> int:
    """The block's share of `tokens.count_messages`, so that cached + uncached adds up to the prompt."""
    if isinstance(block, m.TextBlock):
        return count_text(block.text)
    if isinstance(block, m.ToolUseBlock):
        return TOOL_CALL_OVERHEAD + count_text(block.name) + count_text(json.dumps(block.input, ensure_ascii=False))
    if isinstance(block, m.ToolResultBlock):
        return MESSAGE_OVERHEAD + count_text(_result_text(block.content))
    if isinstance(block, m.ImageBlock):
        return IMAGE_TOKENS
    if isinstance(block, m.ThinkingBlock | m.RedactedThinkingBlock | m.ServerBlock):
        return 0
    return OTHER_PART_TOKENS


def _nested_cache_control(block: Any) -> m.CacheControl | None:
    """A breakpoint set on a part inside a tool result (or search result) counts for the whole block."""
    parts = getattr(block, "content", None)
    if not isinstance(parts, list):
        return None
    marks = [part.cache_control for part in parts if getattr(part, "cache_control", None)]
    return marks[-1] if marks else None


def _prompt_blocks(request: m.CountTokensRequest, tools: Sequence[Tool]) -> list[_Block]:
    blocks = []
    tool_tokens = {t.name: count_messages([], [t]) - count_messages([]) for t in tools}
    for index, tool in enumerate(request.tools or ()):
        tokens = tool_tokens.get(tool.name, TOOL_OVERHEAD + count_text(tool.name))
        blocks.append(_Block(f"tools.{index}", _part(tool), tokens, tool.cache_control))
    if isinstance(request.system, str):
        blocks.append(_Block("system", request.system, MESSAGE_OVERHEAD + count_text(request.system), None))
    for index, block in enumerate(request.system or ()):
        overhead = MESSAGE_OVERHEAD if index == 0 else 0
        blocks.append(_Block(f"system.{index}", _part(block), overhead + _block_tokens(block), block.cache_control))
    for index, message in enumerate(request.messages):
        for position, block in enumerate(_blocks(message.content)):
            overhead = MESSAGE_OVERHEAD if position == 0 else 0
            mark = getattr(block, "cache_control", None) or _nested_cache_control(block)
            data = [message.role, _without_cache_control(block.model_dump(mode="json", exclude_none=True))]
            path = f"messages.{index}.content.{position}"
            blocks.append(_Block(path, data, overhead + _block_tokens(block), mark))
    return blocks


def _breakpoints(request: m.CountTokensRequest, blocks: Sequence[_Block]) -> tuple[Breakpoint, ...]:
    marked = [(b.path + ".cache_control", i + 1, b.cache_control) for i, b in enumerate(blocks) if b.cache_control]
    if request.cache_control is not None and blocks:  # automatic caching: the last block, one of the 4 slots
        marked.append(("cache_control", len(blocks), request.cache_control))
    if len(marked) > MAX_CACHE_BREAKPOINTS:
        path = marked[MAX_CACHE_BREAKPOINTS][0]
        raise ApiError.invalid(
            f"{path}: A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(marked)}.",
            param=path,
        )
    return tuple(Breakpoint(end, mark.ttl or "5m") for _, end, mark in marked)


def cache_plan(request: m.CountTokensRequest, exchange: Exchange, scope: str) -> CachePlan:
    blocks = _prompt_blocks(request, exchange.tools)
    breakpoints = _breakpoints(request, blocks)
    running = hashlib.sha256()
    digests, tokens, total = [running.hexdigest()], [0], 0
    for block in blocks:
        running.update(json.dumps(block.data, sort_keys=True, ensure_ascii=False).encode())
        running.update(b"\x00")
        total += block.tokens
        digests.append(running.hexdigest())
        tokens.append(total)
    return CachePlan((scope, exchange.api_key, exchange.model), tuple(digests), tuple(tokens), breakpoints)


class PromptCache:
    """Prompt prefixes earlier requests wrote, in least-recently-used order, bounded."""

    def __init__(self, limit: int = CACHE_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def settle(self, plan: CachePlan, prompt_tokens: int) -> CacheUsage:
        """Read the longest cached prefix, write the breakpoints beyond it: what `usage` reports."""
        with self._lock:
            read_end = self._longest_hit(plan)
            written = {"5m": 0, "1h": 0}
            start = read_end
            for point in plan.breakpoints:
                if point.end <= start:
                    continue
                written[point.ttl] += self._tokens(plan, point.end, prompt_tokens) - self._tokens(
                    plan, start, prompt_tokens
                )
                self._store((*plan.owner, plan.digests[point.end]))
                start = point.end
            read = self._tokens(plan, read_end, prompt_tokens)
            return CacheUsage(read=read, written_5m=written["5m"], written_1h=written["1h"])

    def _longest_hit(self, plan: CachePlan) -> int:
        read_end = 0
        for point in plan.breakpoints:
            for end in range(point.end, max(read_end, point.end - CACHE_LOOKBACK_BLOCKS), -1):
                key = (*plan.owner, plan.digests[end])
                if key in self._entries:
                    self._entries.move_to_end(key)
                    read_end = end
                    break
        return read_end

    @staticmethod
    def _tokens(plan: CachePlan, end: int, prompt_tokens: int) -> int:
        return min(plan.tokens[end], prompt_tokens)

    def _store(self, key: tuple[str, ...]) -> None:
        self._entries[key] = None
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def reset(self, test_id: str | None = None) -> None:
        with self._lock:
            if test_id is None:
                self._entries.clear()
                return
            for key in [k for k in self._entries if k[0] == test_id]:
                del self._entries[key]


# ── rendering ────────────────────────────────────────────────────────────────


Pieces = Callable[[str], list[str]]


@dataclass(frozen=True)
class MessagesOptions:
    cache: CachePlan | None = None  # None: cache_control is not honoured here


def _base62(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


def message_id() -> str:
    return "msg_01" + _base62(uuid.uuid4().int, 22)


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


def _event(payload: dict[str, Any]) -> SseEvent:
    return SseEvent(dump(payload), event=payload["type"])


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
            yield _event({"type": "content_block_delta", "index": index, "delta": delta})
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
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


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
    own_message = failure.message and failure.message != default_message(failure.status)
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": failure.type or kind, "message": failure.message if own_message else default},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return body


# ── the adapter ──────────────────────────────────────────────────────────────


class MessagesAdapter(Adapter):
    protocol = "messages"

    def __init__(self) -> None:
        self.cache = PromptCache()

    def authenticate(self, request: Request, context: Context) -> str:
        return authenticate(request, context)

    def parse(self, body: Any, request: Request, key: str, context: Context) -> tuple[Exchange, MessagesOptions]:
        parsed = validate(body, context.profile, m.MessagesRequest)
        exchange = build_exchange(parsed, body, request.headers, key, context)
        if not traits_for(context.profile).caching:
            return exchange, MessagesOptions()
        scope = request.headers.get(TEST_ID_HEADER, "")
        return exchange, MessagesOptions(cache=cache_plan(parsed, exchange, scope))

    def _cache_usage(self, shaped: Shaped, options: MessagesOptions) -> CacheUsage:
        prompt = shaped.usage.prompt_tokens
        if shaped.usage.cached_tokens:  # pinned by the scenario
            return CacheUsage(read=min(shaped.usage.cached_tokens, prompt))
        if options.cache is None:
            return CacheUsage()
        return self.cache.settle(options.cache, prompt)

    def render(self, shaped: Shaped, exchange: Exchange, options: MessagesOptions) -> dict[str, Any]:
        return message_body(shaped, exchange.model, self._cache_usage(shaped, options))

    def events(self, shaped: Shaped, exchange: Exchange, options: MessagesOptions) -> Iterator[SseEvent]:
        body = message_body(shaped, exchange.model, self._cache_usage(shaped, options))  # settled now, not lazily
        return stream_events(body, shaped.pieces)

    def error_body(self, failure: Failure, context: Context, request_id: str | None = None) -> dict[str, Any]:
        return error_body(failure, request_id)

    def error_event(self, failure: Failure, context: Context) -> SseEvent:
        return SseEvent(dump(error_body(failure)), event="error")

    def reset(self, test_id: str | None = None) -> None:
        self.cache.reset(test_id)

    def extra_routes(self, path: str) -> list[BaseRoute]:
        return [Route(path + "/count_tokens", self.count_tokens, methods=["POST"])]

    async def count_tokens(self, request: Request) -> Response:
        """`{"input_tokens": N}`: the estimate a create request with the same prompt reports in its usage."""
        runtime = request.app.state.runtime
        context: Context = runtime.context
        key = self.authenticate(request, context)
        body = await read_json(request, runtime.settings.max_body_bytes)
        parsed = validate(body, context.profile, m.CountTokensRequest)
        exchange = build_exchange(parsed, body, request.headers, key, context)
        if traits_for(context.profile).caching:
            _breakpoints(parsed, _prompt_blocks(parsed, exchange.tools))  # the same breakpoint limit
        return json_response({"input_tokens": count_messages(exchange.messages, exchange.tools)})
