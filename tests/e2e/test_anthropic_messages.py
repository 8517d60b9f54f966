"""Anthropic Messages over the real server, through the real `anthropic` SDK: every body and event must parse as
the SDK's own types, with no key the SDK does not know; the shipped scenarios answer in the Anthropic shape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from pydantic import BaseModel

from tests.helpers.anthropic import (
    FIXTURE,
    WEATHER_TOOL,
    create,
    http,
    sdk,
    sse_events,
    stream_events,
)
from tests.helpers.servers import SCENARIOS, RunningServer, start_server, stop_server

# ── helpers shared by the test_anthropic_* modules ───────────────────────────


















def comparable(message: BaseModel) -> dict[str, Any]:
    """A message as JSON without its id (and without the SDK's own `parsed_output` of streamed text blocks)."""
    data = json.loads(message.model_dump_json(exclude={"id"}))
    for block in data["content"]:
        block.pop("parsed_output", None)
    return data


def assert_stream_matches(server: RunningServer, **body: Any) -> anthropic.types.Message:
    """`messages.stream(...).get_final_message()` rebuilds exactly the non-streaming message."""
    created, _ = create(server, **body)
    with sdk(server).messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert comparable(final) == comparable(created)
    return created


@pytest.fixture(scope="module")
def upstream() -> Iterator[RunningServer]:
    """The `anthropic` profile (the upstream API's behaviour) with the test scenarios."""
    running = start_server("--profile", "anthropic", "--scenario", str(FIXTURE), "--scenario", str(SCENARIOS))
    yield running
    stop_server(running)


# ── TokenHub's documented examples and shipped scenarios, in the Anthropic shape


def test_basic_conversation(server):
    message, body = create(
        server,
        model="deepseek-v3.2",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Hello, please introduce yourself"}],
    )
    assert body["id"].startswith("msg_01") and len(body["id"]) == 28
    assert body["type"] == "message" and body["role"] == "assistant" and body["model"] == "deepseek-v3.2"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text.startswith("Hello! Nice to meet you!")
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    usage = body["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["cache_creation_input_tokens"] == usage["cache_read_input_tokens"] == 0
    assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    assert usage["service_tier"] == "standard"


def test_system_prompt_as_blocks(server):
    message, _ = create(
        server,
        model="minimax-m2.7",
        max_tokens=1000,
        system=[{"type": "text", "text": "You are a professional translation assistant."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "The weather is very nice today."}]}],
    )
    assert message.content[0].text == "今天天气非常好。"


def test_system_prompt_as_string(server):
    message, _ = create(
        server,
        model="glm-5",
        max_tokens=100,
        system="You are a translation assistant.",
        messages=[{"role": "user", "content": "Good morning"}],
    )
    assert message.content[0].text == "[translated] Good morning"


def test_tool_round_trip_scenario(server):
    """scenarios/04: tool_use with a toolu_ id, then the tool_result answered from its JSON."""
    client = sdk(server)
    ask = [{"role": "user", "content": "What is the weather like in Beijing today?"}]
    first, body = create(server, model="hy3-preview", max_tokens=1024, tools=[WEATHER_TOOL], messages=ask)
    assert first.stop_reason == "tool_use"
    (call,) = first.content
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Beijing"}
    assert call.id.startswith("toolu_") and len(call.id) == len("toolu_") + 24
    result = {"type": "tool_result", "tool_use_id": call.id, "content": '{"weather": "sunny", "temperature": 25}'}
    follow_up = [*ask, first.to_param(), {"role": "user", "content": [result]}]
    second = client.messages.create(model="hy3-preview", max_tokens=1024, tools=[WEATHER_TOOL], messages=follow_up)
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "It is sunny in Beijing today, 25°C with unknown% humidity."
    assert body["content"][0]["input"] == {"city": "Beijing"}


def test_tool_result_content_as_blocks(server):
    first, _ = create(
        server,
        model="glm-5",
        max_tokens=1024,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "weather please"}],
    )
    call = first.content[0]
    parts = [{"type": "text", "text": '{"weather": "rainy", "temperature": 12, "humidity": 80}'}]
    second, _ = create(
        server,
        model="glm-5",
        max_tokens=1024,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "weather please"},
            first.to_param(),
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": parts}]},
        ],
    )
    assert second.content[0].text == "It is rainy in Beijing today, 12°C with 80% humidity."


def test_deep_thinking_scenario(server):
    """scenarios/05: the scenario's reasoning is a thinking block, with a signature, before the text."""
    message, body = create(
        server,
        model="glm-5",
        max_tokens=2048,
        messages=[{"role": "user", "content": "Why does idempotency matter in distributed systems?"}],
    )
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking.startswith("The user wants to know why idempotency")
    assert len(thinking.signature) > 100
    assert text.type == "text" and text.text.startswith("### Why idempotency matters")
    again, _ = create(
        server,
        model="glm-5",
        max_tokens=2048,
        messages=[{"role": "user", "content": "Why does idempotency matter in distributed systems?"}],
    )
    assert again.content[0].signature == thinking.signature  # deterministic
    assert body["usage"]["output_tokens"] > 0


