"""Timing plans: offsets, layering, seeded jitter, chunking; header and scenario errors; the writer's behaviour.

Over HTTP the bounds are generous (the suite runs on a busy 2-core box); bench/ measures the real accuracy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from emulator.sse import SseEvent
from tests.helpers.servers import RunningServer, start_server, stop_server

# ---------------------------------------------------------------- plans


def events(tokens: list[int]) -> list[SseEvent]:
    return [SseEvent(str(i), tokens=t) for i, t in enumerate(tokens)]


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
    # the plan the journal recorded: the rule's ttft (20, not the scenario's 150), then the scenario's chunk delay
    due = sorted({plan for plan in journaled(timed, "timing-rule-timed-0")["planned_ms"] if plan > 0})
    assert due == [20, 60, 100], due
    assert all(at >= plan - 1 for (at, _), plan in zip(contents, due, strict=True)), contents  # never early


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
