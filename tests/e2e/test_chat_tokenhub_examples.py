"""TokenHub's documented examples, each through the real openai SDK against the real server, validated against the spec."""

from __future__ import annotations

import json

import openai
import pytest

from tests.helpers.spec import assert_valid, assert_valid_stream, sse_payloads


def raw_create(client: openai.OpenAI, **params):
    """The completion as the SDK parses it, plus the exact JSON the server sent."""
    raw = client.chat.completions.with_raw_response.create(**params)
    body = json.loads(raw.text)
    assert_valid("CreateChatCompletionResponse", body)
    assert raw.headers["x-request-id"].startswith("req_")
    return raw.parse(), body


def test_example_1_basic_conversation(server):
    completion, body = raw_create(
        server.openai(),
        model="deepseek-v3.2",
        messages=[{"role": "user", "content": "Hello, please introduce yourself"}],
    )
    assert body["object"] == "chat.completion"
    assert body["model"] == "deepseek-v3.2"
    assert body["id"].startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content.startswith("Hello! Nice to meet you!")
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_example_2_streaming_wire_format(server):
    request = {
        "model": "glm-5",
        "messages": [
            {"role": "system", "content": "You are a helpful AI assistant."},
            {"role": "user", "content": "Calculate 1+1"},
        ],
        "stream": True,
    }
    with server.http() as http, http.stream("POST", "/v1/chat/completions", json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    # every event is exactly `data: <json>` followed by a blank line, and the stream ends with [DONE]
    events = [e for e in text.split("\n\n") if e and not e.startswith(":")]
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    assert text.endswith("data: [DONE]\n\n")
    chunks = assert_valid_stream("CreateChatCompletionStreamResponse", sse_payloads(text))
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    assert len({c["id"] for c in chunks}) == 1 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    text_out = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text_out == "1+1=2"
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_example_2_streaming_through_sdk(server):
    stream = server.openai().chat.completions.create(
        model="glm-5",
        messages=[{"role": "user", "content": "Calculate 1+1"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "1+1=2"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_example_3_system_prompt(server):
    completion, _ = raw_create(
        server.openai(),
        model="glm-5",
        messages=[
            {
                "role": "system",
                "content": "You are a professional English translation assistant. Translate user input from Chinese to "
                "English and from English to Chinese. Return only the translation result without any explanation.",
            },
            {"role": "user", "content": "The weather is very nice today."},
        ],
    )
    assert completion.choices[0].message.content == "今天天气非常好。"


def test_example_4_multi_turn(server):
    client = server.openai()
    first, _ = raw_create(
        client, model="deepseek-v3.2", messages=[{"role": "user", "content": "Please introduce quantum computing"}]
    )
    history = [
        {"role": "user", "content": "Please introduce quantum computing"},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "What is the difference between it and traditional computing?"},
    ]
    second, _ = raw_create(client, model="deepseek-v3.2", messages=history)
    assert first.choices[0].message.content.startswith("Quantum computing is")
    assert second.choices[0].message.content.startswith("Classical computers process bits")


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Obtains the weather information for a specified city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name, e.g. Beijing"}},
            "required": ["city"],
        },
    },
}


def test_example_5_function_calling_round_trip(server):
    client = server.openai()
    question = {"role": "user", "content": "What's the weather like in Beijing today?"}
    call_turn, body = raw_create(client, model="glm-5", messages=[question], tools=[WEATHER_TOOL], tool_choice="auto")
    choice = call_turn.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert body["choices"][0]["message"]["content"] is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Beijing"}
    assert call.id.startswith("call_")

    result = {
        "role": "tool",
        "tool_call_id": call.id,
        "content": '{"temperature": 22, "weather": "sunny", "humidity": 45}',
    }
    answer, _ = raw_create(
        client,
        model="glm-5",
        messages=[question, choice.message.model_dump(exclude_none=True), result],
        tools=[WEATHER_TOOL],
    )
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == "It is sunny in Beijing today, 22°C with 45% humidity."


def test_example_5_streamed_tool_call_assembles_in_sdk(server):
    with server.openai().chat.completions.stream(
        model="glm-5",
        messages=[{"role": "user", "content": "What's the weather like in Beijing today?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Beijing"}


def test_example_6_deep_thinking(server):
    completion, body = raw_create(
        server.openai(),
        model="glm-5",
        reasoning_effort="high",
        temperature=0.2,
        messages=[
            {
                "role": "system",
                "content": "You are a rigorous assistant; first reason thoroughly, then provide clear conclusions.",
            },
            {
                "role": "user",
                "content": "Please analyze why idempotency is important in distributed systems and provide an example "
                "in a payment scenario.",
            },
        ],
    )
    message = body["choices"][0]["message"]
    assert message["reasoning_content"].startswith("The user wants to know why idempotency")
    assert message["content"].startswith("### Why idempotency matters")
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    assert completion.usage.completion_tokens > completion.usage.completion_tokens_details.reasoning_tokens


def test_example_6_reasoning_streams_before_content(server):
    request = {
        "model": "glm-5",
        "stream": True,
        "messages": [{"role": "user", "content": "Why does idempotency matter?"}],
    }
    with server.http() as http:
        text = http.post("/v1/chat/completions", json=request).text
    chunks = assert_valid_stream("CreateChatCompletionStreamResponse", sse_payloads(text))
    kinds = [next(iter(k for k in c["choices"][0]["delta"] if k != "role"), None) for c in chunks]
    first_content = kinds.index("content", 1)
    assert "reasoning_content" in kinds[:first_content]
    assert "reasoning_content" not in kinds[first_content:]


def test_example_7_python_sdk(server):
    response = server.openai().chat.completions.create(
        model="glm-5",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Please explain what a large language model is in one sentence"},
        ],
    )
    assert response.choices[0].message.content.startswith("A large language model is")


@pytest.mark.anyio
async def test_async_client_plain_and_streaming(server):
    client = server.async_openai()
    completion = await client.chat.completions.create(
        model="deepseek-v3.2", messages=[{"role": "user", "content": "Hello, please introduce yourself"}]
    )
    assert completion.choices[0].message.content.startswith("Hello!")
    stream = await client.chat.completions.create(
        model="glm-5", messages=[{"role": "user", "content": "Calculate 1+1"}], stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
    assert "".join(pieces) == "1+1=2"
    await client.close()
