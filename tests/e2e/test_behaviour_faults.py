"""Behaviour faults: the model misbehaves on purpose. For each kind, what the real SDKs see in chat, Responses
and Messages, streamed and not; the wire documents against the OpenAI spec; seeded corruption; the
attachment points; and the resilience report judging what a client did with the bad answer."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from emulator.faults.report import render
from emulator.testing import API_KEY
from tests.helpers.spec import assert_valid, assert_valid_stream, sse_payloads

pytestmark = pytest.mark.sdk

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
CHAT_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
RESPONSES_TOOLS = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA, "strict": False}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "summary": {"type": "string"}},
    "required": ["city", "summary"],
    "additionalProperties": False,
}
ASK = "What is the weather in Paris this week?"
EARLIER = '{"city": "Paris", "days": 3}'  # the call the conversation already holds (repeat_tool_call)
PROTOCOLS = ("chat", "responses", "messages")
KINDS = (
    "invalid_tool_args",
    "unknown_tool",
    "wrong_format",
    "refusal",
    "content_filter",
    "truncated",
    "repeat_tool_call",
    "empty_reply",
    "reasoning_only",
)


def _history(protocol: str) -> list[dict[str, Any]]:
    """A conversation that already made one get_weather call and got its result."""
    if protocol == "chat":
        call = {"id": "call_prev", "type": "function", "function": {"name": "get_weather", "arguments": EARLIER}}
        return [
            {"role": "user", "content": ASK},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_prev", "content": "Sunny, 21 C"},
        ]
    if protocol == "responses":
        return [
            {"role": "user", "content": ASK},
            {"type": "function_call", "call_id": "call_prev", "name": "get_weather", "arguments": EARLIER},
            {"type": "function_call_output", "call_id": "call_prev", "output": "Sunny, 21 C"},
        ]
    return [
        {"role": "user", "content": ASK},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_prev", "name": "get_weather", "input": json.loads(EARLIER)}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_prev", "content": "Sunny"}]},
    ]


def _request(protocol: str, kind: str) -> dict[str, Any]:
    """The request each kind needs: tools offered, JSON asked, a conversation with an earlier call."""
    history = kind == "repeat_tool_call"
    if protocol == "chat":
        body: dict[str, Any] = {"model": "glm-5", "tools": CHAT_TOOLS, "max_tokens": 200}
        body["messages"] = _history(protocol) if history else [{"role": "user", "content": ASK}]
        if kind == "wrong_format":
            body = {
                "model": "glm-5",
                "messages": [{"role": "user", "content": ASK}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA}},
            }
        return body
    if protocol == "responses":
        body = {"model": "glm-5", "tools": RESPONSES_TOOLS, "input": _history(protocol) if history else ASK}
        if kind == "wrong_format":
            body = {
                "model": "glm-5",
                "input": ASK,
                "text": {"format": {"type": "json_schema", "name": "answer", "schema": ANSWER_SCHEMA}},
            }
        return body
    body = {"model": "glm-5", "max_tokens": 200, "tools": ANTHROPIC_TOOLS}
    body["messages"] = _history(protocol) if history else [{"role": "user", "content": ASK}]
    if kind == "wrong_format":
        body = {
            "model": "glm-5",
            "max_tokens": 200,
            "messages": [{"role": "user", "content": ASK}],
            "extra_body": {"output_config": {"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}}},
        }
    return body


def _seen(emulator: Any, protocol: str, kind: str, stream: bool, fault: str | None = None) -> dict[str, Any]:
    """What the SDK hands the application, reduced to: text, refusal, calls, how it ended, reasoning."""
    body = _request(protocol, kind)
    headers = {"x-emulator-fault": fault or kind}
    if protocol == "chat":
        client = emulator.openai()
        raised = None
        if stream:
            with client.chat.completions.stream(**body, extra_headers=headers) as events:
                for _ in events:
                    pass
                try:
                    completion: Any = events.get_final_completion()
                except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as error:
                    raised = type(error).__name__  # the helper will not parse what was cut or filtered
                    completion = events.current_completion_snapshot
        else:
            completion = client.chat.completions.create(**body, extra_headers=headers)
        message, choice = completion.choices[0].message, completion.choices[0]
        return {
            "raised": raised,
            "text": message.content,
            "refusal": message.refusal,
            "calls": [(c.function.name, c.function.arguments) for c in message.tool_calls or ()],
            "end": choice.finish_reason,
            "reasoning": (message.model_extra or {}).get("reasoning_content"),
        }
    if protocol == "responses":
        client = emulator.openai()
        raised = None
        if stream:
            with client.responses.stream(**body, extra_headers=headers) as events:
                ended = [e.response for e in events if e.type in ("response.completed", "response.incomplete")]
                try:
                    events.get_final_response()
                except RuntimeError as error:  # the SDK's helper wants `response.completed`
                    raised = str(error)
            response = ended[-1]
        else:
            response = client.responses.create(**body, extra_headers=headers)
        texts, refusals, calls, reasoning = [], [], [], []
        for item in response.output:
            if item.type == "message":
                for part in item.content:
                    (refusals if part.type == "refusal" else texts).append(
                        part.refusal if part.type == "refusal" else part.text
                    )
            elif item.type == "function_call":
                calls.append((item.name, item.arguments))
            elif item.type == "reasoning":
                reasoning.append(" ".join(s.text for s in item.summary) or "(reasoning)")
        reason = response.incomplete_details.reason if response.incomplete_details else None
        return {
            "text": "".join(texts) if texts else None,
            "refusal": "".join(refusals) or None,
            "calls": calls,
            "end": f"{response.status}:{reason}" if reason else response.status,
            "reasoning": " ".join(reasoning) or None,
            "raised": raised,
        }
    client = emulator.anthropic()
    if stream:
        with client.messages.stream(**body, extra_headers=headers) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**body, extra_headers=headers)
    text = "".join(b.text for b in message.content if b.type == "text")
    return {
        "text": text if any(b.type == "text" for b in message.content) else None,
        "refusal": text if message.stop_reason == "refusal" else None,
        "calls": [(b.name, json.dumps(b.input)) for b in message.content if b.type == "tool_use"],
        "end": message.stop_reason,
        "reasoning": "".join(b.thinking for b in message.content if b.type == "thinking") or None,
    }


def _breaks_schema(arguments: str) -> bool:
    try:
        jsonschema.validate(json.loads(arguments), WEATHER_SCHEMA)
    except (ValueError, jsonschema.ValidationError):
        return True
    return False


ENDS = {  # how each protocol says the turn ended, per kind
    "tool": {"chat": "tool_calls", "responses": "completed", "messages": "tool_use"},
    "stop": {"chat": "stop", "responses": "completed", "messages": "end_turn"},
    "content_filter": {"chat": "content_filter", "responses": "incomplete:content_filter", "messages": "refusal"},
    "length": {"chat": "length", "responses": "incomplete:max_output_tokens", "messages": "max_tokens"},
    "refusal": {"chat": "stop", "responses": "completed", "messages": "refusal"},
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", KINDS)
def test_what_each_sdk_sees(tokenhub_emulator: Any, kind: str, protocol: str, stream: bool) -> None:
    seen = _seen(tokenhub_emulator, protocol, kind, stream)
    if kind == "invalid_tool_args":
        [(name, arguments)] = seen["calls"]
        assert name == "get_weather" and _breaks_schema(arguments), seen
        assert seen["end"] == ENDS["tool"][protocol]
    elif kind == "unknown_tool":
        [(name, _)] = seen["calls"]
        assert name != "get_weather", seen
        assert seen["end"] == ENDS["tool"][protocol]
    elif kind == "repeat_tool_call":
        [(name, arguments)] = seen["calls"]
        assert (name, json.loads(arguments)) == ("get_weather", json.loads(EARLIER))
    elif kind == "wrong_format":
        text = seen["text"]
        try:
            jsonschema.validate(json.loads(text), ANSWER_SCHEMA)
            valid = True
        except (ValueError, jsonschema.ValidationError):
            valid = False
        assert text and not valid, seen
    elif kind == "refusal":
        assert seen["refusal"] == "I'm sorry, but I can't help with that request.", seen
        assert seen["calls"] == [] and seen["end"] == ENDS["refusal"][protocol]
        if protocol != "messages":
            assert not seen["text"]  # the refusal field, not the content
    elif kind == "content_filter":
        assert seen["end"] == ENDS["content_filter"][protocol] and seen["calls"] == [], seen
    elif kind == "truncated":
        assert seen["end"] == ENDS["length"][protocol], seen
    elif kind == "empty_reply":
        assert not seen["text"] and seen["calls"] == [] and not seen["refusal"], seen
        assert seen["end"] == ENDS["stop"][protocol]
    elif kind == "reasoning_only":
        assert seen["reasoning"] and not seen["text"] and seen["calls"] == [], seen
    incomplete = str(seen["end"]).startswith("incomplete")
    if protocol == "responses" and stream:  # openai's stream helper: no final response for an incomplete one
        assert (seen["raised"] is not None) == incomplete, seen
    if protocol == "chat" and stream:  # nor a final completion for one cut at `length` or filtered
        expected = {"length": "LengthFinishReasonError", "content_filter": "ContentFilterFinishReasonError"}
        assert seen["raised"] == expected.get(seen["end"]), seen
    entry = tokenhub_emulator.last_request
    assert entry is not None and entry.data["fault"].split()[0] == kind


@pytest.mark.parametrize("kind", KINDS)
def test_the_wire_documents_follow_the_openai_spec(tokenhub_emulator: Any, kind: str) -> None:
    headers = {"authorization": f"Bearer {API_KEY}", "x-emulator-fault": kind, **tokenhub_emulator.headers}
    with httpx.Client(base_url=tokenhub_emulator.openai_base_url, headers=headers) as http:
        for stream in (False, True):
            chat = http.post("/chat/completions", json={**_request("chat", kind), "stream": stream})
            assert chat.status_code == 200, chat.text
            if stream:
                assert_valid_stream("CreateChatCompletionStreamResponse", sse_payloads(chat.text))
            else:
                assert_valid("CreateChatCompletionResponse", chat.json())
            responses = http.post("/responses", json={**_request("responses", kind), "stream": stream})
            assert responses.status_code == 200, responses.text
            if stream:
                events = [json.loads(p) for p in sse_payloads(responses.text)]
                assert_valid("Response", events[-1]["response"])
            else:
                assert_valid("Response", responses.json())


@pytest.mark.parametrize("way", ["wrong_type", "missing_required", "extra_key", "not_json"])
def test_each_way_breaks_the_offered_schema(tokenhub_emulator: Any, way: str) -> None:
    seen = _seen(tokenhub_emulator, "chat", "invalid_tool_args", False, f"invalid_tool_args={way}")
    [(_, arguments)] = seen["calls"]
    assert _breaks_schema(arguments)
    if way == "not_json":
        with pytest.raises(ValueError):
            json.loads(arguments)
    else:
        errors = list(jsonschema.Draft202012Validator(WEATHER_SCHEMA).iter_errors(json.loads(arguments)))
        validator = {"wrong_type": "type", "missing_required": "required", "extra_key": "additionalProperties"}
        assert [e.validator for e in errors] == [validator[way]]
    assert tokenhub_emulator.last_request.data["fault"] == f"invalid_tool_args {way}"


@pytest.mark.parametrize("protocol", ["chat", "responses"])
def test_arguments_that_are_not_json_reach_the_application_as_sent(tokenhub_emulator: Any, protocol: str) -> None:
    """The SDKs' stream helpers hand the broken text over; parsing it is the application's business."""
    json_seen = _seen(tokenhub_emulator, protocol, "invalid_tool_args", False, "invalid_tool_args=not_json")
    streamed = _seen(tokenhub_emulator, protocol, "invalid_tool_args", True, "invalid_tool_args=not_json")
    assert json_seen["calls"] == streamed["calls"]  # the same request body: the same corruption, either way
    [(_, arguments)] = streamed["calls"]
    with pytest.raises(ValueError):
        json.loads(arguments)


def test_a_bad_way_in_a_scenario_is_a_positioned_error(tokenhub_emulator: Any) -> None:
    from emulator.testing import EmulatorError

    with pytest.raises(
        EmulatorError, match=r":3:\d+: 'invalid_tool_args' must be true or one of .*did you mean 'not_json'"
    ):
        tokenhub_emulator.load("rules:\n  - reply: {content: hi}\n    fault: {invalid_tool_args: notjson}\n")


def test_anthropic_input_is_always_an_object(tokenhub_emulator: Any) -> None:
    """Anthropic sends `input` as an object: not_json cannot happen there, another way breaks the schema."""
    seen = _seen(tokenhub_emulator, "messages", "invalid_tool_args", False, "invalid_tool_args=not_json")
    [(_, arguments)] = seen["calls"]
    assert isinstance(json.loads(arguments), dict) and _breaks_schema(arguments)
    assert tokenhub_emulator.last_request.data["fault"] != "invalid_tool_args not_json"


def test_same_seed_same_corruption(tokenhub_emulator: Any) -> None:
    first = [_seen(tokenhub_emulator, "chat", "invalid_tool_args", False)["calls"] for _ in range(2)]
    assert first[0] == first[1]  # the same request under the same seed: the same bad arguments, the same id
    other = dict(_request("chat", "invalid_tool_args"), messages=[{"role": "user", "content": "Weather in Oslo?"}])
    changed = tokenhub_emulator.openai().chat.completions.create(
        **other, extra_headers={"x-emulator-fault": "invalid_tool_args"}
    )
    assert changed.choices[0].message.tool_calls[0].id != first[0][0][0]


def test_kinds_that_need_something_are_not_counted_without_it(tokenhub_emulator: Any) -> None:
    """invalid_tool_args needs tools; wrong_format a JSON format; repeat_tool_call an earlier call."""
    client = tokenhub_emulator.openai()
    for fault in ("invalid_tool_args", "wrong_format", "repeat_tool_call"):
        reply = client.chat.completions.create(
            model="glm-5", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-emulator-fault": fault}
        )
        assert reply.choices[0].message.content and not reply.choices[0].message.tool_calls
        assert tokenhub_emulator.last_request.data["fault"] is None


SCENARIO = """
rules:
  - name: weather
    when: {tools: {includes: get_weather}}
    fault: {invalid_tool_args: missing_required, first: 1}
    reply:
      tool_calls: [{name: get_weather, arguments: {city: Paris, days: 3}}]
  - name: summary
    when: {last_user: {contains: summary}}
    sequence:
      - fault: {truncated: true}
      - reply: {content: "A complete summary."}
