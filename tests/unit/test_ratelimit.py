"""Rate limits: token buckets, the gateways' header formats, and a real server refusing a burst and serving
again once the bucket has refilled (the wait is read from the headers, not guessed)."""

from __future__ import annotations

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
