"""The time scale: every planned wait carried out at a fraction of its length, the event order and the relative
pacing unchanged, and the journal keeping the planned times beside the real ones. Judged from the journal."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.sdk

SCENARIO = """
rules:
  - when: {last_user: {contains: pace}}
    timing: {ttft_ms: 500, chunk_delay_ms: 100, chunk: {tokens: 2}}
    reply: {content: "One two three four five six seven eight nine ten eleven twelve."}
  - when: {last_user: {contains: slow}}
    timing: {latency_ms: 400}
    reply: {content: "A slow answer."}
"""


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tokenhub-emulator serve --time-scale 0.1`, its URL."""
    path = tmp_path_factory.mktemp("scale") / "pace.yaml"
    path.write_text(SCENARIO)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_EMULATOR_")}
    command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning"]
    process = subprocess.Popen(
        [*command, "--scenario", str(path), "--time-scale", "0.1"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "listening on" in line, line
    yield line.rsplit(" ", 1)[-1].strip()
    process.terminate()
    process.wait(timeout=10)


def _stream(url: str, test_id: str, scale: str | None = None) -> list[str]:
    headers = {"x-emulator-test-id": test_id, **({"x-emulator-time-scale": scale} if scale else {})}
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-test", default_headers=headers, max_retries=0)
    stream = client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "pace"}], stream=True)
    return [c.choices[0].delta.content or "" for c in stream if c.choices]


def _entry(url: str, test_id: str) -> dict[str, Any]:
    entries = httpx.get(url + "/_emulator/journal", params={"test_id": test_id}).json()["data"]
    return entries[-1]  # type: ignore[no-any-return]


def test_a_tenth_of_the_time_same_order_same_plan(scaled: str) -> None:
    unscaled_events = _stream(scaled, "unscaled", scale="1")  # the header wins over the flag
    scaled_events = _stream(scaled, "scaled")
    assert scaled_events == unscaled_events  # the same events, in the same order
    slow, fast = _entry(scaled, "unscaled"), _entry(scaled, "scaled")
    assert slow["planned_ms"] == fast["planned_ms"]  # the plan is the scenario's, whatever the scale
    assert fast["time_scale"] == 0.1 and slow["time_scale"] is None
    planned_end = fast["planned_ms"][-1]
    assert planned_end >= 500 + 5 * 100  # ttft, then a chunk delay per later token-carrying chunk
    slow_end, fast_end = slow["chunk_times_ms"][-1], fast["chunk_times_ms"][-1]
    assert slow_end >= planned_end - 1  # deadlines are absolute: never early (but for the loop clock's grain)
    assert fast_end >= planned_end * 0.1 - 1
    assert fast_end / slow_end < 0.3, (fast_end, slow_end)  # about a tenth, with room for a loaded machine
    # the relative pacing: a write for each token-carrying chunk (the framing goes with the headers or the
    # chunk before it), each no sooner than its planned offset times the scale
    due = sorted({plan for plan in fast["planned_ms"] if plan > 0})
    writes = fast["chunk_times_ms"][-len(due) :]
    assert all(real >= plan * 0.1 - 1 for real, plan in zip(writes, due, strict=True)), (writes, due)


def test_a_non_streamed_wait_is_scaled_and_its_plan_kept(scaled: str) -> None:
    headers = {"x-emulator-test-id": "json-scaled", "authorization": "Bearer sk-test"}
    answer = httpx.post(
        scaled + "/v1/chat/completions",
        headers=headers,
        json={"model": "glm-5", "messages": [{"role": "user", "content": "slow"}]},
    )
    assert answer.status_code == 200
    entry = _entry(scaled, "json-scaled")
    assert entry["planned_ms"] == [400.0] and entry["time_scale"] == 0.1
    assert 40 - 1 <= entry["duration_ms"] < 300, entry["duration_ms"]  # the loop clock may fire a hair early


def test_a_bad_time_scale_header_is_a_400_naming_it(scaled: str) -> None:
    answer = httpx.post(
        scaled + "/v1/chat/completions",
        headers={"authorization": "Bearer sk-test", "x-emulator-time-scale": "0"},
        json={"model": "glm-5", "messages": [{"role": "user", "content": "pace"}]},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("Invalid header 'x-emulator-time-scale': ")


def test_settings_time_scale_in_a_scenario(tokenhub_emulator: Any) -> None:
    tokenhub_emulator.load(
        "settings: {time_scale: 0.5}\n"
        "rules: [{when: {last_user: hi}, timing: {latency_ms: 200}, reply: {content: hello}}]"
    )
    tokenhub_emulator.openai().chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "hi"}])
    entry = tokenhub_emulator.last_request.data
    assert entry["planned_ms"] == [200.0] and entry["time_scale"] == 0.5
    assert entry["duration_ms"] >= 100 - 1


def test_time_scale_given_twice_in_settings_is_a_positioned_error(tokenhub_emulator: Any) -> None:
    from emulator.testing import EmulatorError

    with pytest.raises(EmulatorError, match=r"test_time_scale_given_twice\w*:1:\d+: give 'time_scale' once"):
        tokenhub_emulator.load("settings: {time_scale: 0.5, timing: {time_scale: 0.2}}\nrules: []")


@pytest.mark.parametrize(("asked", "expected_ms"), [(None, "1000"), ("true", "100")])
def test_retry_after_stays_as_sent_unless_asked(scaled: str, asked: str | None, expected_ms: str) -> None:
    headers = {"authorization": "Bearer sk-test", "x-emulator-fault": "error=429; retry_after_ms=1000"}
    if asked:
        headers["x-emulator-scale-retry-after"] = asked
    answer = httpx.post(
        scaled + "/v1/chat/completions",
        headers=headers,
        json={"model": "glm-5", "messages": [{"role": "user", "content": "pace"}]},
    )
    assert answer.status_code == 429
    assert answer.headers["retry-after-ms"] == expected_ms and answer.headers["retry-after"] == "1"