"""


def test_attachment_points_rule_step_and_control_api(tokenhub_emulator: Any) -> None:
    tokenhub_emulator.load(SCENARIO)
    client = tokenhub_emulator.openai()
    calls = [
        client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": ASK}], tools=CHAT_TOOLS)
        for _ in range(2)
    ]
    assert _breaks_schema(calls[0].choices[0].message.tool_calls[0].function.arguments)  # `first: 1`
    assert not _breaks_schema(calls[1].choices[0].message.tool_calls[0].function.arguments)
    summary = [
        client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "summary please"}])
        for _ in range(2)
    ]
    assert [s.choices[0].finish_reason for s in summary] == ["length", "stop"]
    added = tokenhub_emulator.server.control(
        "POST", "/faults", tokenhub_emulator.test_id, json={"empty_reply": True, "test_id": tokenhub_emulator.test_id}
    )
    try:
        assert added["label"] == "empty_reply"
        empty = client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "hello"}])
        assert empty.choices[0].message.content == ""
    finally:
        tokenhub_emulator.server.control("DELETE", f"/faults/{added['id']}", tokenhub_emulator.test_id)
    faults = [r.data["fault"] for r in tokenhub_emulator.requests]
    assert faults == ["invalid_tool_args missing_required", None, "truncated content", None, "empty_reply"]


def test_a_bad_behaviour_value_is_a_400_naming_the_header(tokenhub_emulator: Any) -> None:
    with httpx.Client(base_url=tokenhub_emulator.openai_base_url) as http:
        answer = http.post(
            "/chat/completions",
            headers={"authorization": f"Bearer {API_KEY}", "x-emulator-fault": "invalid_tool_args=wrong_typ"},
            json={"model": "glm-5", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert "x-emulator-fault" in message and "did you mean 'wrong_type'" in message


# ---------------------------------------------------------------- what the client did: the report


def _report(emulator: Any) -> dict[str, Any]:
    return emulator.server.control("GET", "/report", emulator.test_id)  # type: ignore[no-any-return]


def _tool_loop(emulator: Any, validate: bool) -> None:
    """A hand-written agent loop over the openai SDK: it runs the tool the model calls. One that validates the
    arguments against the tool's schema answers a bad call with the error (re-asks); one that does not runs
    the tool on whatever came (passes it on)."""
    client = emulator.openai()
    messages: list[dict[str, Any]] = [{"role": "user", "content": ASK}]
    for _ in range(3):
        reply = client.chat.completions.create(model="glm-5", messages=messages, tools=CHAT_TOOLS)
        message = reply.choices[0].message
        if not message.tool_calls:
            return
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            try:
                arguments = json.loads(call.function.arguments)
                if validate:
                    jsonschema.validate(arguments, WEATHER_SCHEMA)
                result = f"Sunny in {arguments.get('city')}"
            except (ValueError, jsonschema.ValidationError) as error:
                result = f"Error: invalid arguments ({str(error).splitlines()[0]}). Fix them and try again."
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})


LOOP_SCENARIO = """
rules:
  - when: {tool_result: absent}
    fault: {invalid_tool_args: wrong_type}
    reply: {tool_calls: [{name: get_weather, arguments: {city: Paris, days: 3}}]}
  - reply: {content: "It will be sunny."}
