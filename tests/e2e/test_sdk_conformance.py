"""The conformance sweep: what the installed openai and anthropic SDKs can send, the emulator accepts.

The requests are made from the SDKs' own typed create-params (tests/helpers/sdk_samples.py walks the TypedDicts): one
request per top-level field, one per member of the message, content-block, tool, tool-choice and format unions,
for Chat Completions, Responses and Messages (and the beta Messages surface the agent SDKs and tool runners use).
Each is sent with the SDK itself and must be answered 200, and each reply must validate against the SDK's own
response type. A field or block type that a new SDK release adds shows up here as a new failing case.

tests/sdk_versions.json records the versions the sweep last passed with; another installed version is reported,
not failed, since the sweep itself is the check.
"""

from __future__ import annotations

import json
import typing
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import Any

import anthropic
import openai
import pydantic
import pytest
from anthropic.types import message_create_params as messages_params
from anthropic.types.beta import message_create_params as beta_params
from openai.types.chat import completion_create_params as chat_params
from openai.types.responses import response_create_params as responses_params

from emulator.testing import EmulatorServer
from tests.helpers.sdk_samples import Sampler, fields, members, tag, union_cases
from tests.helpers.servers import ROOT

VERSIONS_FILE = ROOT / "tests" / "sdk_versions.json"
MODEL = "glm-5"
TOOL_ID = "toolu_sweep0000000000000000000"
CALL_ID = "call_sweep"
SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}}

Case = tuple[str, dict[str, Any]]


def hints(params: type) -> dict[str, Any]:
    return typing.get_type_hints(params, include_extras=True)


# ── Anthropic Messages ───────────────────────────────────────────────────────

ANTHROPIC = Sampler(
    {
        "model": MODEL,
        "max_tokens": 2048,
        "budget_tokens": 1024,
        "id": TOOL_ID,
        "tool_use_id": TOOL_ID,
        "name": "lookup",
        "input_schema": SCHEMA,
        "temperature": 0.5,
        "top_p": 0.5,
    }
)
MESSAGES_BASE = {"model": MODEL, "max_tokens": 2048, "messages": [{"role": "user", "content": "hi"}]}
LOOKUP = {"name": "lookup", "description": "Look a word up", "input_schema": SCHEMA}
# where a block may stand: blocks the model wrote go in an assistant turn, tool changes in a system message
SYSTEM_BLOCKS = {"tool_addition", "tool_removal"}
USER_BLOCKS = {"text", "image", "document", "search_result", "tool_result"}
NEEDS = {"tool_choice": {"tools": [LOOKUP]}, "thinking": {"max_tokens": 2048}}


def _conversation_with(block: dict[str, Any]) -> list[dict[str, Any]]:
    user = {"role": "user", "content": "hi"}
    call = {"type": "tool_use", "id": TOOL_ID, "name": "lookup", "input": {}}
    if block["type"] == "tool_result":
        return [user, {"role": "assistant", "content": [call]}, {"role": "user", "content": [block]}]
    if block["type"] == "tool_use":
        result = {"type": "tool_result", "tool_use_id": TOOL_ID, "content": "ok"}
        return [user, {"role": "assistant", "content": [block]}, {"role": "user", "content": [result]}]
    if block["type"] in SYSTEM_BLOCKS:
        return [user, {"role": "system", "content": [block]}]
    if block["type"] in USER_BLOCKS:
        return [{"role": "user", "content": [block]}]
    return [user, {"role": "assistant", "content": [block]}, {"role": "user", "content": "go on"}]


