"""The resilience report: right for a client that behaves and for one that does not, as JSON and from the CLI."""

from __future__ import annotations

import pytest

from emulator.faults.report import backoff_shape, render, report
from emulator.journal import Entry, Journal

BODY = {"model": "glm-5", "messages": [{"role": "user", "content": "hi"}]}


def entry(number: int, at: float, status: int | None, took_ms: float = 10, **headers: str) -> Entry:
    made = Journal().open("POST", "/v1/chat/completions", {"authorization": "Bearer sk-12345678"}, "chat")
    made.id, made.time, made.test_id, made.model, made.status = number, at, "t", "glm-5", status
    made.body, made.response_headers, made.duration_ms = BODY, headers, took_ms
    return made


def test_a_client_that_waits_as_told() -> None:
    entries = [
        entry(1, 0.0, 429, **{"retry-after-ms": "400", "retry-after": "1"}),
        entry(2, 0.45, 503),
        entry(3, 1.0, 200),
    ]
    data = report(entries, {1: "error 429", 2: "error 503"}, "t")
    assert data["ok"] is True and data["problems"] == []
    chain = data["chains"][0]
    assert chain["retries"] == 2 and chain["gave_up"] is False and chain["last_outcome"] == "200 ok"
    assert chain["waits_ms"] == pytest.approx([440, 540], abs=0.2)
    assert chain["attempts"][1]["honored_retry_after"] is True
    assert data["faults"] == {
        "error 429": {"seen": 1, "retried": 1, "honored_retry_after": 1},
        "error 503": {"seen": 1, "retried": 1, "honored_retry_after": 0},
    }
    assert "OK" in render(data).splitlines()[0]


def test_a_client_that_hurries_retries_a_400_and_gives_up() -> None:
    entries = [
        entry(1, 0.0, 429, **{"retry-after-ms": "1000"}),
        entry(2, 0.02, 429, **{"retry-after-ms": "1000"}),
        entry(3, 0.04, 400),
        entry(4, 0.06, 400),
    ]
    data = report(entries, {}, None)
    chain = data["chains"][0]
    assert data["ok"] is False
    assert chain["retried_too_early"] == [2, 3] and chain["retried_non_retryable"] == [4]
    assert chain["gave_up"] is True and chain["last_outcome"] == "400"
    assert len(data["problems"]) == 3
    assert "attempt 2 came 10 ms after '429', which asked to wait 1000 ms" in data["problems"][0]
    assert "attempt 4 retried '400', which is not retryable" in data["problems"][2]
    assert "3 PROBLEM(S)" in render(data)


def test_x_should_retry_decides_what_is_retryable() -> None:
    entries = [entry(1, 0.0, 503, **{"x-should-retry": "false"}), entry(2, 1.0, 200)]
    assert report(entries, {}, None)["chains"][0]["retried_non_retryable"] == [2]


def test_chains_split_on_success_on_a_new_body_and_on_an_sdk_first_attempt() -> None:
    other = entry(3, 0.3, 200)
    other.body = {"model": "glm-5", "messages": [{"role": "user", "content": "other"}]}
    fresh = entry(4, 0.4, 500)
    fresh.headers["x-stainless-retry-count"] = "0"
    entries = [entry(1, 0.0, 500), entry(2, 0.2, 200), other, fresh, entry(5, 5.0, 200)]
    chains = report(entries, {}, None)["chains"]
    assert [[a["entry"] for a in c["attempts"]] for c in chains] == [[1, 2], [3], [4, 5]]


@pytest.mark.parametrize(
    ("waits", "honored", "shape"),
    [
        ([], [], "none"),
        ([300], [None], "single"),
        ([400, 400], [True, True], "as told"),
        ([11], [False], "sooner than told"),  # 11 ms after a 2,000 ms retry-after is not "as told"
        ([2000, 11], [True, False], "sooner than told"),
        ([400, 850, 1700], [None] * 3, "exponential"),
        ([400, 500, 600], [None] * 3, "growing"),
        ([400, 410, 395], [None] * 3, "constant"),
        ([400, 100, 900], [None] * 3, "irregular"),
    ],
)
def test_backoff_shapes(waits: list[float], honored: list[bool | None], shape: str) -> None:
    assert backoff_shape(waits, honored) == shape


def test_a_retry_sooner_than_its_retry_after_is_not_backoff_as_told() -> None:
    entries = [entry(1, 0.0, 429, took_ms=1.0, **{"retry-after": "2"}), entry(2, 0.012, 200)]  # 11 ms after it
    data = report(entries, {}, None)
    (chain,) = data["chains"]
    assert chain["attempts"][1]["honored_retry_after"] is False
    assert chain["backoff"] == "sooner than told"
    text = render(data)
    assert "#2 after 11 ms < retry-after!" in text and "backoff: sooner than told" in text
    assert "as told" not in text
