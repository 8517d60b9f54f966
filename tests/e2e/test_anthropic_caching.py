"""Prompt caching on the Messages route (as CloudBase documents it): explicit `cache_control` breakpoints (at most 4), top-level
automatic caching, and the usage they produce — a write, then reads of the same prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.anthropic import FIXTURE, WEATHER_TOOL, create, http, post, stream_events
from tests.helpers.servers import RunningServer, start_server, stop_server

EPHEMERAL = {"type": "ephemeral"}
LONG_SYSTEM = "You are a professional weather query assistant. " * 40


@pytest.fixture(scope="module")
def upstream() -> Iterator[RunningServer]:
    running = start_server("--profile", "anthropic", "--scenario", str(FIXTURE))
    yield running
    stop_server(running)


def scope() -> dict[str, str]:
    """A fresh test id: its own cache, untouched by other tests."""
    return {"x-emulator-test-id": f"cache-{uuid.uuid4().hex}"}


def ask(
    server: RunningServer,
    headers: dict[str, str],
    question: str = "What is the weather like in Beijing today?",
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "model": "hy3-preview",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": LONG_SYSTEM, "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": question}],
        **extra,
    }
    response = post(server, body, headers)
    assert response.status_code == 200, response.text
    return response.json()["usage"]


def counted(server: RunningServer, body: dict[str, Any], headers: dict[str, str]) -> int:
    request = {k: v for k, v in body.items() if k not in ("max_tokens", "stream")}
    with http(server, headers) as client:
        return client.post("/v1/messages/count_tokens", json=request).json()["input_tokens"]


def total_input(usage: dict[str, Any]) -> int:
    return usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]


def test_write_then_read(upstream):
    headers = scope()
    first = ask(upstream, headers)
    assert first["cache_read_input_tokens"] == 0
    written = first["cache_creation_input_tokens"]
    assert written > 300  # the long system prompt
    assert first["cache_creation"] == {"ephemeral_5m_input_tokens": written, "ephemeral_1h_input_tokens": 0}
    second = ask(upstream, headers, "And tomorrow?")
    assert second["cache_read_input_tokens"] == written
    assert second["cache_creation_input_tokens"] == 0
    assert second["input_tokens"] < 20
    assert second["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}


def test_usage_adds_up_to_count_tokens(upstream):
    headers = scope()
    body = {
        "model": "hy3-preview",
        "system": [{"type": "text", "text": LONG_SYSTEM, "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": "What is the weather like in Beijing today?"}],
    }
    first = ask(upstream, headers)
    second = ask(upstream, headers)
    assert total_input(first) == total_input(second) == counted(upstream, body, headers)


def test_a_changed_prefix_misses(upstream):
    headers = scope()
    ask(upstream, headers)
    body = {
        "model": "hy3-preview",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": LONG_SYSTEM + "Be brief.", "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": "What is the weather like in Beijing today?"}],
    }
    usage = post(upstream, body, headers).json()["usage"]
    assert usage["cache_read_input_tokens"] == 0 and usage["cache_creation_input_tokens"] > 300


def test_caches_are_per_test_id_key_and_model(upstream):
    headers = scope()
    ask(upstream, headers)
    assert ask(upstream, scope())["cache_read_input_tokens"] == 0
    assert ask(upstream, {**headers, "x-api-key": "sk-ant-other"})["cache_read_input_tokens"] == 0
    other_model = post(
        upstream,
        {
            "model": "glm-5",
            "max_tokens": 100,
            "system": [{"type": "text", "text": LONG_SYSTEM, "cache_control": EPHEMERAL}],
            "messages": [{"role": "user", "content": "What is the weather like in Beijing today?"}],
        },
        headers,
    ).json()["usage"]
    assert other_model["cache_read_input_tokens"] == 0
    assert ask(upstream, headers)["cache_read_input_tokens"] > 0


def test_reset_forgets_the_cache(upstream):
    headers = scope()
    ask(upstream, headers)
    with http(upstream, headers) as client:
        assert client.post("/_emulator/reset").status_code == 200
    assert ask(upstream, headers)["cache_read_input_tokens"] == 0


def test_one_hour_ttl(upstream):
    headers = scope()
    body = {
        "model": "hy3-preview",
        "max_tokens": 100,
        "tools": [{**WEATHER_TOOL, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "system": [{"type": "text", "text": LONG_SYSTEM, "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": "hello there"}],
    }
    usage = post(upstream, body, headers).json()["usage"]
    one_hour, five_minutes = (
        usage["cache_creation"]["ephemeral_1h_input_tokens"],
        usage["cache_creation"]["ephemeral_5m_input_tokens"],
    )
    assert 0 < one_hour < five_minutes  # the tool, then the system prompt after it
    assert usage["cache_creation_input_tokens"] == one_hour + five_minutes


def test_tools_and_message_breakpoints(upstream):
    """CloudBase's explicit example: the system prompt and the tool marked; then a breakpoint in the conversation."""
    headers = scope()
    conversation = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is the weather like in Beijing today?", "cache_control": EPHEMERAL}
            ],
        }
    ]
    body = {
        "model": "hy3-preview",
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": "You are a professional weather query assistant.", "cache_control": EPHEMERAL}
        ],
        "tools": [{**WEATHER_TOOL, "cache_control": EPHEMERAL}],
        "messages": conversation,
    }
    first = post(upstream, {**body, "tool_choice": {"type": "any"}}, headers).json()  # a generated call
    assert first["stop_reason"] == "tool_use"
    assert first["usage"]["cache_read_input_tokens"] == 0 and first["usage"]["cache_creation_input_tokens"] > 0
    call = first["content"][0]
    body["messages"] = [
        *conversation,
        {"role": "assistant", "content": first["content"]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": '{"weather": "sunny"}'}],
        },
    ]
    second = post(upstream, body, headers).json()["usage"]
    assert second["cache_read_input_tokens"] == first["usage"]["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0  # nothing marked beyond the cached prefix


def test_automatic_caching_follows_the_conversation(upstream):
    """Top-level cache_control: the breakpoint sits on the last block and moves forward turn by turn."""
    headers = scope()
    turns = [{"role": "user", "content": "What is the weather like in Beijing today? " + "Please be precise. " * 30}]
    body = {"model": "hy3-preview", "max_tokens": 1024, "cache_control": EPHEMERAL, "system": LONG_SYSTEM}
    first = post(upstream, {**body, "messages": turns}, headers).json()
    usage = first["usage"]
    assert usage["cache_read_input_tokens"] == 0
    assert usage["cache_creation_input_tokens"] > 400 and usage["input_tokens"] <= 5
    turns += [{"role": "assistant", "content": first["content"]}, {"role": "user", "content": "And tomorrow?"}]
    second = post(upstream, {**body, "messages": turns}, headers).json()["usage"]
    assert second["cache_read_input_tokens"] == usage["cache_creation_input_tokens"]
    assert 0 < second["cache_creation_input_tokens"] < 100  # only the new turns are written
    assert total_input(second) == counted(upstream, {**body, "messages": turns}, headers)


@pytest.mark.parametrize(
    "extra, path",
    [
        (
            {"system": [{"type": "text", "text": f"part {i}", "cache_control": EPHEMERAL} for i in range(5)]},
            "system.4.cache_control",
        ),
        (
            {
                "system": [{"type": "text", "text": f"part {i}", "cache_control": EPHEMERAL} for i in range(4)],
                "cache_control": EPHEMERAL,
            },
            "cache_control",
        ),
        (
            {
                "tools": [{**WEATHER_TOOL, "cache_control": EPHEMERAL}],
                "system": [{"type": "text", "text": f"part {i}", "cache_control": EPHEMERAL} for i in range(3)],
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": EPHEMERAL}]}],
            },
            "messages.0.content.0.cache_control",
        ),
    ],
)
def test_a_fifth_breakpoint_is_refused(upstream, extra, path):
    body = {"model": "hy3-preview", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **extra}
    response = post(upstream, body, scope())
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": f"{path}: A maximum of 4 blocks with cache_control may be provided. Found 5.",
    }
    with http(upstream) as client:
        request = {k: v for k, v in body.items() if k != "max_tokens"}
        assert client.post("/v1/messages/count_tokens", json=request).status_code == 400


