"""Rate limits kept in the shared state: the same buckets, refusals and headers as emulator/ratelimit.py, the
levels held in Redis (on its clock) so that a limit holds across every worker and replica."""

from __future__ import annotations

import asyncio
import math

from emulator.exchange import Exchange
from emulator.ratelimit import Admission, Bucket, Limiter, LimitHeaders
from emulator.state.redis_state import RedisState, StateUnavailable, log


def _limits(limiter: Limiter) -> tuple[int, int, int]:
    limits = limiter.limits
    return limits.requests or 0, limits.tokens or 0, limits.concurrency or 0


def _bucket_key(key: tuple[str, ...]) -> str:
    return "\x1f".join(key)


def _buckets(limiter: Limiter, answer: list[str]) -> tuple[Bucket | None, Bucket | None]:
    limits, now = limiter.limits, float(answer[3])
    requests = tokens = None
    if answer[1] and limits.requests is not None:
        requests = Bucket(limits.requests, limits.requests / limits.window_s, float(answer[1]), now)
    if answer[2] and limits.tokens is not None:
        tokens = Bucket(limits.tokens, limits.tokens / limits.window_s, float(answer[2]), now)
    return requests, tokens


async def admit(
    state: RedisState, limiter: Limiter, exchange: Exchange, prompt: int, family: LimitHeaders
) -> Admission:
    key = limiter._key(exchange)
    limits = limiter.limits
    answer = await state.take(_bucket_key(key), "admit", limits.window_s, _limits(limiter), prompt)
    reason = answer[0] or None
    requests, tokens = _buckets(limiter, answer)
    headers = Limiter._headers(requests, tokens, family)
    if reason is None:
        return Admission(headers, bucket_key=key, holds_slot=limits.concurrency is not None)
    wait, used, asked = 0.0, 0, 1
    if reason == "requests" and requests is not None:
        wait, used = requests.wait_for(1), requests.limit - math.floor(requests.level)
    elif reason == "tokens" and tokens is not None:
        wait, used, asked = tokens.wait_for(prompt), tokens.limit - math.floor(tokens.level), prompt
    refusal = limiter._refusal(reason, exchange.model, wait, used, asked, headers)
    return Admission(headers, refusal=refusal, bucket_key=key, reason=reason)


async def charge(
    state: RedisState, limiter: Limiter, admission: Admission, completion: int, family: LimitHeaders
) -> dict[str, str]:
    limits = limiter.limits
    key = _bucket_key(admission.bucket_key)
    answer = await state.take(key, "charge", limits.window_s, _limits(limiter), completion)
    return Limiter._headers(*_buckets(limiter, answer), family)


def release(state: RedisState, limiter: Limiter, admission: Admission) -> None:
    """The request's concurrency slot back, once its answer is over (written after it)."""
    if not admission.holds_slot:
        return

    async def give_back() -> None:
        try:
            await state.take(_bucket_key(admission.bucket_key), "release", 1, _limits(limiter), 0)
        except StateUnavailable as error:
            log.warning("a concurrency slot was not given back: %s", error)

    asyncio.get_running_loop().create_task(give_back())
