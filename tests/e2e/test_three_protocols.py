"""CloudBase's documented two-request tool flow, from one scenario file, through all three protocols and the real SDKs,
on the CloudBase profile's paths (streaming and not)."""

from __future__ import annotations

import json

import anthropic
import pytest

from tests.helpers.servers import SCENARIOS, start_server, stop_server

SCENARIO = SCENARIOS / "08-three-protocols-tool-flow.yaml"
RESULT = {"temperature": "25℃", "weather": "sunny"}
ANSWER = "It is sunny in Beijing today, 25℃."
CHAT_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Obtain the weather forecast for a specified city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "City name"}},
            "required": ["location"],
        },
    },
}
RESPONSES_TOOL = {"type": "function", **CHAT_TOOL["function"]}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Obtain the real-time weather for a specified city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def cloudbase():
    running = start_server("--profile", "cloudbase", "--scenario", str(SCENARIO))
    yield running
    stop_server(running)


def openai_client(server):
    import openai

    return openai.OpenAI(api_key="sk-cloudbase", base_url=server.url + "/v1/ai/cloudbase", max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_completions_with_a_tool_message(cloudbase, stream):
    client = openai_client(cloudbase)
    question = {"role": "user", "content": "Please check the weather in Beijing for me today."}
    if stream:
        with client.chat.completions.stream(model="hy3-preview", messages=[question], tools=[CHAT_TOOL]) as events:
            first = events.get_final_completion()
    else:
        first = client.chat.completions.create(model="hy3-preview", messages=[question], tools=[CHAT_TOOL])
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_current_weather", {"location": "Beijing"})
    follow_up = [
        question,
        {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps(RESULT, ensure_ascii=False)},
    ]
    if stream:
        chunks = client.chat.completions.create(model="hy3-preview", messages=follow_up, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    else:
        text = client.chat.completions.create(model="hy3-preview", messages=follow_up).choices[0].message.content
    assert text == ANSWER


@pytest.mark.parametrize("stream", [False, True])
def test_responses_with_previous_response_id(cloudbase, stream):
    client = openai_client(cloudbase)
    ask = {"model": "hy3-preview", "input": "What is the weather like in Beijing today?", "tools": [RESPONSES_TOOL]}
    if stream:
        with client.responses.stream(**ask) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(**ask)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_current_weather", {"location": "Beijing"})
    answer = {
        "model": "hy3-preview",
        "previous_response_id": first.id,
        "input": [
            {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps(RESULT, ensure_ascii=False)}
        ],
    }
    if stream:
        with client.responses.stream(**answer) as events:
            second = events.get_final_response()
    else:
        second = client.responses.create(**answer)
    assert second.output_text == ANSWER


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages_with_tool_result(cloudbase, stream):
    client = anthropic.Anthropic(api_key="sk-cloudbase", base_url=cloudbase.url + "/v1/ai/cloudbase", max_retries=0)
    question = {"role": "user", "content": "What is the weather like in Beijing today?"}
    ask = {"model": "hy3-preview", "max_tokens": 1024, "tools": [ANTHROPIC_TOOL], "messages": [question]}
    if stream:
        with client.messages.stream(**ask) as events:
            first = events.get_final_message()
    else:
        first = client.messages.create(**ask)
    assert first.stop_reason == "tool_use"
    (use,) = [block for block in first.content if block.type == "tool_use"]
    assert (use.name, use.input) == ("get_weather", {"city": "Beijing"})
    result = {"type": "tool_result", "tool_use_id": use.id, "content": json.dumps(RESULT, ensure_ascii=False)}
    messages = [question, {"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}]
    if stream:
        with client.messages.stream(**{**ask, "messages": messages}) as events:
            second = events.get_final_message()
    else:
        second = client.messages.create(**{**ask, "messages": messages})
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == ANSWER
