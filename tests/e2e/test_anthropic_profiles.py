"""The Messages route as each gateway serves it: TokenHub's compatibility layer, CloudBase,
the upstream API, and a gateway with narrower sampling ranges (MaxToken)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.helpers.anthropic import MESSAGE, WEATHER_TOOL, create, post, strict_parse
from tests.helpers.servers import SCENARIOS, RunningServer, start_server, stop_server

IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
DOCUMENT = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Some notes."}}
SEARCH_RESULT = {
    "type": "search_result",
    "source": "https://example.com",
    "title": "Example",
    "content": [{"type": "text", "text": "A result."}],
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[RunningServer]:
    running = start_server("--profile", "anthropic", "--scenario", str(SCENARIOS))
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def cloudbase() -> Iterator[RunningServer]:
    running = start_server("--profile", "cloudbase", "--scenario", str(SCENARIOS))
    yield running
    stop_server(running)


def body_with(content: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "glm-5", "max_tokens": 1024, "messages": [{"role": "user", "content": content}], **extra}


# ── TokenHub ─────────────────────────────────────────────────────────────────


def test_tokenhub_accepts_and_ignores_its_ignored_fields(server):
    body = body_with(
        [{"type": "text", "text": "an unscripted question"}],
        thinking={"type": "enabled", "budget_tokens": 2048},
        top_k="not even a number",
        metadata={"user_id": 42},
        service_tier="platinum",
        container={"id": "c"},
        mcp_servers=[{"type": "url", "url": "https://example.com", "name": "x"}],
    )
    response = post(server, body)
    assert response.status_code == 200, response.text
    assert [b["type"] for b in response.json()["content"]] == ["text"]  # thinking ignored: none generated


def test_upstream_thinking_generates_a_thinking_block(upstream):
    body = body_with(
        [{"type": "text", "text": "an unscripted question"}], thinking={"type": "enabled", "budget_tokens": 1024}
    )
    response = post(upstream, {**body, "max_tokens": 4096})
    assert response.status_code == 200, response.text
    assert [b["type"] for b in response.json()["content"]] == ["thinking", "text"]


@pytest.mark.parametrize(
    "content, path, block",
    [
        ([{"type": "text", "text": "look"}, IMAGE], "messages.0.content.1.type", "image"),
        ([DOCUMENT], "messages.0.content.0.type", "document"),
        ([{"type": "text", "text": "see"}, SEARCH_RESULT], "messages.0.content.1.type", "search_result"),
    ],
)
def test_tokenhub_refuses_unsupported_blocks(server, upstream, content, path, block):
    response = post(server, body_with(content))
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": f"{path}: content blocks of type '{block}' are not supported by this gateway",
    }
    assert post(upstream, body_with(content)).status_code == 200


def test_tokenhub_refuses_an_image_inside_a_tool_result(server):
    call = {"type": "tool_use", "id": "toolu_01X", "name": "get_weather", "input": {"city": "Paris"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_01X", "content": [{"type": "text", "text": "map:"}, IMAGE]}
    body = {
        "model": "glm-5",
        "max_tokens": 100,
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": "weather in Paris"},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
        ],
    }
    response = post(server, body)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("messages.2.content.0.content.1.type: ")


def test_tokenhub_refuses_redacted_thinking_but_ignores_thinking(server):
    thinking = {"type": "thinking", "thinking": "Let me think.", "signature": "c2ln"}
    redacted = {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"}
    history = [{"role": "user", "content": "Hello"}]
    ok = post(
        server,
        {
            **body_with([]),
            "messages": [
                *history,
                {"role": "assistant", "content": [thinking, {"type": "text", "text": "Hi"}]},
                {"role": "user", "content": "again"},
            ],
        },
    )
    assert ok.status_code == 200, ok.text
    refused = post(
        server,
        {
            **body_with([]),
            "messages": [
                *history,
                {"role": "assistant", "content": [redacted, {"type": "text", "text": "Hi"}]},
                {"role": "user", "content": "again"},
            ],
        },
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith(
        "messages.1.content.0.type: content blocks of type 'redacted_thinking'"
    )


def test_tokenhub_ignores_disable_parallel_tool_use_and_is_error(server):
    message, _ = create(
        server,
        model="glm-5",
        max_tokens=1024,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "What is the weather like in Beijing today?"}],
    )
    call = message.content[0]
    follow_up, _ = create(
        server,
        model="glm-5",
        max_tokens=1024,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "What is the weather like in Beijing today?"},
            message.to_param(),
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "{}", "is_error": True}],
            },
        ],
    )
    assert follow_up.stop_reason == "end_turn"


def test_tokenhub_temperature_range_is_0_to_2(server, upstream):
    body = body_with([{"type": "text", "text": "hi"}], temperature=1.5)
    assert post(server, body).status_code == 200
    refused = post(upstream, body)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "temperature: Input should be less than or equal to 1"
    assert post(upstream, {**body, "temperature": 1}).status_code == 200


def test_the_seed_000_streaming_sample(server):
    """TokenHub's documented curl example, x-api-key and all; the sample's stray `"index":1` is the API's index 0 here."""
    body = {
        "model": "minimax-m2.7",
        "max_tokens": 1000,
        "stream": True,
        "system": [{"type": "text", "text": "You are a helpful assistant."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi, how are you?"}]}],
    }
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.post("/v1/messages", json=body, headers={"x-api-key": "YOUR_API_KEY"})
    assert response.status_code == 200
    assert '"index":1' not in response.text and '"type":"content_block_start"' in response.text


# ── CloudBase ────────────────────────────────────────────────────────────────


def test_cloudbase_path_bearer_and_version(cloudbase):
    client = anthropic.Anthropic(auth_token="cb-key", base_url=cloudbase.url + "/v1/ai/cloudbase", max_retries=0)
    message = client.messages.create(
        model="hy3-preview",
        max_tokens=1024,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "What is the weather like in Beijing today?"}],
    )
    assert message.stop_reason == "tool_use" and message.content[0].input == {"city": "Beijing"}
    counted = client.messages.count_tokens(model="hy3-preview", messages=[{"role": "user", "content": "hello"}])
    assert counted.input_tokens > 0


