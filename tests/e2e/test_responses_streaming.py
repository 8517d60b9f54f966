"""Streamed Responses: the SSE wire format, every event against the spec, and the SDK's accumulator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator.exchange import Failure
from emulator.profiles import PROFILES, Catalog
from emulator.protocols.base import Context
from emulator.protocols.openai_responses import ResponseEvents, ResponsesAdapter
from tests.helpers.responses import WEATHER_RESULT, WEATHER_TOOL
from tests.helpers.spec import assert_valid, assert_valid_stream, sse_payloads


def stream_events(server, **request: Any) -> tuple[str, list[dict[str, Any]]]:
    """The raw SSE text and its events, each validated against ResponseStreamEvent."""
    with server.http() as http, http.stream("POST", "/v1/responses", json={**request, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    return text, assert_valid_stream("ResponseStreamEvent", sse_payloads(text))


def without_ids(response: dict[str, Any]) -> dict[str, Any]:
    """A Response minus what differs between two runs (ids, timestamps) and what the SDK adds (`parsed`)."""
    output = [{k: v for k, v in item.items() if k != "id"} for item in response["output"]]
    for item in output:
        if "content" in item:
            item["content"] = [{k: v for k, v in part.items() if k != "parsed"} for part in item["content"]]
    skipped = {"id", "created_at", "completed_at", "output"}
    return {**{k: v for k, v in response.items() if k not in skipped}, "output": output}


def test_wire_format_and_event_order(server):
    text, events = stream_events(server, model="glm-5", input="Calculate 1+1")
    frames = [frame for frame in text.split("\n\n") if frame.strip()]
    for frame, event in zip(frames, events, strict=True):
        name, data = frame.split("\n")
        assert name == f"event: {event['type']}" and data.startswith("data: ")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "[DONE]" not in text
    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and "usage" not in created
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(e["delta"] for e in deltas) == "1+1=2" and len(deltas) > 1
    item_id = events[2]["item"]["id"]
    assert all(e["item_id"] == item_id and e["output_index"] == 0 and e["content_index"] == 0 for e in deltas)
    completed = events[-1]["response"]
    assert_valid("Response", completed)
    assert completed["id"] == created["id"] and completed["output"][0]["id"] == item_id


def test_reasoning_events_come_first(server):
    _, events = stream_events(
        server, model="deepseek-v3.2", input="Why does idempotency matter?", reasoning={"effort": "high"}
    )
    kinds = [e["type"] for e in events]
    first_text = kinds.index("response.output_text.delta")
    for kind in (
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
    ):
        assert kinds.index(kind) < first_text
    summary = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta")
    assert summary.startswith("The user wants to know")
    assert events[-1]["response"]["output"][0]["summary"][0]["text"] == summary


def test_function_call_events(server):
    _, events = stream_events(server, model="glm-5", input="What is the weather in Beijing?", tools=[WEATHER_TOOL])
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["type"] == "function_call" and added["item"]["arguments"] == ""
    assert added["item"]["status"] == "in_progress"
    arguments = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert json.loads(arguments) == {"city": "Beijing"} and done["arguments"] == arguments
    assert done["name"] == "get_weather"


def test_sdk_stream_reassembles_the_non_streamed_response(server):
    client = server.openai()
    request = {"model": "deepseek-v3.2", "input": "Why does idempotency matter?", "reasoning": {"effort": "high"}}
    plain = client.responses.with_raw_response.create(**request)
    with client.responses.stream(**request) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[-1] == "response.completed"
    assert without_ids(final.model_dump(mode="json", exclude_unset=True)) == without_ids(json.loads(plain.text))
    assert final.output_text.startswith("### Why idempotency matters")


def test_cloudbase_tool_round_trip_streamed(server):
    client = server.openai()
    with client.responses.stream(
        model="hy3-preview", input="What is the weather like in Beijing today?", tools=[WEATHER_TOOL]
    ) as stream:
        first = stream.get_final_response()
    call = first.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Beijing"}
    events = client.responses.create(
        model="hy3-preview",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": WEATHER_RESULT}],
        stream=True,
    )
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == "It is sunny in Beijing today, 26°C with 40% humidity."


def test_create_stream_true_iteration(server):
    events = list(server.openai().responses.create(model="glm-5", input="Calculate 1+1", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert events[-1].response.output_text == "1+1=2"


def test_cut_stream_ends_incomplete(server):
    _, events = stream_events(
        server, model="deepseek-v3.2", input="Hello, please introduce yourself", max_output_tokens=16
    )
    last = events[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert done[-1]["item"]["status"] == "incomplete"


def test_streamed_response_is_stored(server):
    _, events = stream_events(server, model="glm-5", input="Calculate 1+1")
    response_id = events[0]["response"]["id"]
    fetched = server.openai().responses.retrieve(response_id)
    assert fetched.status == "completed" and fetched.output_text == "1+1=2"


def test_disconnect_mid_stream_keeps_the_response(server):
    request = {"model": "deepseek-v3.2", "input": "Why does idempotency matter?", "stream": True}
    with server.http() as http, http.stream("POST", "/v1/responses", json=request) as response:
        first_line = next(line for line in response.iter_lines() if line.startswith("data:"))
    response_id = json.loads(first_line[5:])["response"]["id"]
    client = server.openai()
    assert client.responses.retrieve(response_id).output_text.startswith("### Why idempotency matters")
    follow_up = client.responses.create(model="glm-5", previous_response_id=response_id, input="Thanks")
    assert follow_up.previous_response_id == response_id


def test_failed_and_error_events_validate():
    """What a fault injector ends a cut stream with: `response.failed` after the last event, or `error`."""
    adapter = ResponsesAdapter()
    body = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "completed_at": 1,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": "glm-5",
        "output": [
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Hello there", "annotations": [], "logprobs": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "temperature": 1.0,
        "top_p": 1.0,
        "metadata": {},
    }
    stream = ResponseEvents(body)
    sent = [json.loads(next(stream).data) for _ in range(4)]
    failed = json.loads(stream.failed(Failure(status=503, message="upstream went away")).data)
    assert_valid("ResponseStreamEvent", failed)
    assert failed["sequence_number"] == sent[-1]["sequence_number"] + 1
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": "upstream went away"}

    context = Context(PROFILES["tokenhub"], Catalog.with_builtins())
    event = adapter.error_event(Failure(status=429, message="slow down"), context, sequence_number=7)
    payload = json.loads(event.data)
    assert event.event == "error"
    assert_valid("ResponseStreamEvent", payload)
    assert payload == {
        "type": "error",
        "code": "rate_limit_exceeded",
        "message": "slow down",
        "param": None,
        "sequence_number": 7,
    }


@pytest.mark.anyio
async def test_async_create_stream_true(server):
    events = [event async for event in await server.async_openai().responses.create(
        model="glm-5", input="Calculate 1+1", stream=True
    )]  # fmt: skip
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "1+1=2"