def messages_cases(params: type, label: str) -> Iterator[Case]:
    top = hints(params)
    for name, hint in top.items():
        if name not in MESSAGES_BASE and name != "stream":
            yield f"{label}:field:{name}", {**MESSAGES_BASE, **NEEDS.get(name, {}), name: ANTHROPIC.value(hint, name)}
    message_union = typing.get_args(typing.get_args(top["messages"])[0])[0]  # Required[Iterable[X]] → X
    for case, member in union_cases(message_union):
        # a system message needs content (or output_config), which its TypedDict leaves optional
        message = ANTHROPIC.record(member, extra={"content": "x"} if case == "system" else None)
        conversation = [message] if message["role"] == "user" else [MESSAGES_BASE["messages"][0], message]
        yield f"{label}:message:{case}", {**MESSAGES_BASE, "messages": conversation}
    content = next(m for m in members(fields(members(message_union)[0])["content"][0]) if m is not str)
    block_union = typing.get_args(content)[0]
    for case, member in union_cases(block_union):
        block = ANTHROPIC.record(member)
        yield f"{label}:block:{case}", {**MESSAGES_BASE, "messages": _conversation_with(block)}
        if case == "tool_result":
            part_union = next(m for m in members(fields(member)["content"][0]) if m is not str)
            for part_case, part in union_cases(typing.get_args(part_union)[0]):
                nested = {**block, "content": [ANTHROPIC.record(part)]}
                yield f"{label}:tool_result_part:{part_case}", {**MESSAGES_BASE, "messages": _conversation_with(nested)}
    for union_field, extra in (("tools", {}), ("tool_choice", {"tools": [LOOKUP]}), ("thinking", {})):
        union = top[union_field]
        if union_field == "tools":
            union = typing.get_args(union)[0]  # Iterable[X] → X
        for case, member in union_cases(union):
            value = ANTHROPIC.record(member)
            yield (
                f"{label}:{union_field}:{case}",
                {**MESSAGES_BASE, **extra, union_field: [value] if union_field == "tools" else value},
            )


def send_messages(client: anthropic.Anthropic, beta: bool, params: dict[str, Any]) -> dict[str, Any]:
    surface = client.beta.messages if beta else client.messages
    raw = surface.with_raw_response.create(**params)
    body = raw.http_response.json()
    kind = anthropic.types.beta.BetaMessage if beta else anthropic.types.Message
    kind.model_validate(body)
    return body


# ── OpenAI Chat Completions ──────────────────────────────────────────────────

OPENAI = Sampler(
    {
        "model": MODEL,
        "n": 1,
        "top_logprobs": 1,
        "temperature": 0.5,
        "top_p": 0.5,
        "id": CALL_ID,
        "tool_call_id": CALL_ID,
        "call_id": CALL_ID,
        "name": "lookup",
        "parameters": SCHEMA,
        "arguments": "{}",
        "max_tokens": 64,
        "max_completion_tokens": 64,
        "max_output_tokens": 64,
    }
)
CHAT_BASE = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
CHAT_TOOL = {"type": "function", "function": {"name": "lookup", "parameters": SCHEMA}}
CHAT_NEEDS = {
    "tool_choice": {"tools": [CHAT_TOOL]},
    "parallel_tool_calls": {"tools": [CHAT_TOOL]},
    "top_logprobs": {"logprobs": True},
    "function_call": {"functions": [{"name": "lookup", "parameters": SCHEMA}]},
}
CHAT_SKIPPED = {"stream", "stream_options"}  # the streaming case below covers them


