"""One log line per API request, from `tokenhub-emulator serve` as a user runs it: hits, misses (a warning
with the nearest rules), faults, streams and errors; text and JSON; colour only on a terminal; the banner."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from emulator.config import Settings
from emulator.journal import Journal
from emulator.scenarios import parse_scenario
from emulator.server.app import build_app
from emulator.server.request_log import ExplainBudget, RequestLog, line_of
from emulator.server.runtime import Runtime
from tests.helpers.request_log import SCENARIO


def runtime_with(scenario: str | None) -> Runtime:
    scenarios = [parse_scenario(scenario, "demo.yaml")] if scenario else []
    return Runtime.from_settings(Settings(), scenarios)


def test_a_miss_with_no_rules_loaded_is_not_a_warning() -> None:
    runtime = runtime_with(None)
    entry = runtime.journal.open("POST", "/v1/chat/completions", {}, "chat", "req_x")
    entry.action, entry.status, entry.body = "generated", 200, {"model": "glm-5", "messages": []}
    line = RequestLog(runtime).line(entry)
    assert line.level == logging.INFO and line.answer() == "generated (no rules loaded)"


def test_explaining_misses_is_bounded_by_a_time_budget() -> None:
    now = [0.0]
    budget = ExplainBudget(share=0.05, burst=0.01, clock=lambda: now[0])
    log = RequestLog(runtime_with(SCENARIO), budget)
    body = {"model": "glm-5", "messages": [{"role": "user", "content": "nope"}]}

    def miss() -> Any:
        entry = log.runtime.journal.open("POST", "/v1/chat/completions", {}, "chat", "req_m")
        entry.action, entry.status, entry.body = "generated", 200, body
        return entry, log.line(entry)

    entry, line = miss()
    assert line.level == logging.WARNING and line.nearest and entry.misses  # explained, and kept for the journal
    budget.spend(1.0)  # as if explaining had taken a second: the budget is spent
    entry, line = miss()
    assert line.level == logging.WARNING and line.nearest is None and not entry.misses
    assert line.answer().startswith("generated — no rule matched; nearest: not worked out (too many misses")
    now[0] += 1.0 / 0.05 + 1  # refilled after (spent / share) seconds
    _, line = miss()
    assert line.nearest


def test_the_front_hands_finished_entries_to_the_log_off_the_request_path(caplog: pytest.LogCaptureFixture) -> None:
    """The line is made on the next loop turn, once the response is over: not inside the request."""
    import asyncio

    caplog.set_level(logging.INFO, logger="tokenhub_emulator.requests")
    runtime = runtime_with(SCENARIO)
    app = build_app(Settings(), runtime)
    made: list[str] = []
    log: RequestLog = app.request_log  # type: ignore[attr-defined]
    original = log.flush
    log.flush = lambda: (made.append("flush"), original())[1]  # type: ignore[method-assign]

    async def main() -> None:
        body = json.dumps({"model": "glm-5", "messages": [{"role": "user", "content": "hello"}]}).encode()
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"authorization", b"Bearer k"), (b"content-type", b"application/json")],
            "state": {},
        }
        await app(scope, receive, send)
        assert made == [] and sent[-1]["type"] == "http.response.body"  # answered, not yet logged
        await asyncio.sleep(0)  # the next turn of the loop
        assert made == ["flush"]

    asyncio.run(main())
    (record,) = caplog.records
    assert record.levelname == "INFO" and record.getMessage().startswith(
        "POST /v1/chat/completions 200 OK · glm-5 · rule 'greet'"
    )


def test_lines_of_journal_entries() -> None:
    entry = Journal().open("POST", "/v1/messages", {"x-emulator-test-id": "gw0:t"}, "messages", "req_1")
    entry.status, entry.model, entry.action, entry.rule, entry.stream = 200, "glm-5", "reply", "r", True
    entry.chunk_times_ms, entry.duration_ms = [1.0], 2.25
    assert line_of(entry).text() == (
        "POST /v1/messages 200 OK · glm-5 · rule 'r' · stream 1 chunk · test gw0:t · 2.2 ms · req_1"
    )
    entry.action, entry.fault, entry.rule, entry.stream, entry.disconnected = "fault", "reset", None, False, True
    assert (
        line_of(entry).text()
        == "POST /v1/messages 200 OK · glm-5 · fault reset · client went away · test gw0:t · 2.2 ms · req_1"
    )
