"""The Responses API through the real openai SDK against the real server: shapes, scenarios, CloudBase's documented tool flow."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from tests.helpers.responses import WEATHER_RESULT, WEATHER_TOOL
from tests.helpers.servers import start_server, stop_server
from tests.helpers.spec import assert_valid


def raw_create(client: openai.OpenAI, **params):
    """The Response as the SDK parses it, plus the exact JSON the server sent (validated against the spec)."""
    raw = client.responses.with_raw_response.create(**params)
    body = json.loads(raw.text)
    assert_valid("Response", body)
    assert raw.headers["x-request-id"].startswith("req_")
    return raw.parse(), body


def test_basic_text_answer(server):
    response, body = raw_create(
        server.openai(), model="deepseek-v3.2", input="Hello, please introduce yourself", user="u-1"
    )
    assert body["object"] == "response" and body["id"].startswith("resp_")
    assert body["status"] == "completed" and body["completed_at"] >= body["created_at"]
    assert body["model"] == "deepseek-v3.2"
    assert response.output_text.startswith("Hello! Nice to meet you!")
    message = body["output"][0]
    assert message["type"] == "message" and message["role"] == "assistant" and message["status"] == "completed"
    assert message["id"].startswith("msg_")
    assert message["content"] == [
        {"type": "output_text", "text": response.output_text, "annotations": [], "logprobs": []}
    ]
    usage = body["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    # what the request left out, as the API fills it in
    assert body["tools"] == [] and body["tool_choice"] == "auto" and body["parallel_tool_calls"] is True
    assert body["temperature"] == 1 and body["top_p"] == 1 and body["truncation"] == "disabled"
    assert body["text"]["format"] == {"type": "text"} and body["metadata"] == {} and body["user"] == "u-1"
    assert body["previous_response_id"] is None and body["instructions"] is None and body["store"] is True


def test_request_fields_are_repeated(server):
    _, body = raw_create(
        server.openai(),
        model="glm-5",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Calculate 1+1"}]}],
        instructions="Answer briefly.",
        temperature=0.2,
        top_p=0.5,
        max_output_tokens=500,
        metadata={"run": "42"},
        tools=[WEATHER_TOOL, {"type": "web_search"}],
        tool_choice="none",
        parallel_tool_calls=False,
    )
    assert body["instructions"] == "Answer briefly."
    assert (body["temperature"], body["top_p"], body["max_output_tokens"]) == (0.2, 0.5, 500)
    assert body["metadata"] == {"run": "42"} and body["tool_choice"] == "none"
    assert body["parallel_tool_calls"] is False
    assert body["tools"][0] == {**WEATHER_TOOL, "strict": True} and body["tools"][1] == {"type": "web_search"}
    assert body["output"][0]["content"][0]["text"] == "1+1=2"


def test_instructions_are_the_system_prompt(server):
    response, _ = raw_create(
        server.openai(),
        model="glm-5",
        instructions="You are a professional English translation assistant.",
        input="The weather is very nice today.",
    )
    assert response.output_text == "今天天气非常好。"


def test_deep_thinking_gives_a_reasoning_item_first(server):
    response, body = raw_create(
        server.openai(),
        model="deepseek-v3.2",
        input="Why does idempotency matter in distributed systems?",
        reasoning={"effort": "high", "summary": "auto"},
    )
    reasoning, message = body["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["summary"][0]["type"] == "summary_text"
    assert reasoning["summary"][0]["text"].startswith("The user wants to know why idempotency matters")
    assert message["type"] == "message"
    assert response.output_text.startswith("### Why idempotency matters")
    assert body["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}


def test_generated_reasoning_only_when_asked(bare_server):
    client = bare_server.openai()
    _, plain = raw_create(client, model="glm-5", input="Tell me about tea.")
    _, thinking = raw_create(client, model="glm-5", input="Tell me about tea.", reasoning={"effort": "medium"})
    _, minimal = raw_create(client, model="glm-5", input="Tell me about tea.", reasoning={"effort": "minimal"})
    assert [item["type"] for item in plain["output"]] == ["message"]
    assert [item["type"] for item in thinking["output"]] == ["reasoning", "message"]
    assert [item["type"] for item in minimal["output"]] == ["message"]


def test_encrypted_reasoning_comes_back_as_context(bare_server):
    """store: false clients (Codex) keep reasoning as `encrypted_content` and send it back as an input item."""
    client = bare_server.openai()
    first, body = raw_create(
        client,
        model="glm-5",
        input="Plan a trip.",
        reasoning={"effort": "high"},
        include=["reasoning.encrypted_content"],
        store=False,
    )
    reasoning = body["output"][0]
    assert reasoning["encrypted_content"]
    replay = [
        {"role": "user", "content": "Plan a trip."},
        {
            "type": "reasoning",
            "id": reasoning["id"],
            "summary": [],
            "encrypted_content": reasoning["encrypted_content"],
        },
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "Shorter, please."},
    ]
    second, _ = raw_create(client, model="glm-5", input=replay, store=False)
    assert second.output_text


def test_cloudbase_tool_round_trip(server):
    """First request: get_weather is called. Second: previous_response_id plus the function's output."""
    client = server.openai()
    first, body = raw_create(
        client,
        model="hy3-preview",
        input="What is the weather like in Beijing today?",
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    (call,) = body["output"]
    assert call["type"] == "function_call" and call["status"] == "completed"
    assert call["id"].startswith("fc_") and call["call_id"].startswith("call_")
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Beijing"}
    assert first.output_text == ""

    second, body = raw_create(
        client,
        model="hy3-preview",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call["call_id"], "output": WEATHER_RESULT}],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "It is sunny in Beijing today, 26°C with 40% humidity."
    assert body["previous_response_id"] == first.id