def _chat_conversation(message: dict[str, Any]) -> list[dict[str, Any]]:
    user = CHAT_BASE["messages"][0]
    call = {"id": CALL_ID, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    if message["role"] == "tool":
        return [user, {"role": "assistant", "tool_calls": [call]}, message]
    if message["role"] == "function":
        return [user, {"role": "assistant", "function_call": {"name": "lookup", "arguments": "{}"}}, message]
    if message["role"] == "assistant":
        return [user, message, {"role": "user", "content": "go on"}]
    return [message] if message["role"] == "user" else [message, user]


def chat_cases() -> Iterator[Case]:
    top = hints(chat_params.CompletionCreateParamsNonStreaming)
    for name, hint in top.items():
        if name not in CHAT_BASE and name not in CHAT_SKIPPED:
            yield f"chat:field:{name}", {**CHAT_BASE, **CHAT_NEEDS.get(name, {}), name: OPENAI.value(hint, name)}
    message_union = typing.get_args(typing.get_args(top["messages"])[0])[0]
    for case, member in union_cases(message_union):
        message = OPENAI.record(member)
        if message["role"] == "assistant":
            message["content"] = "ok"
        yield f"chat:message:{case}", {**CHAT_BASE, "messages": _chat_conversation(message)}
    user = next(m for m in members(message_union) if tag(m) == "user")
    parts = next(m for m in members(fields(user)["content"][0]) if m is not str)
    for case, member in union_cases(typing.get_args(parts)[0]):
        message = {"role": "user", "content": [OPENAI.record(member)]}
        yield f"chat:user_part:{case}", {**CHAT_BASE, "messages": [message]}
    assistant = next(m for m in members(message_union) if tag(m) == "assistant")
    for case, member in union_cases(typing.get_args(fields(assistant)["tool_calls"][0])[0]):
        call = OPENAI.record(member)
        result = {"role": "tool", "tool_call_id": CALL_ID, "content": "ok"}
        conversation = [CHAT_BASE["messages"][0], {"role": "assistant", "tool_calls": [call]}, result]
        yield f"chat:tool_call:{case}", {**CHAT_BASE, "messages": conversation}
    for case, member in union_cases(typing.get_args(top["tools"])[0]):
        yield f"chat:tools:{case}", {**CHAT_BASE, "tools": [OPENAI.record(member)]}
    for case, member in union_cases(top["tool_choice"]):
        choices = typing.get_args(member) if case == "Literal" else (OPENAI.record(member),)
        for choice in choices:
            label = choice if isinstance(choice, str) else case
            tools = [CHAT_TOOL, {"type": "custom", "custom": {"name": "lookup_text"}}]
            if case == "custom":
                choice = {"type": "custom", "custom": {"name": "lookup_text"}}
            yield f"chat:tool_choice:{label}", {**CHAT_BASE, "tools": tools, "tool_choice": choice}
    for case, member in union_cases(top["response_format"]):
        yield f"chat:response_format:{case}", {**CHAT_BASE, "response_format": OPENAI.record(member)}


def send_chat(client: openai.OpenAI, params: dict[str, Any]) -> dict[str, Any]:
    body = client.chat.completions.with_raw_response.create(**params).http_response.json()
    openai.types.chat.ChatCompletion.model_validate(body)
    return body


# ── OpenAI Responses ─────────────────────────────────────────────────────────

RESPONSES_BASE = {"model": MODEL, "input": "hi"}
RESPONSES_TOOL = {"type": "function", "name": "lookup", "parameters": SCHEMA, "strict": False}
RESPONSES_NEEDS = {"tool_choice": {"tools": [RESPONSES_TOOL]}, "top_logprobs": {}}
RESPONSES_SKIPPED = {"stream", "stream_options"}
STORED = "{stored}"  # replaced by the id of a response the sweep stored first


def _responses_input(item: dict[str, Any]) -> list[dict[str, Any]]:
    user = {"role": "user", "content": "hi"}
    call = {"type": "function_call", "call_id": CALL_ID, "name": "lookup", "arguments": "{}"}
    output = {"type": "function_call_output", "call_id": CALL_ID, "output": "ok"}
    if item.get("type") == "function_call":
        return [user, item, output]
    if item.get("type") == "function_call_output":
        return [user, call, item]
    return [user, item] if item.get("role") != "user" else [item]


def responses_cases() -> Iterator[Case]:
    top = hints(responses_params.ResponseCreateParamsNonStreaming)
    for name, hint in top.items():
        if name not in RESPONSES_BASE and name not in RESPONSES_SKIPPED:
            value = STORED if name == "previous_response_id" else OPENAI.value(hint, name)
            yield f"responses:field:{name}", {**RESPONSES_BASE, **RESPONSES_NEEDS.get(name, {}), name: value}
    items = next(m for m in members(top["input"]) if m is not str)
    for case, member in union_cases(typing.get_args(items)[0]):
        item = OPENAI.record(member)
        if case == "ItemReference":
            item = {"type": "item_reference", "id": STORED}
        yield f"responses:input:{case}", {**RESPONSES_BASE, "input": _responses_input(item)}
    for case, member in union_cases(typing.get_args(top["tools"])[0]):
        yield f"responses:tools:{case}", {**RESPONSES_BASE, "tools": [OPENAI.record(member)]}
    for case, member in union_cases(top["tool_choice"]):
        choices = typing.get_args(member) if case == "Literal" else (OPENAI.record(member),)
        for choice in choices:
            label = choice if isinstance(choice, str) else case
            yield f"responses:tool_choice:{label}", {**RESPONSES_BASE, "tools": [RESPONSES_TOOL], "tool_choice": choice}


def send_responses(client: openai.OpenAI, params: dict[str, Any]) -> dict[str, Any]:
    body = client.responses.with_raw_response.create(**params).http_response.json()
    openai.types.responses.Response.model_validate(body)
    return body


# ── the sweep ────────────────────────────────────────────────────────────────

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    **{
        case: ("messages", params)
        for case, params in messages_cases(messages_params.MessageCreateParamsNonStreaming, "messages")
    },
    **{case: ("beta", params) for case, params in messages_cases(beta_params.MessageCreateParamsNonStreaming, "beta")},
    **{case: ("chat", params) for case, params in chat_cases()},
    **{case: ("responses", params) for case, params in responses_cases()},
}


