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
    """Blocks replayed in the history that the emulator accepts and does not read: server-side tools' calls and
    results (web search, code execution, MCP, the advisor, …), compaction summaries, fallback boundaries."""

    type: Literal[
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "advisor_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "mcp_tool_listing",
        "container_upload",
        "compaction",
        "fallback",
    ]


class ToolChangeBlock(Cacheable):
    """`tool_addition` / `tool_removal`: a mid-conversation directive that offers or withdraws a tool from that
    point on. `tool` is a reference (`{type: tool_reference, name}`), an MCP reference, or under the inline-tools
    beta a `{type: tool_definition, definition: {...}}` carrying the tool itself."""

    type: Literal["tool_addition", "tool_removal"]
    tool: dict[str, Any]


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
    | ServerBlock
    | ToolChangeBlock,
    Field(discriminator="type"),
]


class InputMessage(_Lenient):
    role: Literal["user", "assistant"]
    content: str | Annotated[list[ContentBlock], FAIL_FAST]


SystemBlock = Annotated[TextBlock | ToolChangeBlock, Field(discriminator="type")]


class SystemMessage(_Lenient):
    """A mid-conversation `role: "system"` message: instructions (and tool changes) from that point on."""

    role: Literal["system"]
    content: str | Annotated[list[SystemBlock], FAIL_FAST] | None = None
    clear_at: Literal["next_user_message", "never"] | None = None  # "next_user_message": shown for one turn only
    output_config: dict[str, Any] | None = None  # per-turn settings (effort)


def _message_kind(value: Any) -> str:
    role = value.get("role") if isinstance(value, dict) else getattr(value, "role", None)
    return "System" if role == "system" else "Turn"


# Tags in capitals: validation errors leave them out of the path, as the API does (`messages.0.role: …`).
AnyMessage = Annotated[
    Annotated[InputMessage, Tag("Turn")] | Annotated[SystemMessage, Tag("System")], Discriminator(_message_kind)
]


def as_blocks(content: str | list[Any] | None) -> list[Any]:
    """A message's content as blocks: a string is one text block (none when empty)."""
    if content is None:
        return []
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
    """A tool the provider runs itself (`web_search_20250305`, `bash_20250124`, an `mcp_toolset`, …): accepted,
    never called. Toolsets have no `name`."""

    type: str
    name: str | None = None


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


class ThinkingBetweenTools(_Lenient):
    """Thinking only between tool calls (the interleaved-thinking mode)."""

    type: Literal["between_tools"]


Thinking = Annotated[
    ThinkingEnabled | ThinkingDisabled | ThinkingAdaptive | ThinkingBetweenTools, Field(discriminator="type")
]


class ThreadCreate(_Lenient):
    type: Literal["create"]


class ThreadContinue(_Lenient):
    type: Literal["continue"]
    previous_message_id: str


Thread = Annotated[ThreadCreate | ThreadContinue, Field(discriminator="type")]


class Metadata(_Lenient):
    user_id: str | None = None


class CountTokensRequest(_Lenient):
    """`POST /v1/messages/count_tokens`: the prompt part of a request."""

    model: str
    messages: Annotated[list[AnyMessage], FAIL_FAST]
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
    thread: Thread | None = None