def test_cloudbase_refuses_x_api_key_and_a_missing_version(cloudbase):
    body = {"model": "hy3-preview", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]}
    path = "/v1/ai/cloudbase/v1/messages"
    with httpx.Client(base_url=cloudbase.url, timeout=10) as client:
        keyed = client.post(path, json=body, headers={"x-api-key": "cb-key", "anthropic-version": "2023-06-01"})
        unversioned = client.post(path, json=body, headers={"authorization": "Bearer cb-key"})
        fine = client.post(
            path, json=body, headers={"authorization": "Bearer cb-key", "anthropic-version": "2023-06-01"}
        )
        elsewhere = client.post(
            "/v1/messages", json=body, headers={"authorization": "Bearer cb-key", "anthropic-version": "2023-06-01"}
        )
    assert keyed.status_code == 401 and keyed.json()["error"]["type"] == "authentication_error"
    assert unversioned.status_code == 400
    assert unversioned.json()["error"]["message"] == "anthropic-version: header is required"
    assert fine.status_code == 200
    strict_parse(MESSAGE, fine.json())
    assert elsewhere.status_code == 404


def test_cloudbase_honours_cache_control(cloudbase):
    """CloudBase documents both caching modes."""
    body = {
        "model": "hy3-preview",
        "max_tokens": 1024,
        "cache_control": {"type": "ephemeral"},
        "system": "You are a professional weather query assistant.",
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "What is the weather like in Beijing today?"}],
    }
    headers = {"authorization": "Bearer cb-cache", "anthropic-version": "2023-06-01", "x-emulator-test-id": "cb-cache"}
    with httpx.Client(base_url=cloudbase.url, timeout=10, headers=headers) as client:
        first = client.post("/v1/ai/cloudbase/v1/messages", json=body).json()["usage"]
        second = client.post("/v1/ai/cloudbase/v1/messages", json=body).json()["usage"]
    assert first["cache_creation_input_tokens"] > 0 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]


# ── a gateway's own sampling ranges ──────────────────────────────────────────


def test_maxtoken_ranges_apply_to_messages_too():
    running = start_server("--profile", "maxtoken")
    try:
        body = body_with([{"type": "text", "text": "hi"}], temperature=1.2)
        refused = post(running, body)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == "temperature: Input should be less than or equal to 1"
    finally:
        stop_server(running)
