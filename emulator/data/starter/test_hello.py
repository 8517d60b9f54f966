"""Starter tests, written by `tokenhub-emulator init`: run them with `python -m pytest`.

The `tokenhub_emulator` fixture (installed with tokenhub-emulator) starts the emulator once per session and
gives each test its own scenarios, journal and clients. A request that no rule matches fails the test, with
the nearest rules and why each missed; mark a test `@pytest.mark.tokenhub_allow_unmatched` to allow it.
"""

import json

import pytest

SCENARIO = "scenarios/hello.yaml"  # relative to this file

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.tokenhub_scenario(SCENARIO)
def test_greeting(tokenhub_emulator):
    client = tokenhub_emulator.openai()
    reply = client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "hello there"}])
    assert reply.choices[0].message.content == "Hello! I am the tokenhub emulator."
    assert tokenhub_emulator.calls("greet") == 1


@pytest.mark.tokenhub_scenario(SCENARIO)
def test_tool_call_round_trip(tokenhub_emulator):
    client = tokenhub_emulator.openai()
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model="glm-5", messages=messages, tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"weather": "sunny"})},
    ]
    second = client.chat.completions.create(model="glm-5", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "It is sunny in Paris."


@pytest.mark.tokenhub_scenario(SCENARIO)
def test_the_client_retries_a_rate_limit(tokenhub_emulator):
    client = tokenhub_emulator.openai(max_retries=2)
    reply = client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "flaky: go"}])
    assert reply.choices[0].message.content == "Recovered."
    assert [request.status for request in tokenhub_emulator.requests] == [429, 200]
