"""`serve`'s flags for the pace and the limits of traffic: the timing defaults (the same forms as the
x-emulator-* request headers) and the rate limits, each with its TOKENHUB_EMULATOR_* variable."""

from __future__ import annotations

import argparse
import math
from typing import Any

from emulator.cli.options import FlagError, option
from emulator.config import env_name
from emulator.loop_guard import LoopGuard, parse_loop_guard
from emulator.ratelimit import RateLimits, parse_per_flag
from emulator.specparse import INVALID, Collected, SpecReader
from emulator.timing import TimingSpec, TimingValueError, timing_from_strings

# flag → (timing key, help)
TIMING_FLAGS: dict[str, tuple[str, str]] = {
    "ttft-ms": ("ttft_ms", "time to first token, in milliseconds"),
    "chunk-delay-ms": ("chunk_delay_ms", "milliseconds between streamed chunks"),
    "tokens-per-second": ("tokens_per_second", "stream pace in tokens per second (instead of --chunk-delay-ms)"),
    "jitter": ("jitter", "added to each wait: uniform(low,high), normal(mean,stddev), lognormal(mu,sigma) (ms)"),
    "chunk-size": ("chunk", "N tokens per chunk, 'N chars', or a JSON list of chunks"),
    "latency-ms": ("latency_ms", "total latency of a non-streamed reply, in milliseconds"),
    "time-scale": ("time_scale", "multiply every planned wait (TTFT, chunk delays, latency, stalls) by this, e.g. 0.1"),
}
LIMIT_FLAGS: dict[str, str] = {
    "rate-limit-requests": "requests per window, per bucket (token bucket)",
    "rate-limit-tokens": "tokens per window, per bucket",
    "rate-limit-window-s": "the window in seconds",
    "rate-limit-concurrency": "requests open at once, per bucket; one more gets a 429",
    "rate-limit-per": "what a bucket is kept per: key,model, key, model or none",
}
LIMIT_DEFAULTS = {"rate-limit-window-s": "60", "rate-limit-per": "key,model"}
LOOP_FLAGS: dict[str, str] = {
    "loop-guard-repeats": "flag a client that sends the same conversation state, or gets the same tool call, this "
    "many times in a row (journal and report)",
    "loop-guard-stop-after": "answer the request after this many repeats with an error (400 agent_loop_detected)",
}


def _setting(flag: str) -> str:
    return flag.replace("-", "_")


def add_serve_flags(serve: argparse.ArgumentParser) -> None:
    timing = serve.add_argument_group("timing (request headers x-emulator-* override them per request)")
    for flag, (_, help) in TIMING_FLAGS.items():
        option(serve, f"--{flag}", group=timing, metavar="VALUE", help=help, shown_default="none")
    loops = serve.add_argument_group("agent-loop guard (a scenario's settings.loop_guard replaces it)")
    for flag, help in LOOP_FLAGS.items():
        option(serve, f"--{flag}", group=loops, metavar="N", help=help, shown_default="off")
    limits = serve.add_argument_group("rate limits (a scenario's settings.rate_limits replaces them)")
    for flag, help in LIMIT_FLAGS.items():
        option(serve, f"--{flag}", group=limits, metavar="VALUE", help=help, shown_default=LIMIT_DEFAULTS.get(flag))


def _fail(flag: str, message: str) -> FlagError:
    return FlagError(f"--{flag} (or {env_name(_setting(flag))}): {message}")


def timing_from_args(args: argparse.Namespace) -> TimingSpec | None:
    given = {
        key: (flag, getattr(args, _setting(flag)))
        for flag, (key, _) in TIMING_FLAGS.items()
        if getattr(args, _setting(flag), None) not in (None, "")
    }
    if not given:
        return None
    try:
        return timing_from_strings(given)
    except TimingValueError as error:
        raise _fail(error.name, error.message) from None


def rate_limits_from_args(args: argparse.Namespace) -> RateLimits | None:
    values: dict[str, Any] = {}
    for flag, field in (
        ("rate-limit-requests", "requests"),
        ("rate-limit-tokens", "tokens"),
        ("rate-limit-concurrency", "concurrency"),
    ):
        raw = getattr(args, _setting(flag), None)
        if raw not in (None, ""):
            if not str(raw).isdigit() or int(raw) < 1:
                raise _fail(flag, f"expected a positive integer, got {raw!r}")
            values[field] = int(raw)
    window = getattr(args, "rate_limit_window_s", None)
    if window not in (None, ""):
        try:
            seconds = float(window)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds <= 0:
            raise _fail("rate-limit-window-s", f"expected a number of seconds above 0, got {window!r}")
        values["window_s"] = seconds
    per = getattr(args, "rate_limit_per", None)
    if per not in (None, ""):
        try:
            values["per"] = parse_per_flag(per)
        except ValueError as error:
            raise _fail("rate-limit-per", str(error)) from None
    limits = RateLimits(**values)
    return limits if limits.active else None


def loop_guard_from_args(args: argparse.Namespace) -> LoopGuard | None:
    given = {
        key: getattr(args, _setting(flag))
        for flag, key in (("loop-guard-repeats", "repeats"), ("loop-guard-stop-after", "stop_after"))
        if getattr(args, _setting(flag), None) not in (None, "")
    }
    if not given:
        return None
    values: dict[str, Any] = {}
    for key, raw in given.items():
        if not str(raw).isdigit() or int(raw) < 2:
            raise _fail(f"loop-guard-{key.replace('_', '-')}", f"expected an integer of at least 2, got {raw!r}")
        values[key] = int(raw)
    collected = Collected()
    guard = parse_loop_guard(SpecReader(collected), values)
    if guard is INVALID:
        raise _fail("loop-guard-stop-after", collected.messages[0])
    return guard