def test_streaming_scenario_wire_format(server):
    """scenarios/06 streamed: the event sequence the API sends, blocks indexed from 0."""
    events = stream_events(
        server,
        {
            "model": "minimax-m2.7",
            "max_tokens": 1000,
            "system": [{"type": "text", "text": "You are a helpful assistant."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Calculate 1+1"}]}],
        },
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[1] == "content_block_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = events[0].message
    assert start.content == [] and start.stop_reason is None and start.usage.output_tokens == 1
    assert {e.index for e in events if hasattr(e, "index")} == {0}
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "1+1=2"
    delta = events[-2]
    assert delta.delta.stop_reason == "end_turn" and delta.delta.stop_sequence is None
    assert delta.usage.output_tokens > 0 and delta.usage.input_tokens == start.usage.input_tokens


def test_ping_follows_the_first_block_start(server):
    with http(server) as client:
        response = client.post(
            "/v1/messages",
            json={
                "model": "glm-5",
                "max_tokens": 100,
                "stream": True,
                "messages": [{"role": "user", "content": "Calculate 1+1"}],
            },
        )
    names = [name for name, _ in sse_events(response.text)]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names.count("ping") == 1
    assert "\r" not in response.text and response.text.endswith(
        "data: " + json.dumps({"type": "message_stop"}, separators=(",", ":")) + "\n\n"
    )


@pytest.mark.parametrize(
    "prompt, extra",
    [
        ("Calculate 1+1", {}),
        ("Why does idempotency matter?", {}),
        ("What is the weather like in Beijing today?", {"tools": [WEATHER_TOOL]}),
        ("tell me something", {"tools": [WEATHER_TOOL], "tool_choice": {"type": "any"}}),
    ],
)
def test_stream_rebuilds_the_same_message(server, prompt, extra):
    assert_stream_matches(
        server, model="glm-5", max_tokens=2048, messages=[{"role": "user", "content": prompt}], **extra
    )


def test_stream_with_thinking_text_and_tool_use(upstream):
    message = assert_stream_matches(
        upstream,
        model="claude-emulated",
        max_tokens=2048,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "think then call"}],
    )
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.stop_reason == "tool_use"
    events = stream_events(
        upstream,
        {"model": "claude-emulated", "max_tokens": 2048, "messages": [{"role": "user", "content": "think then call"}]},
    )
    deltas = [(e.index, e.delta.type) for e in events if e.type == "content_block_delta"]
    assert deltas[0] == (0, "thinking_delta")
    thinking = [kind for index, kind in deltas if index == 0]
    assert thinking[-1] == "signature_delta" and set(thinking[:-1]) == {"thinking_delta"}
    assert {kind for index, kind in deltas if index == 2} == {"input_json_delta"}
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]


def test_tool_ids_map_back_to_the_scenario_call_ids(upstream):
    """A generated-form id travels as toolu_…, an id the scenario spells out as written; both match `call_id`."""
    tools = [
        {"name": "lookup_order", "input_schema": {"type": "object"}},
        {"name": "lookup_customer", "input_schema": {"type": "object"}},
    ]
    ask = [{"role": "user", "content": "look up order 42"}]
    first, _ = create(upstream, model="glm-5", max_tokens=1024, tools=tools, messages=ask)
    text, order, customer = first.content
    assert text.text == "Let me look that up."
    assert order.id == "toolu_abcdefghijklmnopqrstuvwx" and customer.id == "toolu_01CustomIdFromTheScenario"
    results = [
        {"type": "tool_result", "tool_use_id": order.id, "content": '{"status": "shipped"}'},
        {"type": "tool_result", "tool_use_id": customer.id, "content": '{"name": "Ada"}'},
    ]
    second, _ = create(
        upstream,
        model="glm-5",
        max_tokens=1024,
        tools=tools,
        messages=[*ask, first.to_param(), {"role": "user", "content": results}],
    )
    assert second.content[0].text == "Order 42 has shipped."


def test_generated_tool_use_when_tools_are_required(server):
    message, _ = create(
        server,
        model="glm-5",
        max_tokens=1024,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "no rule matches this"}],
    )
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content][-1] == "tool_use"
    assert set(message.content[-1].input) >= {"city"}


# ── stop reasons ─────────────────────────────────────────────────────────────


def test_stop_sequence_is_reported(upstream):
    body = {
        "model": "glm-5",
        "max_tokens": 100,
        "stop_sequences": ["four", "STOP"],
        "messages": [{"role": "user", "content": "count to five"}],
    }
    message, payload = create(upstream, **body)
    assert message.content[0].text == "one two three "
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "STOP"
    assert payload["stop_sequence"] == "STOP"
    delta = stream_events(upstream, body)[-2]
    assert delta.delta.stop_reason == "stop_sequence" and delta.delta.stop_sequence == "STOP"


