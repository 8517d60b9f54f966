"""Timing plans: offsets, layering, seeded jitter, chunking; header and scenario errors; the writer's behaviour.

Over HTTP the bounds are generous (the suite runs on a busy 2-core box); bench/ measures the real accuracy.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.errors import ApiError
from emulator.scenarios import ScenarioError, parse_scenario
from emulator.server.delivery import Delivery
from emulator.sse import SseEvent, encode
from emulator.timing import HEADERS, Chunking, Jitter, TimingSpec, seed_material, timing_from_headers
from tests.helpers.servers import RunningServer, start_server, stop_server

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


# ---------------------------------------------------------------- over HTTP

SCENARIO = """
settings:
  timing: {ttft_ms: 150, chunk_delay_ms: 40}
rules:
  - name: scenario timing
    when: {last_user: timed}
    reply: {content: "one two three four five six"}
  - name: rule timing
    when: {last_user: rule-timed}
    timing: {ttft_ms: 20, chunk: {chars: 4}}
    reply: {content: abcdefghijkl}
  - name: slow json
    when: {last_user: slow}
    timing: {latency_ms: 300}
    reply: {content: slow}
  - name: long
    when: {last_user: long}
    timing: {ttft_ms: 0, chunk_delay_ms: 200}
    reply: {content: "a b c d e f g h i j k l m n o p q r s t"}
"""


@pytest.fixture(scope="module")
def timed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path = tmp_path_factory.mktemp("timing") / "timing.yaml"
    path.write_text(SCENARIO)
    running = start_server("--scenario", str(path), env={"TOKENHUB_EMULATOR_LATENCY_MS": "150"})
    yield running
    stop_server(running)


def journaled(server: RunningServer, test_id: str) -> dict:
    """The journal's last entry for `test_id`, once the server has finished writing it."""
    with server.http() as client:
        entries = client.get("/_emulator/journal", params={"test_id": test_id}).json()["data"]
    assert entries and entries[-1]["duration_ms"] is not None, entries
    return entries[-1]


def stream(server: RunningServer, text: str, headers: dict[str, str] | None = None) -> list[tuple[float, dict]]:
    """(ms after the first event, on the server's clock, as its journal recorded the write; chunk) per data event.

    Each SSE event is written as one part and journaled as one chunk time, so the i-th event read is the i-th
    time in `chunk_times_ms`; the client's clock is not used (buffering on a busy machine bunches arrivals).
    """
    test_id = f"timing-{text}-{len(headers or {})}"
    body = {"model": "glm-5", "stream": True, "messages": [{"role": "user", "content": text}]}
    events = []
    with server.http(headers={"x-emulator-test-id": test_id}) as client:
        client.delete("/_emulator/journal", params={"test_id": test_id})
        with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            assert r.status_code == 200, r.read()
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    times = journaled(server, test_id)["chunk_times_ms"]
    assert len(times) == len(events) + 1  # and the [DONE] event
    return [(at - times[0], event) for at, event in zip(times, events, strict=False)]


def content_times(chunks: list[tuple[float, dict]]) -> list[tuple[float, str]]:
    return [(t, c["choices"][0]["delta"]["content"]) for t, c in chunks if c["choices"][0]["delta"].get("content")]


def test_a_scenario_paces_its_stream(timed: RunningServer) -> None:
    chunks = stream(timed, "timed")
    contents = content_times(chunks)
    assert [c for _, c in contents] == ["one", " two", " three", " four", " five", " six"]
    assert contents[0][0] < 600  # the role chunk goes out with the headers, the first token 150 ms later …
    planned = [150 + 40 * k for k in range(len(contents))]  # … then one every 40 ms, each due from the stream start
    assert all(at >= due - 1 for (at, _), due in zip(contents, planned, strict=True)), contents  # never early


def test_a_rule_overrides_the_scenario_field_by_field(timed: RunningServer) -> None:
    contents = content_times(stream(timed, "rule-timed"))
    assert [c for _, c in contents] == ["abcd", "efgh", "ijkl"]  # the rule's chunking
    assert 19 <= contents[0][0] < 140  # the rule's ttft (20) …
    assert contents[-1][0] - contents[0][0] >= 2 * 40 - 1  # … and the scenario's chunk delay


def test_request_headers_override_everything(timed: RunningServer) -> None:
    contents = content_times(
        stream(
            timed, "timed", {"x-emulator-ttft-ms": "0", "x-emulator-chunk-delay-ms": "0", "x-emulator-chunk-size": "3"}
        )
    )
    assert [c for _, c in contents] == ["one two three", " four five six"]
    assert contents[-1][0] < 140


def test_a_non_streamed_reply_takes_its_latency(timed: RunningServer) -> None:
    """`first_byte_ms` in the journal is when the reply left, counted from the request's arrival."""
    body = {"model": "glm-5", "messages": [{"role": "user", "content": "slow"}]}
    with timed.http(headers={"x-emulator-test-id": "latency"}) as client:
        client.post("/v1/chat/completions", json={**body, "messages": [{"role": "user", "content": "timed"}]})
        assert journaled(timed, "latency")["first_byte_ms"] >= 149  # the server-wide latency (environment)
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        assert journaled(timed, "latency")["first_byte_ms"] >= 299  # the rule's
        response = client.post("/v1/chat/completions", json=body, headers={"x-emulator-latency-ms": "0"})
        assert response.json()["choices"][0]["message"]["content"] == "slow"
        assert journaled(timed, "latency")["first_byte_ms"] < 150  # the header's


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_bad_timing_header_is_a_400_in_the_protocols_envelope(timed: RunningServer, path: str) -> None:
    body = {"model": "glm-5", "max_tokens": 10, "messages": [{"role": "user", "content": "timed"}]}
    with timed.http() as client:
        response = client.post(
            path, json=body, headers={"x-emulator-jitter": "wobbly", "anthropic-version": "2023-06-01"}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "x-emulator-jitter" in error["message"]
    if path == "/v1/messages":
        assert response.json()["type"] == "error" and error["type"] == "invalid_request_error"
    else:
        assert error["param"] == "x-emulator-jitter"


def test_a_disconnect_stops_the_stream_and_is_journaled(timed: RunningServer) -> None:
    body = {"model": "glm-5", "stream": True, "messages": [{"role": "user", "content": "long"}]}
    headers = {"x-emulator-test-id": "leaver"}
    with httpx.Client(base_url=timed.url, headers={"authorization": "Bearer sk", **headers}, timeout=10) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            next(response.iter_lines())
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            entries = client.get("/_emulator/journal", params={"test_id": "leaver"}).json()["data"]
            if entries and entries[-1]["duration_ms"] is not None:
                break
            time.sleep(0.05)
    entry = entries[-1]
    assert entry["disconnected"] is True
    assert entry["duration_ms"] < 2000  # the plan ran to 4 s
    assert len(entry["chunk_times_ms"]) < 10


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