def test_four_breakpoints_are_fine(upstream):
    system = [{"type": "text", "text": f"part {i} " * 20, "cache_control": EPHEMERAL} for i in range(4)]
    usage = post(
        upstream,
        {"model": "hy3-preview", "max_tokens": 100, "system": system, "messages": [{"role": "user", "content": "hi"}]},
        scope(),
    ).json()["usage"]
    assert usage["cache_creation_input_tokens"] > 0


def test_streaming_reports_the_same_cache_usage(upstream):
    body = {
        "model": "hy3-preview",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": LONG_SYSTEM, "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": "hello there"}],
    }
    plain = post(upstream, body, scope()).json()["usage"]
    headers = scope()
    events = stream_events(upstream, body, headers)
    start, delta = events[0].message.usage, events[-2].usage
    assert start.cache_creation_input_tokens == plain["cache_creation_input_tokens"] > 0
    assert delta.cache_creation_input_tokens == start.cache_creation_input_tokens
    assert delta.input_tokens == start.input_tokens == plain["input_tokens"]
    again = stream_events(upstream, body, headers)[0].message.usage
    assert again.cache_read_input_tokens == plain["cache_creation_input_tokens"]


def test_a_scenario_can_pin_the_cached_tokens(upstream):
    message, body = create(
        upstream, model="glm-5", max_tokens=100, messages=[{"role": "user", "content": "pinned cache"}]
    )
    assert body["usage"]["cache_read_input_tokens"] == 60 and body["usage"]["input_tokens"] == 40
    assert message.usage.cache_creation_input_tokens == 0


def test_tokenhub_ignores_cache_control(server):
    """TokenHub: every cache_control is ignored there — no limit, no cache accounting."""
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": EPHEMERAL} for _ in range(5)]
    body = {
        "model": "glm-5",
        "max_tokens": 100,
        "cache_control": EPHEMERAL,
        "system": system,
        "messages": [{"role": "user", "content": "hello there"}],
    }
    headers = scope()
    for _ in range(2):
        response = post(server, body, headers)
        assert response.status_code == 200, response.text
        usage = response.json()["usage"]
        assert usage["cache_creation_input_tokens"] == usage["cache_read_input_tokens"] == 0
