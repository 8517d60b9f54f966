"""The agent-loop guard: a runaway tool loop is flagged in the journal, named by the report, and stopped with
the configured error in the protocol's envelope; the same conversation state sent again and again too; an
SDK's retries after a failure are not a loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

pytestmark = pytest.mark.sdk

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
]
RUNAWAY = """
settings:
  loop_guard: {repeats: 3, stop_after: 4}
rules:
  - reply: {tool_calls: [{name: search, arguments: {q: the same thing}}]}
"""


def _agent(client: Any, limit: int = 20) -> int:
    """A naive agent: runs every tool call it gets and asks again, until the model stops calling tools."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Find it."}]
    for turn in range(1, limit + 1):
        reply = client.chat.completions.create(model="glm-5", messages=messages, tools=TOOLS)
        message = reply.choices[0].message
        if not message.tool_calls:
            return turn
        messages.append(message.model_dump(exclude_none=True))
        messages += [{"role": "tool", "tool_call_id": c.id, "content": "nothing new"} for c in message.tool_calls]
    return limit


def test_a_runaway_tool_loop_is_stopped(tokenhub_emulator: Any) -> None:
    tokenhub_emulator.load(RUNAWAY)
    with pytest.raises(openai.BadRequestError) as stopped:
        _agent(tokenhub_emulator.openai())
    error = stopped.value.body
    assert error["code"] == "agent_loop_detected" and "same tool call came back 5 times" in error["message"]
    assert stopped.value.status_code == 400  # not retried by the SDK: the agent stops at once
    requests = tokenhub_emulator.requests
    assert len(requests) == 6  # the first answer, then five with the call repeated: the fifth repeat stopped
    flags = [r.data["loop"] for r in requests]
    assert flags[:3] == [None, None, None]
    assert [(f["kind"], f["repeats"], f["first"], f["stopped"]) for f in flags[3:]] == [
        ("same_tool_call", 3, True, False),
        ("same_tool_call", 4, False, False),
        ("same_tool_call", 5, False, True),
    ]
    assert requests[-1].data["action"] == "loop_stopped"
    report = tokenhub_emulator.server.control("GET", "/report", tokenhub_emulator.test_id)
    assert report["ok"] is False and report["loops_stopped"] == 1
    assert any("same tool call came back 3 times in a row: search" in p for p in report["problems"])


def test_the_error_is_configurable_and_in_the_anthropic_envelope(tokenhub_emulator: Any) -> None:
    tokenhub_emulator.load(
        "settings: {loop_guard: {stop_after: 2, status: 422, message: Runaway agent stopped.}}\n"
        "rules: [{reply: {content: same}}]"
    )
    client = tokenhub_emulator.anthropic(max_retries=0)
    ask = {"model": "glm-5", "max_tokens": 10, "messages": [{"role": "user", "content": "again"}]}
    for _ in range(2):
        client.messages.create(**ask)
    with pytest.raises(anthropic.UnprocessableEntityError) as stopped:
        client.messages.create(**ask)
    body = stopped.value.body
    assert body["type"] == "error" and body["error"]["message"] == "Runaway agent stopped."
    loops = [r.data["loop"] for r in tokenhub_emulator.requests]
    assert [loop and (loop["kind"], loop["repeats"]) for loop in loops] == [
        None,
        ("same_state", 2),
        ("same_state", 3),
    ]


def test_sdk_retries_after_a_failure_are_not_a_loop(tokenhub_emulator: Any) -> None:
    tokenhub_emulator.load(
        "settings: {loop_guard: {repeats: 2, stop_after: 2}}\n"
        "rules: [{sequence: [{fail: &busy {status: 503, headers: {retry-after-ms: '5'}}}, {fail: *busy}, "
        "{reply: {content: done}}]}]"
    )
    reply = tokenhub_emulator.openai(max_retries=3).chat.completions.create(
        model="glm-5", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "done"
    assert [r.data["loop"] for r in tokenhub_emulator.requests] == [None, None, None]


def test_off_unless_configured(tokenhub_emulator: Any) -> None:
    tokenhub_emulator.load("rules: [{reply: {tool_calls: [{name: search, arguments: {q: x}}]}}]")
    assert _agent(tokenhub_emulator.openai(), limit=6) == 6
    assert all(r.data["loop"] is None for r in tokenhub_emulator.requests)


def test_a_bad_loop_guard_is_a_positioned_error(tokenhub_emulator: Any) -> None:
    from emulator.testing import EmulatorError

    with pytest.raises(EmulatorError, match=r":2:\d+: 'stop_after' \(3\) must be at least 'repeats' \(5\)"):
        tokenhub_emulator.load("settings:\n  loop_guard: {repeats: 5, stop_after: 3}\nrules: []")
    with pytest.raises(EmulatorError, match=r"unknown key 'repeat' in loop_guard; did you mean 'repeats'\?"):
        tokenhub_emulator.load("settings: {loop_guard: {repeat: 5}}\nrules: []")


def test_the_serve_flags(tmp_path: Path) -> None:
    """`--loop-guard-repeats` / `--loop-guard-stop-after` on a server of its own."""
    scenario = tmp_path / "runaway.yaml"
    scenario.write_text("rules: [{reply: {tool_calls: [{name: search, arguments: {q: x}}]}}]")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_EMULATOR_")}
    command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning"]
    flags = ["--scenario", str(scenario), "--loop-guard-repeats", "2", "--loop-guard-stop-after", "3"]
    process = subprocess.Popen(
        [*command, *flags], cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line
        client = openai.OpenAI(base_url=line.rsplit(" ", 1)[-1].strip() + "/v1", api_key="sk-flags", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="came back 4 times in a row"):
            _agent(client)
    finally:
        process.terminate()
        process.wait(timeout=10)