def test_tool_round_trip_with_the_context_sent_by_hand(server):
    """Without previous_response_id: the client sends the call and its output itself."""
    client = server.openai()
    first, _ = raw_create(client, model="glm-5", input="What is the weather in Beijing?", tools=[WEATHER_TOOL])
    call = first.output[0]
    second, _ = raw_create(
        client,
        model="glm-5",
        input=[
            {"role": "user", "content": "What is the weather in Beijing?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": WEATHER_RESULT},
        ],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text.startswith("It is sunny in Beijing today, 26°C")


def test_named_tool_choice_forces_the_call(bare_server):
    _, body = raw_create(
        bare_server.openai(),
        model="glm-5",
        input="Hello there",
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    assert [item["type"] for item in body["output"]] == ["function_call"]
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert isinstance(json.loads(body["output"][0]["arguments"])["city"], str)


def test_multi_turn_with_previous_response_id(server):
    client = server.openai()
    first, _ = raw_create(client, model="deepseek-v3.2", input="Please introduce quantum computing")
    second, _ = raw_create(
        client,
        model="deepseek-v3.2",
        previous_response_id=first.id,
        input="What is the difference between it and traditional computing?",
    )
    assert first.output_text.startswith("Quantum computing is")
    assert second.output_text.startswith("Classical computers process bits")


class Weather(BaseModel):
    city: str
    celsius: int
    sunny: bool


def test_json_schema_format_conforms(bare_server):
    schema = Weather.model_json_schema() | {"additionalProperties": False}
    _, body = raw_create(
        bare_server.openai(),
        model="glm-5",
        input="Weather in Paris as JSON",
        text={"format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}},
    )
    text = body["output"][0]["content"][0]["text"]
    jsonschema.validate(json.loads(text), schema)
    assert body["text"]["format"] == {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}


def test_sdk_parse_with_text_format(bare_server):
    parsed = bare_server.openai().responses.parse(model="glm-5", input="Weather in Paris", text_format=Weather)
    assert isinstance(parsed.output_parsed, Weather)


def test_json_object_format(bare_server):
    response, _ = raw_create(
        bare_server.openai(), model="glm-5", input="Reply in json", text={"format": {"type": "json_object"}}
    )
    assert isinstance(json.loads(response.output_text), dict)


def test_max_output_tokens_cuts_the_answer(server):
    response, body = raw_create(
        server.openai(), model="deepseek-v3.2", input="Hello, please introduce yourself", max_output_tokens=16
    )
    assert body["status"] == "incomplete" and body["completed_at"] is None
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][-1]["status"] == "incomplete"
    assert body["usage"]["output_tokens"] == 16
    assert "Hello! Nice to meet you!".startswith(response.output_text[:10])


def test_max_output_tokens_spent_on_reasoning(server):
    _, body = raw_create(
        server.openai(),
        model="deepseek-v3.2",
        input="Why does idempotency matter?",
        reasoning={"effort": "high"},
        max_output_tokens=16,
    )
    assert body["status"] == "incomplete"
    assert [item["type"] for item in body["output"]] == ["reasoning"]


def test_scripted_failures_in_the_openai_envelope(server):
    client = server.openai(default_headers={"x-emulator-test-id": "responses-flaky"})
    with pytest.raises(openai.RateLimitError) as limited:
        client.responses.create(model="glm-5", input="flaky: once more")
    assert limited.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="glm-5", input="flaky: once more")
    assert client.responses.create(model="glm-5", input="flaky: once more").output_text.startswith("Recovered")


@pytest.mark.anyio
async def test_async_client(server):
    client = server.async_openai()
    response = await client.responses.create(model="glm-5", input="Calculate 1+1")
    assert response.output_text == "1+1=2"
    fetched = await client.responses.retrieve(response.id)
    assert fetched.output_text == "1+1=2"
    async with client.responses.stream(model="glm-5", input="Calculate 1+1") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "1+1=2"


def test_a_rule_can_name_the_endpoint(tmp_path):
    scenario = tmp_path / "endpoints.yaml"
    scenario.write_text(
        "rules:\n"
        "  - when: {endpoint: responses}\n"
        "    reply: {content: via responses}\n"
        "  - reply: {content: via another endpoint}\n",
        encoding="utf-8",
    )
    running = start_server("--scenario", str(scenario))
    try:
        client = running.openai()
        assert client.responses.create(model="glm-5", input="hi").output_text == "via responses"
        chat = client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "hi"}])
        assert chat.choices[0].message.content == "via another endpoint"
    finally:
        stop_server(running)