class Clients:
    """The SDKs' clients on the upstream APIs' profiles (`anthropic`, `openai`), which refuse nothing a gateway
    documents as unsupported (TokenHub's Messages route refuses image blocks, for one)."""

    def __init__(self, anthropic_server: EmulatorServer, openai_server: EmulatorServer) -> None:
        self.anthropic = anthropic_server.handle("sdk-conformance").anthropic()
        self.openai = openai_server.handle("sdk-conformance").openai()
        self.stored = send_responses(self.openai, {**RESPONSES_BASE, "input": [{"role": "user", "content": "hi"}]})

    def send(self, surface: str, params: dict[str, Any]) -> dict[str, Any]:
        params = json.loads(json.dumps(params).replace(STORED, self._stored_id(params)))
        senders: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "messages": lambda p: send_messages(self.anthropic, False, p),
            "beta": lambda p: send_messages(self.anthropic, True, p),
            "chat": lambda p: send_chat(self.openai, p),
            "responses": lambda p: send_responses(self.openai, p),
        }
        return senders[surface](params)

    def _stored_id(self, params: dict[str, Any]) -> str:
        if "previous_response_id" in params:
            return self.stored["id"]
        return self.stored["output"][0]["id"]  # an item of it, for item_reference


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    folder = tmp_path_factory.mktemp("profiles")
    servers = []
    for profile in ("anthropic", "openai"):
        (folder / f"{profile}.yaml").write_text(f"settings: {{profile: {profile}}}\nrules: []\n", encoding="utf-8")
        servers.append(EmulatorServer(scenarios=[folder / f"{profile}.yaml"], seed=3).start())
    try:
        yield Clients(*servers)
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize("case", sorted(CASES))
def test_what_the_sdk_can_send_is_accepted_and_the_reply_parses(clients, case):
    surface, params = CASES[case]
    try:
        clients.send(surface, params)
    except (openai.APIStatusError, anthropic.APIStatusError) as error:
        pytest.fail(f"{case}: {error.status_code} {error.body}\nrequest: {json.dumps(params)[:2000]}")
    except pydantic.ValidationError as error:
        pytest.fail(f"{case}: the reply does not parse as the SDK's type: {error}")


def test_the_sweep_covers_every_union_member():
    """The cases are made from the types: a member the SDK adds is a new case, not a silent gap."""
    beta = hints(beta_params.MessageCreateParamsNonStreaming)
    tool_members = members(typing.get_args(beta["tools"])[0])
    assert len([c for c in CASES if c.startswith("beta:tools:")]) == len(tool_members)
    assert {c.rsplit(":", 1)[1] for c in CASES if c.startswith("beta:field:")} == set(beta) - {
        "model",
        "max_tokens",
        "messages",
        "stream",
    }


def test_streamed_replies_parse_event_by_event(clients):
    """One streamed request per protocol; every event validates against the SDK's stream event types."""
    chunks = clients.openai.chat.completions.with_raw_response.create(
        **CHAT_BASE, stream=True, stream_options={"include_usage": True}
    )
    events = [
        line[6:] for line in chunks.http_response.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"
    ]
    assert events and all(openai.types.chat.ChatCompletionChunk.model_validate_json(e) for e in events)
    raw = clients.openai.responses.with_raw_response.create(**RESPONSES_BASE, stream=True)
    adapter = pydantic.TypeAdapter(openai.types.responses.ResponseStreamEvent)
    events = [line[6:] for line in raw.http_response.iter_lines() if line.startswith("data: ")]
    assert events and all(adapter.validate_json(e) for e in events)
    raw = clients.anthropic.beta.messages.with_raw_response.create(**MESSAGES_BASE, stream=True)
    adapter = pydantic.TypeAdapter(anthropic.types.beta.BetaRawMessageStreamEvent)
    events = [line[6:] for line in raw.http_response.iter_lines() if line.startswith("data: ")]
    events = [e for e in events if json.loads(e)["type"] != "ping"]  # keep-alives, which the SDK skips
    assert events and all(adapter.validate_json(e) for e in events)


def test_the_recorded_sdk_versions():
    recorded = json.loads(VERSIONS_FILE.read_text(encoding="utf-8"))
    installed = {name: version(name) for name in recorded}
    if installed != recorded:
        warnings.warn(
            f"the conformance sweep last passed with {recorded}; installed: {installed}. When the sweep passes with "
            f"these, record them in {VERSIONS_FILE.name}.",
            stacklevel=1,
        )