def test_stop_sequence_not_in_the_text(upstream):
    message, _ = create(
        upstream,
        model="glm-5",
        max_tokens=100,
        stop_sequences=["never"],
        messages=[{"role": "user", "content": "count to five"}],
    )
    assert message.stop_reason == "end_turn" and message.stop_sequence is None


def test_max_tokens_cuts_text(server):
    message, payload = create(
        server, model="glm-5", max_tokens=3, messages=[{"role": "user", "content": "Hello, please introduce yourself"}]
    )
    assert message.stop_reason == "max_tokens" and payload["usage"]["output_tokens"] == 3
    assert message.content[0].text == "Hello! Nice"


def test_max_tokens_cutting_tool_arguments_leaves_an_empty_input(upstream):
    body = {"model": "glm-5", "max_tokens": 8, "messages": [{"role": "user", "content": "write the file"}]}
    message, _ = create(upstream, **body)
    assert message.stop_reason == "max_tokens"
    assert message.content[-1].type == "tool_use" and message.content[-1].input == {}
    assert_stream_matches(upstream, **body)


def test_refusal(upstream):
    body = {"model": "glm-5", "max_tokens": 100, "messages": [{"role": "user", "content": "refuse me"}]}
    message, payload = create(upstream, **body)
    assert message.stop_reason == "refusal" and message.content[0].text == "I can't help with that."
    assert payload["stop_details"]["type"] == "refusal"
    assert_stream_matches(upstream, **body)


def test_an_empty_answer_has_no_blocks(upstream):
    body = {"model": "glm-5", "max_tokens": 100, "messages": [{"role": "user", "content": "say nothing"}]}
    message = assert_stream_matches(upstream, **body)
    assert message.content == [] and message.stop_reason == "end_turn"
    with http(upstream) as client:
        text = client.post("/v1/messages", json={**body, "stream": True}).text
    assert [name for name, _ in sse_events(text)] == ["message_start", "ping", "message_delta", "message_stop"]


def test_prefill_continues_the_assistant_turn(server):
    message, _ = create(
        server,
        model="glm-5",
        max_tokens=100,
        messages=[
            {"role": "user", "content": "Calculate 1+1"},
            {"role": "assistant", "content": "The answer is"},
        ],
    )
    assert message.content and message.stop_reason == "end_turn"


def test_thinking_on_the_upstream_profile_generates_thinking(upstream):
    message, _ = create(
        upstream,
        model="claude-emulated",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "an unscripted question"}],
    )
    assert message.content[0].type == "thinking" and message.content[0].thinking
    plain, _ = create(
        upstream, model="claude-emulated", max_tokens=4096, messages=[{"role": "user", "content": "an unscripted one"}]
    )
    assert [b.type for b in plain.content] == ["text"]


def test_thinking_blocks_in_the_history_are_accepted(upstream):
    first, _ = create(
        upstream,
        model="claude-emulated",
        max_tokens=4096,
        thinking={"type": "adaptive"},
        messages=[{"role": "user", "content": "think then call"}],
    )
    call = first.content[-1]
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "sunny", "is_error": False}
    second, _ = create(
        upstream,
        model="claude-emulated",
        max_tokens=4096,
        thinking={"type": "adaptive"},
        messages=[
            {"role": "user", "content": "think then call"},
            first.to_param(),
            {"role": "user", "content": [result]},
        ],
    )
    assert second.content[0].type == "thinking"  # the rule answers again: what matters is that it was accepted


# ── count_tokens ─────────────────────────────────────────────────────────────


def test_count_tokens_matches_the_usage(server):
    request = {
        "model": "glm-5",
        "system": "You are a helpful assistant.",
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "What is the weather like in Beijing today?"}],
    }
    counted = sdk(server).messages.count_tokens(**request)
    message, _ = create(server, max_tokens=1024, **request)
    assert counted.input_tokens == message.usage.input_tokens > 0
    with http(server) as client:
        raw = client.post("/v1/messages/count_tokens", json=request)
    assert raw.json() == {"input_tokens": counted.input_tokens}


def test_count_tokens_validates_like_create(server):
    with http(server) as client:
        missing = client.post("/v1/messages/count_tokens", json={"model": "glm-5"})
        unknown = client.post(
            "/v1/messages/count_tokens", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}
        )
        anonymous = client.post(
            "/v1/messages/count_tokens", json={"model": "glm-5", "messages": []}, headers={"x-api-key": ""}
        )
    assert missing.status_code == 400 and missing.json()["error"]["message"] == "messages: Field required"
    assert unknown.status_code == 403 and unknown.json()["error"]["type"] == "permission_error"
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"


def test_async_client_streams_too(server):
    async def run() -> anthropic.types.Message:
        client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
        async with client.messages.stream(
            model="glm-5", max_tokens=100, messages=[{"role": "user", "content": "Calculate 1+1"}]
        ) as stream:
            return await stream.get_final_message()

    message = asyncio.run(run())
    assert message.content[0].text == "1+1=2"