"""


def test_the_report_says_a_validating_client_re_asked(tokenhub_emulator: Any) -> None:
    tokenhub_emulator.load(LOOP_SCENARIO)
    _tool_loop(tokenhub_emulator, validate=True)
    report = _report(tokenhub_emulator)
    [row] = report["behaviour"]
    assert (row["fault"], row["client"]) == ("invalid_tool_args wrong_type", "re-asked"), row
    assert f"entry {row['entry']}: invalid_tool_args wrong_type — re-asked" in render(report)
    assert report["behaviour_faults"] == {"invalid_tool_args": {"seen": 1, "re-asked": 1}}
    assert report["ok"] is True


def test_the_report_flags_a_client_that_passed_bad_arguments_on(tokenhub_emulator: Any) -> None:
    tokenhub_emulator.load(LOOP_SCENARIO)
    _tool_loop(tokenhub_emulator, validate=False)
    report = _report(tokenhub_emulator)
    [row] = report["behaviour"]
    assert row["client"] == "passed on" and "tool result built on the bad call" in row["why"]
    assert report["ok"] is False and any("passed on" in p for p in report["problems"])


def test_the_report_says_retried_and_gave_up(tokenhub_emulator: Any) -> None:
    client = tokenhub_emulator.openai()
    body = {
        "model": "glm-5",
        "messages": [{"role": "user", "content": "Reply in JSON."}],
        "response_format": {"type": "json_object"},
    }
    first = client.chat.completions.create(**body, extra_headers={"x-emulator-fault": "wrong_format"})
    with pytest.raises(ValueError):
        json.loads(first.choices[0].message.content)
    client.chat.completions.create(**body)  # the client threw the prose away and asked again
    client.chat.completions.create(**body, extra_headers={"x-emulator-fault": "empty_reply"})  # and then stopped
    rows = _report(tokenhub_emulator)["behaviour"]
    assert [(r["fault"], r["client"]) for r in rows] == [("wrong_format prose", "retried"), ("empty_reply", "gave up")]


def test_the_report_says_repaired_and_re_asked_after_a_refusal(tokenhub_emulator: Any) -> None:
    client = tokenhub_emulator.openai()
    ask = [{"role": "user", "content": ASK}]
    bad = client.chat.completions.create(
        model="glm-5", messages=ask, tools=CHAT_TOOLS, extra_headers={"x-emulator-fault": "invalid_tool_args"}
    )
    call = bad.choices[0].message.tool_calls[0]
    fixed = {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": EARLIER}}
    client.chat.completions.create(  # the client fixed the arguments itself and ran the tool on them
        model="glm-5",
        tools=CHAT_TOOLS,
        messages=[
            *ask,
            {"role": "assistant", "tool_calls": [fixed]},
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
        ],
    )
    refused = client.chat.completions.create(model="glm-5", messages=ask, extra_headers={"x-emulator-fault": "refusal"})
    client.chat.completions.create(
        model="glm-5",
        messages=[
            *ask,
            {"role": "assistant", "content": refused.choices[0].message.refusal},
            {"role": "user", "content": "That was not a valid answer: it is only the weather. Try again."},
        ],
    )
    rows = _report(tokenhub_emulator)["behaviour"]
    assert [r["client"] for r in rows] == ["repaired", "re-asked"], rows


PYDANTIC_SCENARIO = """
rules:
  - when: {tools: {includes: final_result}}
    fault: {invalid_tool_args: missing_required, first: 1}
    reply:
      tool_calls: [{name: final_result, arguments: {city: Paris, temperature_c: 21}}]
"""


def test_pydantic_ai_retries_on_invalid_tool_args_and_the_report_records_it(tokenhub_emulator: Any) -> None:
    from openai import AsyncOpenAI
    from pydantic import BaseModel
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    class Weather(BaseModel):
        city: str
        temperature_c: int

    tokenhub_emulator.load(PYDANTIC_SCENARIO)
    client = AsyncOpenAI(
        base_url=tokenhub_emulator.openai_base_url, api_key=API_KEY, default_headers=tokenhub_emulator.headers
    )
    agent = Agent(OpenAIChatModel("glm-5", provider=OpenAIProvider(openai_client=client)), output_type=Weather)
    result = agent.run_sync("What is the weather in Paris?")
    assert result.output == Weather(city="Paris", temperature_c=21)
    requests = tokenhub_emulator.requests
    assert len(requests) == 2  # the bad call, then pydantic-ai's retry with the validation error
    retry_prompt = requests[1].body["messages"][-1]
    assert retry_prompt["role"] == "tool" and "Field required" in retry_prompt["content"]  # the validation error
    [row] = _report(tokenhub_emulator)["behaviour"]
    assert row["fault"].startswith("invalid_tool_args") and row["client"] == "re-asked", row
