"""Rate limits: token buckets, the gateways' header formats, and a real server refusing a burst and serving
again once the bucket has refilled (the wait is read from the headers, not guessed)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.servers import RunningServer, start_server, stop_server

SCENARIO = """
settings:
  rate_limits: {requests: 3, window_s: 1.5, tokens: 100000, concurrency: 2, per: [key]}
rules:
  - when: {last_user: hi}
    reply: {content: hello}
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path = tmp_path_factory.mktemp("limits") / "limits.yaml"
    path.write_text(SCENARIO)
    running = start_server("--scenario", str(path), "--rate-limit-requests", "1000")  # the scenario wins
    yield running
    stop_server(running)


def post(server: RunningServer, key: str, path: str = "/v1/chat/completions", **extra: Any) -> Any:
    body = {"model": "glm-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}], **extra}
    headers = {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01", "x-emulator-test-id": key}
    with server.http() as client:
        return client.post(path, json=body, headers=headers)


def test_a_burst_is_refused_then_served_once_the_bucket_refills(limited: RunningServer) -> None:
    responses = [post(limited, "sk-burst") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses] == ["2", "1", "0", "0"]
    assert all(r.headers["x-ratelimit-limit-requests"] == "3" for r in responses)
    refused = responses[-1]
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    assert (
        "Rate limit reached for glm-5 on requests per 1.5s (RPM): Limit 3, Used 3" in refused.json()["error"]["message"]
    )
    wait_s = int(refused.headers["retry-after-ms"]) / 1000
    assert 0 < wait_s <= 0.5 + 0.05  # one request every 0.5 s
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    time.sleep(wait_s + 0.05)
    again = post(limited, "sk-burst")
    assert again.status_code == 200, again.text
    with limited.http() as client:
        entries = client.get("/_emulator/journal", params={"test_id": "sk-burst"}).json()["data"]
    assert [e["action"] for e in entries] == ["reply", "reply", "reply", "rate_limited", "reply"]
    assert entries[3]["response_headers"]["retry-after-ms"] == refused.headers["retry-after-ms"]


def test_the_anthropic_route_is_limited_with_its_own_headers_and_envelope(limited: RunningServer) -> None:
    responses = [post(limited, "sk-anthropic", "/v1/messages") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    refused = responses[-1]
    assert refused.json()["type"] == "error" and refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert "retry-after" in refused.headers and "x-ratelimit-limit-requests" not in refused.headers


def test_too_many_open_streams(limited: RunningServer) -> None:
    headers = {"authorization": "Bearer sk-streams", "x-emulator-ttft-ms": "800"}
    body = {"model": "glm-5", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with limited.http(headers=headers) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as first:
            with client.stream("POST", "/v1/chat/completions", json=body) as second:
                assert first.status_code == second.status_code == 200
                third = client.post("/v1/chat/completions", json={**body, "stream": False})
                assert third.status_code == 429
                assert "Too many concurrent requests" in third.json()["error"]["message"]
                second.read()
            first.read()
        assert client.post("/v1/chat/completions", json={**body, "stream": False}).status_code == 200  # slots freed


def test_every_streamed_response_carries_the_headers(limited: RunningServer) -> None:
    response = post(limited, "sk-stream-headers", stream=True)
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining-requests"] == "2"
    assert "x-ratelimit-reset-tokens" in response.headers
