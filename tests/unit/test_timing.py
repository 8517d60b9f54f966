"""Timing plans: offsets, layering, seeded jitter, chunking; header and scenario errors; the writer's behaviour.

Over HTTP the bounds are generous (the suite runs on a busy 2-core box); bench/ measures the real accuracy.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.errors import ApiError
from emulator.scenarios import ScenarioError, parse_scenario
from emulator.server.delivery import Delivery
from emulator.sse import SseEvent, encode
from emulator.timing import HEADERS, Chunking, Jitter, TimingSpec, seed_material, timing_from_headers

# ---------------------------------------------------------------- plans


def events(tokens: list[int]) -> list[SseEvent]:
    return [SseEvent(str(i), tokens=t) for i, t in enumerate(tokens)]


def offsets_ms(spec: TimingSpec, tokens: list[int], seed: str = "s") -> list[float]:
    plan = spec.plan(lambda: seed)
    return [round(at * 1000, 6) for _, at in plan.schedule(events(tokens))]


def test_framing_first_then_ttft_then_a_delay_per_chunk_and_trailing_framing_at_once() -> None:
    spec = TimingSpec(ttft_ms=200, chunk_delay_ms=50)
    assert offsets_ms(spec, [0, 1, 1, 1, 0, 0]) == [0, 200, 250, 300, 300, 300]


def test_tokens_per_second_paces_by_the_tokens_each_event_carries() -> None:
    spec = TimingSpec(ttft_ms=100, tokens_per_second=20)
    assert offsets_ms(spec, [0, 2, 1, 4, 0]) == [0, 100, 150, 350, 350]


def test_no_timing_is_instant() -> None:
    plan = TimingSpec().plan(lambda: "unused")
    assert plan.instant
    assert [at for _, at in plan.schedule(events([0, 3, 3, 0]))] == [0, 0, 0, 0]


def test_the_more_specific_layer_wins_field_by_field_and_the_pace_is_one_setting() -> None:
    flags = TimingSpec(ttft_ms=500, chunk_delay_ms=10, latency_ms=5)
    scenario = TimingSpec(tokens_per_second=40)
    rule = TimingSpec(ttft_ms=50)
    merged = rule.over(scenario.over(flags))
    assert merged == TimingSpec(ttft_ms=50, chunk_delay_ms=None, tokens_per_second=40, latency_ms=5)
    assert TimingSpec(chunk_delay_ms=0).over(merged).tokens_per_second is None


def test_jitter_is_seeded_and_a_wait_is_never_negative() -> None:
    spec = TimingSpec(ttft_ms=10, chunk_delay_ms=5, jitter=Jitter("normal", 0, 50))
    first = offsets_ms(spec, [0] + [1] * 50, seed="a")
    assert first == offsets_ms(spec, [0] + [1] * 50, seed="a")
    assert first != offsets_ms(spec, [0] + [1] * 50, seed="b")
    assert all(later >= earlier for earlier, later in zip(first, first[1:], strict=False))


@pytest.mark.parametrize(
    ("jitter", "low", "high"),
    [(Jitter("uniform", 5, 10), 5, 10), (Jitter("lognormal", 0, 0.1), 0.7, 1.4), (Jitter("normal", 20, 0), 20, 20)],
)
def test_each_distribution_draws_what_it_says(jitter: Jitter, low: float, high: float) -> None:
    rng = random.Random(1)
    assert all(low <= jitter.sample(rng) <= high for _ in range(200))


def test_the_same_request_under_the_same_seed_draws_the_same_jitter() -> None:
    body = {"b": 1, "a": [1, 2]}
    assert seed_material(3, "t", body) == seed_material(3, "t", {"a": [1, 2], "b": 1})
    assert seed_material(3, "t", body) != seed_material(4, "t", body)
    assert seed_material(3, "t", body) != seed_material(3, "u", body)


@pytest.mark.parametrize(
    ("chunking", "text", "pieces"),
    [
        (Chunking("tokens", 2), "Hello big wide world", ["Hello big", " wide world"]),
        (Chunking("chars", 4), "abcdefghij", ["abcd", "efgh", "ij"]),
        (Chunking("pieces", pieces=("He", "llo")), "Hello", ["He", "llo"]),
        (Chunking("pieces", pieces=("ab", "c")), "0123456", ["01", "2", "34", "5", "6"]),  # other text: by lengths
    ],
)
def test_chunking(chunking: Chunking, text: str, pieces: list[str]) -> None:
    assert chunking.split(text) == pieces
    assert "".join(chunking.split(text)) == text


# ---------------------------------------------------------------- request headers


def test_headers_make_a_timing_spec() -> None:
    spec = timing_from_headers(
        {
            "x-emulator-ttft-ms": "120",
            "x-emulator-tokens-per-second": "50.5",
            "x-emulator-jitter": "uniform(0, 20)",
            "x-emulator-chunk-size": "3 chars",
            "x-emulator-latency-ms": "0",
        }
    )
    assert spec == TimingSpec(
        ttft_ms=120, tokens_per_second=50.5, jitter=Jitter("uniform", 0, 20), chunk=Chunking("chars", 3), latency_ms=0
    )
    assert timing_from_headers({"x-emulator-chunk-size": "4"}).chunk == Chunking("tokens", 4)  # type: ignore[union-attr]
    assert timing_from_headers({"x-emulator-chunk-size": '["a", "b"]'}).chunk == Chunking("pieces", pieces=("a", "b"))  # type: ignore[union-attr]
    assert timing_from_headers({"x-emulator-jitter": "none"}).jitter == Jitter("none")  # type: ignore[union-attr]
    assert timing_from_headers({"x-other": "1"}) is None


@pytest.mark.parametrize(
    ("headers", "named", "says"),
    [
        ({"x-emulator-ttft-ms": "soon"}, "x-emulator-ttft-ms", "expected a number of milliseconds"),
        ({"x-emulator-ttft-ms": "-5"}, "x-emulator-ttft-ms", "'ttft_ms' must be a number of at least 0"),
        ({"x-emulator-chunk-delay-ms": "nan"}, "x-emulator-chunk-delay-ms", "expected a number"),
        ({"x-emulator-tokens-per-second": "0"}, "x-emulator-tokens-per-second", "must be a number above 0"),
        ({"x-emulator-jitter": "gauss(1, 2)"}, "x-emulator-jitter", "uniform(low, high)"),
        ({"x-emulator-jitter": "uniform(9, 1)"}, "x-emulator-jitter", "'high' (1) must not be below 'low' (9)"),
        ({"x-emulator-jitter": "normal(0, -1)"}, "x-emulator-jitter", "'stddev' must be a number of at least 0"),
        ({"x-emulator-jitter": "lognormal(900, 1)"}, "x-emulator-jitter", "'mu' must be a number of at most 20"),
        ({"x-emulator-chunk-size": "0"}, "x-emulator-chunk-size", "'tokens' must be a positive integer"),
        ({"x-emulator-chunk-size": "3 words"}, "x-emulator-chunk-size", "expected N (tokens)"),
        ({"x-emulator-chunk-size": "[1]"}, "x-emulator-chunk-size", "must hold non-empty strings"),
        (
            {"x-emulator-chunk-delay-ms": "5", "x-emulator-tokens-per-second": "5"},
            "x-emulator-tokens-per-second",
            "not both",
        ),
    ],
)
def test_a_bad_header_is_a_400_naming_it(headers: dict[str, str], named: str, says: str) -> None:
    with pytest.raises(ApiError) as caught:
        timing_from_headers(headers)
    failure = caught.value.failure
    assert failure.status == 400 and failure.param == named
    assert failure.message.startswith(f"Invalid header '{named}': ") and says in failure.message


# ---------------------------------------------------------------- scenario keys


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "t.yaml")
    return [f"{p.line}:{p.column}: {p.message}" for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - reply: {}\n    timing: {ttft: 1}\n",
            "3:14: unknown key 'ttft' in timing; did you mean 'ttft_ms'?",
        ),
        ("settings:\n  timing: {chunk_delay_ms: -1}\n", "2:28: 'chunk_delay_ms' must be a number of at least 0"),
        (
            "settings:\n  timing: {jitter: {gaussian: {mean: 1}}}\n",
            "2:21: unknown key 'gaussian' in jitter",
        ),
        ("rules:\n  - reply: {}\n    timing: {jitter: {normal: {mean: 1}}}\n", "'normal' needs 'stddev'"),
        (
            "rules:\n  - reply: {}\n    timing: {chunk: {token: 2}}\n",
            "unknown key 'token' in chunk; did you mean 'tokens'?",
        ),
        ("rules:\n  - reply: {}\n    timing: {chunk: []}\n", "'chunk' as a list must hold non-empty strings"),
        ("rules:\n  - reply: {}\n    timing: 5\n", "3:13: 'timing' must be a mapping of timing settings, got 5"),
        (
            "rules:\n  - reply: {}\n    timing: {chunk_delay_ms: 1, tokens_per_second: 2}\n",
            "give either 'chunk_delay_ms' or 'tokens_per_second', not both",
        ),
        (
            "rules:\n  - sequence:\n      - reply: {}\n        timing: {latency: 5}\n",
            "4:18: unknown key 'latency' in timing; did you mean 'latency_ms'?",
        ),
    ],
)
def test_scenario_timing_problems_are_positioned(text: str, expected: str) -> None:
    assert any(expected in problem for problem in problems(text)), problems(text)


def test_scenario_timing_is_read() -> None:
    scenario = parse_scenario(
        "settings:\n  timing: {ttft_ms: 5, jitter: none}\n"
        "rules:\n  - reply: {}\n    timing: {chunk: [a, b], tokens_per_second: 9}\n"
    )
    assert scenario.settings.timing == TimingSpec(ttft_ms=5, jitter=Jitter("none"))


# ---------------------------------------------------------------- the writer


def test_a_client_that_leaves_stops_the_stream_at_once_and_leaks_no_task() -> None:
    async def run() -> tuple[float, int, list[bool]]:
        sent: list[dict[str, object]] = []
        gone: list[bool] = []

        async def receive() -> dict[str, str]:
            await asyncio.sleep(0.05)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        parts = ((encode(SseEvent(str(i), tokens=1)), i * 1.0) for i in range(100))  # 100 s of stream
        delivery = Delivery(200, {}, parts, chunked=True, on_done=gone.append)
        started = time.perf_counter()
        await delivery({"type": "http", "http_version": "1.1"}, receive, send)
        await asyncio.sleep(0)
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return time.perf_counter() - started, len(left), gone

    took, leftover, gone = asyncio.run(run())
    assert took < 1.0
    assert leftover == 0
    assert gone == [True]


TIMING_VALUES = st.sampled_from(
    ["0", "-1", "1e400", "nan", "inf", "5", "2.5", "uniform(1,2)", "normal(0, -1)", "lognormal(1e9, 1)", "3 chars"]
    + ['["a"]', "[]", "[1]", '{"a": 1}', "none", "", " ", "uniform(a,b)", "7 tokens", "0 chars"]
) | st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(HEADERS)), TIMING_VALUES, max_size=3))
def test_any_timing_headers_are_a_plan_or_a_400(headers: dict[str, str]) -> None:
    try:
        spec = timing_from_headers(headers)
    except ApiError as error:
        assert error.failure.status == 400 and error.failure.param in HEADERS
        return
    if spec is not None:
        plan = spec.plan(lambda: "seed")
        list(plan.schedule(events([0, 1, 2, 0])))
        if plan.chunk is not None:
            assert "".join(plan.chunk.split("some text here")) == "some text here"
