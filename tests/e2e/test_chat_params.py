"""Request parameters that shape the answer: limits, stop, n, seed, formats, tools, multimodal input."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.helpers.spec import assert_valid, assert_valid_stream, sse_payloads

USER = [{"role": "user", "content": "Tell me something about lighthouses."}]


def post(server, **body):
    with server.http() as http:
        response = http.post("/v1/chat/completions", json={"model": "glm-5", "messages": USER, **body})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert_valid("CreateChatCompletionResponse", payload)
    return payload


def test_max_tokens_truncates_with_finish_reason_length(bare_server):
    full = post(bare_server)
    assert full["choices"][0]["finish_reason"] == "stop"
    assert full["usage"]["completion_tokens"] > 3
    short = post(bare_server, max_tokens=3)
    assert short["choices"][0]["finish_reason"] == "length"
    assert short["usage"]["completion_tokens"] == 3
    assert full["choices"][0]["message"]["content"].startswith(short["choices"][0]["message"]["content"])
    newer = post(bare_server, max_completion_tokens=3)
    assert newer["choices"][0] == short["choices"][0]


def test_stop_cuts_before_the_first_stop_sequence(server):
    body = post(server, messages=[{"role": "user", "content": "Calculate 1+1"}], stop=["=", "+"])
    assert body["choices"][0]["message"]["content"] == "1"
    assert body["choices"][0]["finish_reason"] == "stop"
    single = post(server, messages=[{"role": "user", "content": "Calculate 1+1"}], stop="=")
    assert single["choices"][0]["message"]["content"] == "1+1"


def test_n_choices_each_indexed(bare_server):
    body = post(bare_server, n=3)
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert len({c["message"]["content"] for c in body["choices"]}) == 3


def test_n_choices_stream(bare_server):
    with bare_server.http() as http:
        text = http.post("/v1/chat/completions", json={"model": "glm-5", "messages": USER, "n": 2, "stream": True}).text
    chunks = assert_valid_stream("CreateChatCompletionStreamResponse", sse_payloads(text))
    finals = [c["choices"][0] for c in chunks if c["choices"][0]["finish_reason"]]
    assert sorted(f["index"] for f in finals) == [0, 1]


def test_seed_makes_generated_output_reproducible(bare_server):
    first = post(bare_server, seed=42)["choices"][0]["message"]["content"]
    again = post(bare_server, seed=42)["choices"][0]["message"]["content"]
    other = post(bare_server, seed=43)["choices"][0]["message"]["content"]
    assert first == again != other


def test_response_format_json_object(bare_server):
    body = post(bare_server, response_format={"type": "json_object"})
    assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)


def test_response_format_json_schema_conforms(bare_server):
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0, "maximum": 130},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 1},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["city", "zip"],
                "additionalProperties": False,
            },
        },
        "required": ["name", "age", "tags", "address"],
        "additionalProperties": False,
    }
    body = post(
        bare_server,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}},
    )
    jsonschema.validate(json.loads(body["choices"][0]["message"]["content"]), schema)


def test_multimodal_content_parts_are_accepted(bare_server):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture and this file?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "file", "file": {"filename": "report.pdf", "file_data": "https://example.com/report.pdf"}},
            ],
        }
    ]
    text_only = post(
        bare_server,
        model="glm-5v-turbo",
        messages=[{"role": "user", "content": "What is in this picture and this file?"}],
    )
    body = post(bare_server, model="glm-5v-turbo", messages=messages)
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["prompt_tokens"] > text_only["usage"]["prompt_tokens"]


SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_flights",
        "description": "Search flights between two airports",
        "parameters": {
            "type": "object",
            "properties": {
                "origin": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "destination": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "date": {"type": "string", "format": "date"},
                "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
                "cabin": {"type": "string", "enum": ["economy", "business", "first"]},
            },
            "required": ["origin", "destination", "date", "passengers"],
        },
    },
}
NOTE_TOOL = {
    "type": "function",
    "function": {
        "name": "save_note",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
}


def test_tool_choice_required_without_scenario_conforms_to_schema(bare_server):
    completion = bare_server.openai().chat.completions.create(
        model="glm-5", messages=USER, tools=[SEARCH_TOOL], tool_choice="required"
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    for call in choice.message.tool_calls:
        assert call.function.name == "search_flights"
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, SEARCH_TOOL["function"]["parameters"], format_checker=jsonschema.FormatChecker())


def test_named_tool_choice_calls_that_tool(bare_server):
    completion = bare_server.openai().chat.completions.create(
        model="glm-5",
        messages=USER,
        tools=[SEARCH_TOOL, NOTE_TOOL],
        tool_choice={"type": "function", "function": {"name": "save_note"}},
    )
    (call,) = completion.choices[0].message.tool_calls
    assert call.function.name == "save_note"
    assert isinstance(json.loads(call.function.arguments)["text"], str)


def test_tool_choice_none_answers_with_text(server):
    completion = server.openai().chat.completions.create(
        model="glm-5",
        messages=[{"role": "user", "content": "What's the weather like in Beijing today?"}],
        tools=[SEARCH_TOOL],
        tool_choice="none",
    )
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"


def test_enable_thinking_gives_reasoning_on_a_reasoning_model(bare_server):
    body = post(bare_server, enable_thinking=True)
    assert body["choices"][0]["message"]["reasoning_content"]
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    plain = post(bare_server)
    assert "reasoning_content" not in plain["choices"][0]["message"]


@pytest.mark.parametrize("model", ["alibaba/deepseek-v3.2", "deepseek-v3.2"])
def test_provider_model_ids_resolve(bare_server, model):
    assert post(bare_server, model=model)["model"] == "deepseek-v3.2"


def test_unknown_fields_are_ignored(bare_server):
    assert post(bare_server, enable_search=True, some_future_field={"x": 1})["choices"]
