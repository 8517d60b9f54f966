"""Pydantic models of a Responses API request (`POST /v1/responses`): what the gateway checks before anything runs.

Strict types, unknown fields allowed and ignored. Input items are a union chosen by a callable discriminator
whose tags are capitalised, so that `validation.param_path` leaves them out of the `param` it reports
(`input[0].call_id`, not `input[0].function_call_output.call_id`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

from emulator.protocols.validation import FAIL_FAST


class _Lenient(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


def _type_values(model: type[BaseModel]) -> tuple[str, ...]:
    return get_args(model.model_fields["type"].annotation)


def _unknown(name: str, values: tuple[str, ...]) -> type[BaseModel]:
    """A model that accepts no item: it reports an unsupported `type` together with the supported values."""
    return create_model(name, __base__=_Lenient, type=(Literal[values], ...))  # type: ignore[arg-type]


def _tagged(members: tuple[type[BaseModel], ...], tag_of: Callable[[Any], str]) -> Any:
    """A union chosen by `tag_of`, each member tagged by its class name (plus "Unknown")."""
    values = tuple(v for member in members for v in _type_values(member) if v is not None)
    unknown = _unknown(f"Unknown{members[0].__name__}", values)
    tagged = [Annotated[member, Tag(member.__name__)] for member in members]
    tagged.append(Annotated[unknown, Tag("Unknown")])
    return Annotated[Union[tuple(tagged)], Discriminator(tag_of)]  # noqa: UP007 - built at run time


def _by_type(*members: type[BaseModel]) -> Any:
    """A union on the `type` field: `{"type": "input_text", …}` is validated as the member whose `type` says so."""
    tags = {value: member.__name__ for member in members for value in _type_values(member)}
    first = members[0].__name__

    def tag_of(value: Any) -> str:
        if not isinstance(value, dict):
            return first  # reported as "expected an object"
        kind = value.get("type")
        return tags.get(kind, "Unknown") if isinstance(kind, str) else "Unknown"

    return _tagged(members, tag_of)


# ── content parts ────────────────────────────────────────────────────────────


class InputText(_Lenient):
    type: Literal["input_text"]
    text: str


class InputImage(_Lenient):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high", "original"] | None = None


class InputFile(_Lenient):
    type: Literal["input_file"]
    file_id: str | None = None
    filename: str | None = None
    file_data: str | None = None
    file_url: str | None = None


class OutputText(_Lenient):
    """Text of an earlier assistant answer, sent back as input."""

    type: Literal["output_text"]
    text: str
    annotations: Annotated[list[Any], FAIL_FAST] | None = None


class Refusal(_Lenient):
    type: Literal["refusal"]
    refusal: str


ContentPart = _by_type(InputText, InputImage, InputFile, OutputText, Refusal)
ToolOutputPart = _by_type(InputText, InputImage, InputFile)


# ── input items ──────────────────────────────────────────────────────────────


class MessageItem(_Lenient):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | Annotated[list[ContentPart], FAIL_FAST]  # type: ignore[valid-type]  # a union made at run time
    id: str | None = None


class FunctionCallItem(_Lenient):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str
    arguments: str
    id: str | None = None


class FunctionCallOutputItem(_Lenient):
    type: Literal["function_call_output"]
    call_id: str | None = Field(default=None, min_length=1, max_length=64)  # None: the last open call (of `name`)
    output: str | Annotated[list[ToolOutputPart], FAIL_FAST]  # type: ignore[valid-type]  # a union made at run time
    name: str | None = None
    id: str | None = None


class SummaryText(_Lenient):
    type: Literal["summary_text"]
    text: str


class ReasoningText(_Lenient):
    type: Literal["reasoning_text"]
    text: str


class ReasoningItem(_Lenient):
    type: Literal["reasoning"]
    summary: Annotated[list[SummaryText], FAIL_FAST]
    content: Annotated[list[ReasoningText], FAIL_FAST] | None = None
    encrypted_content: str | None = None
    id: str | None = None


class ItemReference(_Lenient):
    type: Literal["item_reference"] = "item_reference"
    id: str


class OtherItem(_Lenient):
    """An item of a built-in tool (web search, computer use, MCP, …): accepted, kept, not shown to scenarios."""

    type: str


# Item types of the built-in tools, which this emulator accepts without running them.
OTHER_ITEM_TYPES = frozenset(
    {
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "web_search_call",
        "image_generation_call",
        "code_interpreter_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "custom_tool_call",
        "custom_tool_call_output",
        "compaction",
        "tool_search_call",
        "tool_search_output",
        "additional_tools",
        "configuration_update",
        "compaction_trigger",
        "program",
        "program_output",
    }
)


def _item_tag(value: Any) -> str:
    """Messages may leave out `type`; built-in tool items are kept as they are."""
    if not isinstance(value, dict):
        return "MessageItem"  # reported as "expected an object"
    kind = value.get("type")
    if kind is None:
        return "ItemReference" if "id" in value and "role" not in value else "MessageItem"
    if not isinstance(kind, str):
        return "Unknown"
    if kind in OTHER_ITEM_TYPES:
        return "OtherItem"
    return _ITEM_TAGS.get(kind, "Unknown")


_ITEM_MODELS = (MessageItem, FunctionCallItem, FunctionCallOutputItem, ReasoningItem, ItemReference)
_ITEM_TAGS = {value: model.__name__ for model in _ITEM_MODELS for value in _type_values(model) if value}
InputItem = _tagged((*_ITEM_MODELS, OtherItem), _item_tag)

UNION_TAGS: frozenset[str] = frozenset()  # every union above is tagged by class name, which param_path drops


# ── tools, tool choice, text format, reasoning ───────────────────────────────


class ToolDefinition(_Lenient):
    """A flat function tool; other types (web_search, file_search, mcp, …) are accepted and ignored."""

    type: str
    name: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FormatText(_Lenient):
    type: Literal["text"]


class FormatJsonObject(_Lenient):
    type: Literal["json_object"]


class FormatJsonSchema(_Lenient):
    type: Literal["json_schema"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


TextFormat = _by_type(FormatText, FormatJsonObject, FormatJsonSchema)


class TextParam(_Lenient):
    format: TextFormat | None = None  # type: ignore[valid-type]  # a union made at run time
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningParam(_Lenient):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class CreateResponseRequest(_Lenient):
    model: str = Field(min_length=1)
    input: str | Annotated[list[InputItem], FAIL_FAST] | None = None  # type: ignore[valid-type]  # a union made at run time
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: Annotated[list[ToolDefinition], FAIL_FAST] | None = None
    tool_choice: str | dict[str, Any] | None = None  # checked by the adapter, for a clearer message
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=16)
    max_tool_calls: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    text: TextParam | None = None
    reasoning: ReasoningParam | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    background: bool | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    user: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: Annotated[list[str], FAIL_FAST] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = Field(default=None, max_length=64)
