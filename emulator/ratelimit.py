"""Real rate limits: token buckets for requests and tokens per window, a concurrency cap, and the gateways' headers.

A bucket holds `limit` units and refills continuously at `limit / window_s` per second; a request takes one
request unit and its prompt tokens when it is admitted, and its completion tokens once the reply is known
(the token bucket may go below zero: the next requests wait longer). Buckets are kept per API key and
model by default (`per`). Every response carries the remaining/reset headers while limits are configured.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emulator.exchange import Exchange, Failure
from emulator.specparse import INVALID, SpecReader, shown, words

RATE_LIMIT_KEYS = ("requests", "tokens", "window_s", "concurrency", "per")
PER_DIMENSIONS = ("key", "model")


@dataclass(frozen=True)
class RateLimits:
    requests: int | None = None  # per window
    tokens: int | None = None  # per window
    window_s: float = 60.0
    concurrency: int | None = None  # requests open at once (streams included)
    per: tuple[str, ...] = PER_DIMENSIONS  # what a bucket is kept per: key, model, both, or () for one for all

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.requests, self.tokens, self.concurrency))


def parse_rate_limits(reader: SpecReader, data: Mapping[str, Any], where: str = "in rate_limits") -> Any:
    reader.keys(data, RATE_LIMIT_KEYS, where)
    values: dict[str, Any] = {}
    for key in ("requests", "tokens", "concurrency"):
        if key in data:
            values[key] = reader.integer(data, key, low=1)
    if "window_s" in data:
        values["window_s"] = reader.number(data, "window_s", low=0, above=True, unit=" (seconds)")
    if "per" in data:
        values["per"] = _per(reader, data)
    if INVALID in values.values() or any(key not in RATE_LIMIT_KEYS for key in data):
        return INVALID
    if "window_s" in values:
        values["window_s"] = float(values["window_s"])
    return RateLimits(**values)


def _per(reader: SpecReader, data: Mapping[str, Any]) -> Any:
    value = data["per"]
    items = [value] if isinstance(value, str) else value
    if isinstance(items, list | tuple) and all(isinstance(i, str) and i in PER_DIMENSIONS for i in items):
        return tuple(d for d in PER_DIMENSIONS if d in items)
    return reader.error(
        data, "per", f"'per' must be key, model, a list of them, or [] (one bucket for all), got {shown(value)}"
    )


def parse_per_flag(text: str) -> tuple[str, ...]:
    """`key,model` / `key` / `model` / `none` (the --rate-limit-per flag); ValueError when wrong."""
    items = [] if text.strip().lower() in ("", "none") else [i.strip() for i in text.split(",")]
    wrong = [i for i in items if i not in PER_DIMENSIONS]
    if wrong:
        raise ValueError(f"expected {words(PER_DIMENSIONS, 'and/or')} separated by commas, or none, got {text!r}")
    return tuple(d for d in PER_DIMENSIONS if d in items)


# ---------------------------------------------------------------- header formats


def go_duration(seconds: float) -> str:
    """A duration the way the OpenAI headers write it (Go's time.Duration): `20ms`, `1s`, `7.66s`, `6m0s`, `1h0m0s`."""
    ms = max(0, round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def rfc3339(timestamp: float) -> str:
    """`2025-01-01T12:00:30Z`, as the anthropic-ratelimit-*-reset headers write it."""
    return datetime.fromtimestamp(math.ceil(timestamp), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def retry_headers(seconds: float) -> dict[str, str]:
    """`retry-after` in whole seconds (rounded up), `retry-after-ms` exactly."""
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(0, round(seconds * 1000)))}


@dataclass(frozen=True)
class BucketState:
    limit: int
    remaining: int
    reset_s: float  # until the bucket is full again


# A family of rate-limit headers: the request and token buckets' states → the headers that report them.
# Each protocol's adapter says which family its gateways send (emulator/protocols/base.py).
LimitHeaders = Callable[[BucketState | None, BucketState | None], dict[str, str]]


def openai_limit_headers(requests: BucketState | None, tokens: BucketState | None) -> dict[str, str]:
    """OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the reset as a Go duration (`6m0s`)."""
    headers: dict[str, str] = {}
    for name, state in (("requests", requests), ("tokens", tokens)):
        if state is not None:
            headers[f"x-ratelimit-limit-{name}"] = str(state.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(state.remaining)
            headers[f"x-ratelimit-reset-{name}"] = go_duration(state.reset_s)
    return headers


def anthropic_limit_headers(requests: BucketState | None, tokens: BucketState | None) -> dict[str, str]:
    """Anthropic's `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`, the reset as an RFC 3339 time."""
    headers: dict[str, str] = {}
    now = time.time()
    for name, state in (("requests", requests), ("tokens", tokens)):
        if state is not None:
            headers[f"anthropic-ratelimit-{name}-limit"] = str(state.limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(state.remaining)
            headers[f"anthropic-ratelimit-{name}-reset"] = rfc3339(now + state.reset_s)
    return headers


def exhausted_headers(family: LimitHeaders, retry_s: float) -> dict[str, str]:
    """What a gateway's 429 says when no limiter is configured (a scripted 429): the request budget is spent."""
    return family(BucketState(60, 0, retry_s), BucketState(150_000, 150_000, 0.0))


# ---------------------------------------------------------------- buckets


@dataclass
class Bucket:
    limit: int
    rate: float  # units per second
    level: float = field(default=-1.0)
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.level < 0:
            self.level = float(self.limit)

    def refill(self, now: float) -> None:
        self.level = min(self.limit, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` units are there (after refill)."""
        return max(0.0, (min(amount, self.limit) - self.level) / self.rate)

    def state(self) -> BucketState:
        return BucketState(self.limit, max(0, math.floor(self.level)), (self.limit - self.level) / self.rate)


@dataclass
class Admission:
    """What the limiter decided for one request: refused (a 429 Failure) or admitted, and the headers to send."""

    headers: dict[str, str]
    refusal: Failure | None = None
    bucket_key: tuple[str, ...] = ()
    holds_slot: bool = False
    reason: str | None = None  # requests | tokens | concurrency


MAX_BUCKETS = 10_000  # buckets of one kind kept before the full ones are forgotten


class Limiter:
    def __init__(self, limits: RateLimits, clock: Any = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._requests: dict[tuple[str, ...], Bucket] = {}
        self._tokens: dict[tuple[str, ...], Bucket] = {}
        self._open: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()
        self._sweep_at = MAX_BUCKETS

    def _key(self, exchange: Exchange) -> tuple[str, ...]:
        return tuple(exchange.api_key if d == "key" else exchange.model for d in self.limits.per)

    def _buckets(self, key: tuple[str, ...], now: float) -> tuple[Bucket | None, Bucket | None]:
        limits = self.limits
        requests = tokens = None
        if max(len(self._requests), len(self._tokens)) >= self._sweep_at and key not in self._requests:
            self._sweep(now)
        if limits.requests is not None:
            requests = self._requests.setdefault(key, Bucket(limits.requests, limits.requests / limits.window_s))
            requests.refill(now)
        if limits.tokens is not None:
            tokens = self._tokens.setdefault(key, Bucket(limits.tokens, limits.tokens / limits.window_s))
            tokens.refill(now)
        return requests, tokens

    def _sweep(self, now: float) -> None:
        """Forget the buckets that have refilled (a new one would be the same): endless API keys, bounded memory."""
        for buckets in (self._requests, self._tokens):
            full = [
                k for k, b in buckets.items() if k not in self._open and b.level + (now - b.updated) * b.rate >= b.limit
            ]
            for key in full:
                del buckets[key]
        self._sweep_at = max(MAX_BUCKETS, 2 * max(len(self._requests), len(self._tokens)))

    def admit(self, exchange: Exchange, prompt_tokens: int, family: LimitHeaders) -> Admission:
        key = self._key(exchange)
        with self._lock:
            now = self.clock()
            requests, tokens = self._buckets(key, now)
            reason, wait, used, asked = None, 0.0, 0, 1
            if self.limits.concurrency is not None and self._open.get(key, 0) >= self.limits.concurrency:
                reason = "concurrency"
            elif requests is not None and requests.level < 1:
                reason, wait, used = "requests", requests.wait_for(1), requests.limit - math.floor(requests.level)
            elif tokens is not None and tokens.level < min(prompt_tokens, tokens.limit):
                reason, wait = "tokens", tokens.wait_for(prompt_tokens)
                used, asked = tokens.limit - math.floor(tokens.level), prompt_tokens
            if reason is None:
                if requests is not None:
                    requests.level -= 1
                if tokens is not None:
                    tokens.level -= prompt_tokens
                if self.limits.concurrency is not None:
                    self._open[key] = self._open.get(key, 0) + 1
            headers = self._headers(requests, tokens, family)
        if reason is None:
            return Admission(headers, bucket_key=key, holds_slot=self.limits.concurrency is not None)
        return Admission(
            headers,
            refusal=self._refusal(reason, exchange.model, wait, used, asked, headers),
            bucket_key=key,
            reason=reason,
        )

    def charge(self, admission: Admission, completion_tokens: int, family: LimitHeaders) -> dict[str, str]:
        """Take the completion's tokens; the headers as they stand afterwards."""
        with self._lock:
            requests, tokens = self._buckets(admission.bucket_key, self.clock())
            if tokens is not None:
                tokens.level -= completion_tokens
            return self._headers(requests, tokens, family)

    def release(self, admission: Admission) -> None:
        if not admission.holds_slot:
            return
        with self._lock:
            count = self._open.get(admission.bucket_key, 0) - 1
            if count > 0:
                self._open[admission.bucket_key] = count
            else:
                self._open.pop(admission.bucket_key, None)

    def state(self, exchange: Exchange) -> tuple[BucketState | None, BucketState | None]:
        with self._lock:
            requests, tokens = self._buckets(self._key(exchange), self.clock())
            return (requests.state() if requests else None, tokens.state() if tokens else None)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._tokens.clear()

    @staticmethod
    def _headers(requests: Bucket | None, tokens: Bucket | None, family: LimitHeaders) -> dict[str, str]:
        return family(requests.state() if requests else None, tokens.state() if tokens else None)

    def _refusal(self, reason: str, model: str, wait: float, used: int, asked: int, headers: dict[str, str]) -> Failure:
        per = "min" if self.limits.window_s == 60 else f"{self.limits.window_s:g}s"
        if reason == "concurrency":
            message = (
                f"Too many concurrent requests for {model}: the limit is {self.limits.concurrency} open at once. "
                "Please retry when one has finished."
            )
            return Failure(status=429, message=message, headers={**headers, **retry_headers(1.0)})
        limit = self.limits.requests if reason == "requests" else self.limits.tokens
        unit = "RPM" if reason == "requests" else "TPM"
        message = (
            f"Rate limit reached for {model} on {reason} per {per} ({unit}): Limit {limit}, Used {used}, "
            f"Requested {asked}. Please try again in {go_duration(wait)}."
        )
        return Failure(status=429, message=message, headers={**headers, **retry_headers(wait)})

