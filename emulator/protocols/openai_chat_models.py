"""Pydantic models of a Chat Completions request: what the gateway checks before anything runs.

Strict types (a string is not a number), unknown fields allowed and ignored, as the gateways do.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from emulator.protocols.validation import FAIL_FAST


class _Lenient(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ImageURL(_Lenient):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageURL


class FileData(_Lenient):
    filename: str | None = None
    file_data: str | None = None
    file_id: str | None = None


class FilePart(_Lenient):
    type: Literal["file"]
    file: FileData


class AudioPart(_Lenient):
    type: Literal["input_audio"]
    input_audio: dict[str, Any]


class RefusalPart(_Lenient):
    type: Literal["refusal"]
    refusal: str


UserPart = Annotated[TextPart | ImagePart | FilePart | AudioPart, Field(discriminator="type")]
AssistantPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


class FunctionCall(_Lenient):
    name: str
    arguments: str


class CustomCall(_Lenient):
    name: str
    input: str


class FunctionToolCallIn(_Lenient):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def arguments(self) -> str:
        return self.function.arguments


class CustomToolCallIn(_Lenient):
    """A call of a `custom` (free-form text) tool: its `input` is the text the model wrote."""

    id: str
    type: Literal["custom"]
    custom: CustomCall

    @property
    def name(self) -> str:
        return self.custom.name

    @property
    def arguments(self) -> str:
        return self.custom.input


def _call_kind(value: Any) -> str:
    kind = value.get("type", "function") if isinstance(value, dict) else getattr(value, "type", "function")
    return "CustomToolCallIn" if kind == "custom" else "FunctionToolCallIn"


ToolCallIn = Annotated[
    Annotated[FunctionToolCallIn, Tag("FunctionToolCallIn")] | Annotated[CustomToolCallIn, Tag("CustomToolCallIn")],
    Discriminator(_call_kind),
]


class SystemMessage(_Lenient):
    role: Literal["system", "developer"]
    content: str | Annotated[list[TextPart], FAIL_FAST]
    name: str | None = None


class UserMessage(_Lenient):
    role: Literal["user"]
    content: str | Annotated[list[UserPart], FAIL_FAST]
    name: str | None = None


class AssistantMessage(_Lenient):
    role: Literal["assistant"]
    content: str | Annotated[list[AssistantPart], FAIL_FAST] | None = None
    tool_calls: Annotated[list[ToolCallIn], FAIL_FAST] | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    name: str | None = None


class ToolMessage(_Lenient):
    role: Literal["tool"]
    content: str | Annotated[list[TextPart], FAIL_FAST]
    tool_call_id: str


class FunctionMessage(_Lenient):
    """Deprecated `function` role: the result of a legacy function call."""

    role: Literal["function"]
    name: str
    content: str | None


ChatMessage = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage,
    Field(discriminator="role"),
]
UNION_TAGS = frozenset(
    {
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "function",
        "text",
        "image_url",
        "file",
        "input_audio",
        "refusal",
        "custom",
        "allowed_tools",
    }
)


class FunctionDefinition(_Lenient):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(_Lenient):
    """`function` tools are offered to scenarios; other types (web search, custom) are accepted and ignored."""

    type: str
    function: FunctionDefinition | None = None


class NamedFunction(_Lenient):
    name: str


class NamedToolChoice(_Lenient):
    type: Literal["function"]
    function: NamedFunction


class NamedCustomToolChoice(_Lenient):
    type: Literal["custom"]
    custom: NamedFunction


class AllowedTools(_Lenient):
    mode: Literal["auto", "required"]
    tools: Annotated[list[dict[str, Any]], FAIL_FAST]


class AllowedToolsChoice(_Lenient):
    """`allowed_tools`: the model may call only these tools; `required` makes it call one of them."""

    type: Literal["allowed_tools"]
    allowed_tools: AllowedTools


ObjectToolChoice = Annotated[NamedToolChoice | NamedCustomToolChoice | AllowedToolsChoice, Field(discriminator="type")]


class StreamOptions(_Lenient):
    include_usage: bool | None = None


class JsonSchemaFormat(_Lenient):
    name: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormatText(_Lenient):
    type: Literal["text"]


class ResponseFormatJsonObject(_Lenient):
    type: Literal["json_object"]


class ResponseFormatJsonSchema(_Lenient):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema, Field(discriminator="type")
]


class ChatCompletionRequest(_Lenient):
    model: str = Field(min_length=1)
    messages: Annotated[list[ChatMessage], FAIL_FAST] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | Annotated[list[str], FAIL_FAST] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, int] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    seed: int | None = None
    user: str | None = None
    tools: Annotated[list[ToolDefinition], FAIL_FAST] | None = None
    tool_choice: Literal["none", "auto", "required"] | ObjectToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    enable_thinking: bool | None = None
    enable_search: bool | None = None
    thinking: dict[str, Any] | None = None
