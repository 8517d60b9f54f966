"""Server-held threads on the Messages route (`thread: {type: create}` / `{type: continue}`): the SDK's tool runner,
which threads by default, and the API's thread errors, which the SDK recovers from."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from anthropic import beta_tool

from emulator.protocols import anthropic_messages_models as m
from emulator.protocols.anthropic_threads import KeptReply, ThreadStore

ASK = "weather and time"
RUNNER_SCENARIO = {
    "rules": [
        # matched against the whole conversation: a `continue` request carries one message, the rules see them all
        {
            "name": "call get_weather",
            "when": {"last_user": ASK, "messages": {"count": 1}},
            "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        },
        {
            "name": "call get_time",
            "when": {"last_user": ASK, "messages": {"count": 3}, "tool_result": {"name": "get_weather"}},
            "reply": {"tool_calls": [{"name": "get_time", "arguments": {"city": "Paris"}}]},
        },
        {
            "name": "answer",
            "when": {"last_user": ASK, "messages": {"count": 5}, "tool_result": {"name": "get_time"}},
            "reply": {"content": "Sunny in Paris at noon."},
        },
    ]
}
USER = [{"role": "user", "content": ASK}]


def runner_tools(calls: list[tuple[str, str]]) -> list[Any]:
    @beta_tool
    def get_weather(city: str) -> str:
        """Get the weather for a city."""
        calls.append(("get_weather", city))
        return json.dumps({"city": city, "sky": "sunny"})

    @beta_tool
    def get_time(city: str) -> str:
        """Get the local time in a city."""
        calls.append(("get_time", city))
        return "12:00"

    return [get_weather, get_time]


@pytest.mark.parametrize("stream", [False, True])
def test_the_tool_runner_completes_a_two_call_loop_on_a_thread(tokenhub_emulator, stream):
    tokenhub_emulator.load(RUNNER_SCENARIO)
    calls: list[tuple[str, str]] = []
    runner = tokenhub_emulator.anthropic().beta.messages.tool_runner(
        model="glm-5", max_tokens=1000, tools=runner_tools(calls), messages=USER, stream=stream
    )
    finals = [turn.get_final_message() if stream else turn for turn in runner]
    assert calls == [("get_weather", "Paris"), ("get_time", "Paris")]
    assert finals[-1].content[0].text == "Sunny in Paris at noon."
    first, second, third = tokenhub_emulator.requests
    assert [r.rule for r in (first, second, third)] == ["call get_weather", "call get_time", "answer"]
    assert first.body["thread"] == {"type": "create"} and "tools" in first.body
    for request, previous in ((second, finals[0]), (third, finals[1])):
        # only the new turn, without the thread's tools: the emulator put the kept conversation in front
        assert request.body["thread"] == {"type": "continue", "previous_message_id": previous.id}
        assert "tools" not in request.body and len(request.body["messages"]) == 1
        assert request.body["messages"][0]["content"][0]["type"] == "tool_result"
        assert request.stream is stream


def _create(test: Any, **body: Any) -> dict[str, Any]:
    with test.http() as http:
        response = http.post("/v1/messages", json={"model": "glm-5", "max_tokens": 100, **body})
    return {"status": response.status_code, **response.json()}


def test_continue_errors_carry_the_api_error_codes(tokenhub_emulator):
    client = tokenhub_emulator.anthropic()
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.beta.messages.create(
            model="glm-5",
            max_tokens=100,
            messages=USER,
            thread={"type": "continue", "previous_message_id": "msg_01unknown"},
        )
    assert caught.value.error_code == "thread_not_found"
    created = _create(tokenhub_emulator, messages=USER, thread={"type": "create"}, system="Be brief.")
    follow = [{"role": "user", "content": "And tomorrow?"}]
    thread = {"type": "continue", "previous_message_id": created["id"]}
    assert _create(tokenhub_emulator, messages=follow, thread=thread)["status"] == 200
    again = _create(tokenhub_emulator, messages=follow, thread=thread)
    assert again["status"] == 400 and again["error"]["details"] == {"error_code": "thread_already_continued"}
    changed = _create(tokenhub_emulator, messages=follow, system="Be long.", thread=thread)
    assert changed["error"]["details"] == {"error_code": "thread_already_continued"}
    created = _create(tokenhub_emulator, messages=USER, thread={"type": "create"}, system="Be brief.")
    thread = {"type": "continue", "previous_message_id": created["id"]}
    changed = _create(tokenhub_emulator, messages=follow, system="Be long.", thread=thread)
    assert changed["status"] == 400 and changed["error"]["details"] == {"error_code": "thread_fingerprint_mismatch"}
    assert "`system`" in changed["error"]["message"]
    same = _create(tokenhub_emulator, messages=follow, system="Be brief.", thread=thread)
    assert same["status"] == 200


def test_a_thread_belongs_to_the_test_that_created_it(tokenhub_emulator, tokenhub_emulator_server):
    created = _create(tokenhub_emulator, messages=USER, thread={"type": "create"})
    other = tokenhub_emulator_server.handle("another-test")
    try:
        thread = {"type": "continue", "previous_message_id": created["id"]}
        lost = _create(other, messages=[{"role": "user", "content": "more"}], thread=thread)
        assert lost["status"] == 404 and lost["error"]["details"] == {"error_code": "thread_not_found"}
    finally:
        other.close()


def test_the_sdk_replays_a_lost_thread_under_a_new_one(tokenhub_emulator):
    tokenhub_emulator.load(RUNNER_SCENARIO)
    calls: list[tuple[str, str]] = []
    runner = tokenhub_emulator.anthropic().beta.messages.tool_runner(
        model="glm-5", max_tokens=1000, tools=runner_tools(calls), messages=USER
    )
    turns = iter(runner)
    next(turns)
    tokenhub_emulator.reset()  # the server forgets the thread between two turns
    tokenhub_emulator.load(RUNNER_SCENARIO)
    assert [turn.content[-1].type for turn in turns] == ["tool_use", "text"]
    statuses = [(r.status, (r.body.get("thread") or {}).get("type")) for r in tokenhub_emulator.requests]
    assert statuses == [(404, "continue"), (200, "create"), (200, "continue")]


def test_a_reply_is_kept_when_decided_so_a_dropped_stream_still_continues(tokenhub_emulator):
    tokenhub_emulator.load(
        {
            "rules": [
                {
                    "name": "slow",
                    "when": {"last_user": "tell a long story"},
                    "reply": {"content": "word " * 400},
                    "timing": {"ttft_ms": 0, "tokens_per_second": 50},
                },
                {"name": "after", "when": {"messages": {"count": 3}}, "reply": {"content": "continued"}},
            ]
        }
    )
    body = {"model": "glm-5", "max_tokens": 2000, "stream": True, "thread": {"type": "create"}}
    with (
        tokenhub_emulator.http() as http,
        http.stream(
            "POST", "/v1/messages", json={**body, "messages": [{"role": "user", "content": "tell a long story"}]}
        ) as response,
    ):
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
    message_id = json.loads(first[len("data: ") :])["message"]["id"]
    follow = {"type": "continue", "previous_message_id": message_id}
    answer = _create(tokenhub_emulator, messages=[{"role": "user", "content": "go on"}], thread=follow)
    assert answer["status"] == 200 and answer["content"][0]["text"] == "continued"
    dropped = tokenhub_emulator.requests[0]
    assert dropped.rule == "slow" and dropped.disconnected is True


def test_the_store_is_bounded_least_recently_used_first():
    store = ThreadStore(limit=2)
    request = m.MessagesRequest.model_validate({"model": "glm-5", "max_tokens": 1, "messages": USER})
    for name in ("a", "b", "c"):
        store.keep(KeptReply(name, tuple(request.messages), None, None), None)
    assert len(store) == 2 and store.get("a", "") is None and store.get("c", "") is not None
    store.clear("")
    assert len(store) == 0
