"""Rate limits: token buckets, the gateways' header formats, and a real server refusing a burst and serving
again once the bucket has refilled (the wait is read from the headers, not guessed)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.cli.main import parse, settings_from
from emulator.cli.options import FlagError
from emulator.exchange import Exchange, Message
from emulator.ratelimit import (
    Limiter,
    RateLimits,
    anthropic_limit_headers,
    go_duration,
    openai_limit_headers,
    retry_headers,
    rfc3339,
)
from tests.helpers.servers import RunningServer, start_server, stop_server


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.02, "20ms"), (0.9994, "999ms"), (1, "1s"), (7.66, "7.66s"), (60, "1m0s"), (360, "6m0s")]
    + [(179.56, "2m59.56s"), (3600, "1h0m0s"), (3723.5, "1h2m3.5s")],
)
def test_durations_are_written_as_the_openai_headers_write_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_retry_headers_and_rfc3339() -> None:
    assert retry_headers(0.25) == {"retry-after": "1", "retry-after-ms": "250"}
    assert retry_headers(2.0001) == {"retry-after": "3", "retry-after-ms": "2000"}
    assert rfc3339(1_700_000_000.2) == "2023-11-14T22:13:21Z"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def exchange(key: str = "sk-a", model: str = "glm-5") -> Exchange:
    return Exchange(protocol="chat", model=model, messages=[Message("user", "hi")], api_key=key)


def test_a_request_bucket_refuses_a_burst_and_refills_continuously() -> None:
    clock = Clock()
    limiter = Limiter(RateLimits(requests=3, window_s=6), clock=clock)
    admitted = [limiter.admit(exchange(), 0, openai_limit_headers) for _ in range(4)]
    assert [a.refusal is None for a in admitted] == [True, True, True, False]
    refused = admitted[-1]
    assert refused.reason == "requests" and refused.refusal is not None
    assert refused.refusal.status == 429
    assert refused.refusal.headers["retry-after-ms"] == "2000"  # one request every 2 s
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "6s"
    assert "Limit 3, Used 3, Requested 1" in refused.refusal.message
    clock.now += 1.9
    assert limiter.admit(exchange(), 0, openai_limit_headers).refusal is not None
    clock.now += 0.1
    assert limiter.admit(exchange(), 0, openai_limit_headers).refusal is None


def test_buckets_are_kept_per_key_and_model_by_default() -> None:
    limiter = Limiter(RateLimits(requests=1), clock=Clock())
    assert limiter.admit(exchange("sk-a"), 0, openai_limit_headers).refusal is None
    assert limiter.admit(exchange("sk-a"), 0, openai_limit_headers).refusal is not None
    assert limiter.admit(exchange("sk-b"), 0, openai_limit_headers).refusal is None
    assert limiter.admit(exchange("sk-a", "qwen-plus"), 0, openai_limit_headers).refusal is None
    shared = Limiter(RateLimits(requests=1, per=()), clock=Clock())
    assert shared.admit(exchange("sk-a"), 0, openai_limit_headers).refusal is None
    assert shared.admit(exchange("sk-b", "qwen-plus"), 0, openai_limit_headers).refusal is not None


def test_tokens_are_taken_on_admission_and_for_the_completion() -> None:
    clock = Clock()
    limiter = Limiter(RateLimits(tokens=100, window_s=10), clock=clock)
    first = limiter.admit(exchange(), 30, openai_limit_headers)
    assert first.headers["x-ratelimit-remaining-tokens"] == "70"
    assert limiter.charge(first, 60, openai_limit_headers)["x-ratelimit-remaining-tokens"] == "10"
    refused = limiter.admit(exchange(), 30, openai_limit_headers)
    assert refused.reason == "tokens" and refused.refusal is not None
    assert refused.refusal.headers["retry-after-ms"] == "2000"  # 20 tokens at 10 per second
    assert "on tokens per 10s (TPM)" in refused.refusal.message


def test_concurrency_is_released_when_a_response_ends() -> None:
    limiter = Limiter(RateLimits(concurrency=1), clock=Clock())
    held = limiter.admit(exchange(), 0, openai_limit_headers)
    assert held.holds_slot
    refused = limiter.admit(exchange(), 0, openai_limit_headers)
    assert refused.reason == "concurrency" and refused.refusal is not None and refused.refusal.status == 429
    limiter.release(held)
    assert limiter.admit(exchange(), 0, openai_limit_headers).refusal is None


def test_the_anthropic_route_gets_the_anthropic_headers() -> None:
    limiter = Limiter(RateLimits(requests=5, tokens=1000), clock=Clock())
    headers = limiter.admit(exchange(), 10, anthropic_limit_headers).headers
    assert headers["anthropic-ratelimit-requests-limit"] == "5"
    assert headers["anthropic-ratelimit-requests-remaining"] == "4"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "990"
    assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert not any(name.startswith("x-ratelimit") for name in headers)


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENHUB_EMULATOR_RATE_LIMIT_TOKENS", "5000")
    args = parse(["serve", "--rate-limit-requests", "3", "--rate-limit-window-s", "1.5", "--rate-limit-per", "key"])
    assert settings_from(args).rate_limits == RateLimits(requests=3, tokens=5000, window_s=1.5, per=("key",))
    for flag, value, says in [
        ("--rate-limit-requests", "many", "expected a positive integer"),
        ("--rate-limit-window-s", "0", "above 0"),
        ("--rate-limit-per", "user", "expected key and/or model"),
        ("--jitter", "wobbly", "--jitter (or TOKENHUB_EMULATOR_JITTER): expected uniform(low, high)"),
        ("--ttft-ms", "-1", "'ttft_ms' must be a number of at least 0"),
    ]:
        with pytest.raises(FlagError) as caught:
            settings_from(parse(["serve", flag, value]))
        assert says in str(caught.value)


# ---------------------------------------------------------------- a real server

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
