"""Pydantic models of an Anthropic Messages request: what the API checks before anything runs.

Strict types (a string is not a number), unknown fields allowed and ignored. Validation errors keep
pydantic's wording and location, which is what the real API reports (`messages.0.content.1.text.text:
Field required`), discriminator tags included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from emulator.protocols.validation import FAIL_FAST

TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,128}$"
MIN_THINKING_BUDGET = 1024


class _Lenient(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class CacheControl(_Lenient):
    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class Cacheable(_Lenient):
    """A block that may carry a prompt-caching breakpoint (thinking blocks may not: theirs is ignored)."""

    cache_control: CacheControl | None = None


# ── content blocks ───────────────────────────────────────────────────────────


class TextBlock(Cacheable):
    type: Literal["text"]
    text: str
    citations: Annotated[list[dict[str, Any]], FAIL_FAST] | None = None


class ImageBlock(Cacheable):
    type: Literal["image"]
    source: dict[str, Any]


class DocumentBlock(Cacheable):
    type: Literal["document"]
    source: dict[str, Any]
    title: str | None = None
    context: str | None = None


class SearchResultBlock(Cacheable):
    type: Literal["search_result"]
    source: str
    title: str
    content: Annotated[list[TextBlock], FAIL_FAST]


class ThinkingBlock(_Lenient):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(_Lenient):
    type: Literal["redacted_thinking"]
    data: str


class ToolUseBlock(Cacheable):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ServerBlock(Cacheable):
    """Blocks of server-side tools (web search, code execution, …) replayed in the history: accepted, not read."""

    type: Literal[
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    ]


class ReferenceBlock(Cacheable):
    """Tool-result parts that only point at something (tool references, browser state)."""

    type: Literal["tool_reference", "browser_state"]


ToolResultPart = Annotated[
    TextBlock | ImageBlock | DocumentBlock | SearchResultBlock | ReferenceBlock, Field(discriminator="type")
]


class ToolResultBlock(Cacheable):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | Annotated[list[ToolResultPart], FAIL_FAST] | None = None
    is_error: bool | None = None


ContentBlock = Annotated[
    TextBlock
    | ImageBlock
    | DocumentBlock
    | SearchResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
    | ToolUseBlock
    | ToolResultBlock
    | ServerBlock,
    Field(discriminator="type"),
]


class InputMessage(_Lenient):
    role: Literal["user", "assistant"]
    content: str | Annotated[list[ContentBlock], FAIL_FAST]


def as_blocks(content: str | list[Any]) -> list[Any]:
    """A message's content as blocks: a string is one text block (none when empty)."""
    if isinstance(content, str):
        return [TextBlock(type="text", text=content)] if content else []
    return content


def joined_text(blocks: Sequence[Any]) -> str:
    return "\n".join(block.text for block in blocks if isinstance(block, TextBlock))


def result_text(content: str | list[Any] | None) -> str:
    """The text of a tool result's (or the system prompt's) content: a string, or its text blocks joined."""
    return content if isinstance(content, str) else joined_text(content or [])


# ── tools ────────────────────────────────────────────────────────────────────


class InputSchema(_Lenient):
    type: Literal["object"]
    properties: dict[str, Any] | None = None
    required: Annotated[list[str], FAIL_FAST] | None = None


class CustomTool(Cacheable):
    type: Literal["custom"] | None = None
    name: Annotated[str, Field(pattern=TOOL_NAME_PATTERN)]
    description: str | None = None
    input_schema: InputSchema


class ServerTool(Cacheable):
    """A tool the provider runs itself (`web_search_20250305`, `bash_20250124`, …): accepted, never called."""

    type: str
    name: str


def _tool_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "custom" if kind in (None, "custom") else "server"


ToolDefinition = Annotated[
    Annotated[CustomTool, Tag("custom")] | Annotated[ServerTool, Tag("server")], Discriminator(_tool_kind)
]


class ToolChoiceAuto(_Lenient):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_Lenient):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_Lenient):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_Lenient):
    type: Literal["none"]


ToolChoice = Annotated[ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")]


# ── the rest of the request ──────────────────────────────────────────────────


class ThinkingEnabled(_Lenient):
    type: Literal["enabled"]
    budget_tokens: Annotated[int, Field(ge=MIN_THINKING_BUDGET)]
    display: Literal["summarized", "omitted"] | None = None


class ThinkingDisabled(_Lenient):
    type: Literal["disabled"]


class ThinkingAdaptive(_Lenient):
    type: Literal["adaptive"]
    display: Literal["summarized", "omitted"] | None = None


Thinking = Annotated[ThinkingEnabled | ThinkingDisabled | ThinkingAdaptive, Field(discriminator="type")]


class Metadata(_Lenient):
    user_id: str | None = None


class CountTokensRequest(_Lenient):
    """`POST /v1/messages/count_tokens`: the prompt part of a request."""

    model: str
    messages: Annotated[list[InputMessage], FAIL_FAST]
    system: str | Annotated[list[TextBlock], FAIL_FAST] | None = None
    tools: Annotated[list[ToolDefinition], FAIL_FAST] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    cache_control: CacheControl | None = None


class MessagesRequest(CountTokensRequest):
    """`POST /v1/messages`. `temperature` is checked against [0, 2] here; a profile may narrow it."""

    max_tokens: Annotated[int, Field(ge=1)]
    stop_sequences: Annotated[list[str], FAIL_FAST] | None = None
    stream: bool | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    metadata: Metadata | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    container: str | dict[str, Any] | None = None
    mcp_servers: Annotated[list[dict[str, Any]], FAIL_FAST] | None = None
