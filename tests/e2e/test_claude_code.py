"""Claude Code, unmodified, on the emulator: the gateway guide's own set-up (ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN,
ANTHROPIC_MODEL, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC) with a gateway model id, a provider/model id and a
scenario alias; stream-json output; an agentic turn in which the scripted `Write` call really writes a file.

Claude Code sends a mid-conversation `role: "system"` message for a model it does not know as a Claude model, and
wraps what the user typed in `<system-reminder>` blocks: the journal shows both were taken as they came.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from emulator.testing import EmulatorTest
from tests.helpers.claude_code import VERSION, installed_claude

RUN_TIMEOUT_S = 120
GREETING = {
    "models": [{"id": "team-coder", "serves": "glm-5"}],
    "rules": [{"name": "greet", "when": {"last_user": "hello"}, "reply": {"content": "Hello from the emulator."}}],
}


@pytest.fixture(scope="module")
def claude() -> Path:
    return installed_claude()


def run_claude(
    claude: Path, test: EmulatorTest, home: Path, *args: str, model: str = "glm-5", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`claude ARGS` as a user of the gateway runs it, in an empty home of its own, talking to this test only."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": test.scoped_url,
        "ANTHROPIC_AUTH_TOKEN": "x",
        "ANTHROPIC_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    return subprocess.run(
        [str(claude), *args], env=env, cwd=cwd or home, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )


def answered(test: EmulatorTest) -> list[Any]:
    """Every request this test's Claude Code sent; each was answered (no 400 for a fallback to retry)."""
    requests = list(test.requests)
    assert requests and [r.status for r in requests] == [200] * len(requests), [(r.status, r.error) for r in requests]
    return requests


def roles(request: Any) -> list[str]:
    return [message["role"] for message in request.messages]


@pytest.mark.parametrize("model", ["glm-5", "zhipu/glm-5", "team-coder"])
def test_print_mode_answers_with_the_scripted_text(claude, tokenhub_emulator, tmp_path, model):
    tokenhub_emulator.load(GREETING)
    done = run_claude(claude, tokenhub_emulator, tmp_path, "-p", "hello", model=model)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "Hello from the emulator.\n"
    [request] = answered(tokenhub_emulator)
    assert request.rule == "greet" and request.body["model"] == model
    assert request.headers["user-agent"].startswith(f"claude-cli/{VERSION}")
    # the conversation Claude Code sent: the user's turn (system-reminder blocks, then "hello"), then a
    # mid-conversation system message, accepted as it came
    user, system = request.messages
    assert roles(request) == ["user", "system"]
    assert user["content"][0]["text"].startswith("<system-reminder>") and user["content"][-1]["text"] == "hello"
    assert f"powered by the model {model}" in json.dumps(system["content"])


def test_stream_json_output_streams(claude, tokenhub_emulator, tmp_path):
    tokenhub_emulator.load(GREETING)
    done = run_claude(claude, tokenhub_emulator, tmp_path, "-p", "hello", "--output-format", "stream-json", "--verbose")
    assert done.returncode == 0, done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    kinds = [event["type"] for event in events]
    assert kinds[0] == "system" and kinds[-1] == "result" and "assistant" in kinds
    assert events[-1]["result"] == "Hello from the emulator." and events[-1]["is_error"] is False
    [request] = answered(tokenhub_emulator)
    assert request.body["stream"] is True and request.stream is True
    assert len(request.chunk_times_ms) > 5  # written event by event, not in one piece


def test_an_agentic_turn_writes_the_file(claude, tokenhub_emulator, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    target = work / "greeting.txt"
    ask = "create the greeting file"
    write = {"file_path": str(target), "content": "Hello, file.\n"}
    tokenhub_emulator.load(
        {
            "rules": [
                {
                    "name": "call Write",
                    "when": {"last_user": ask, "tool_result": "absent"},
                    "reply": {"tool_calls": [{"name": "Write", "arguments": write}]},
                },
                {
                    "name": "after Write",
                    "when": {"last_user": ask, "tool_result": {"name": "Write"}},
                    "reply": {"content": "Wrote greeting.txt."},
                },
            ]
        }
    )
    done = run_claude(claude, tokenhub_emulator, tmp_path, "-p", ask, "--allowedTools", "Write", cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "Wrote greeting.txt.\n"
    assert target.read_text() == "Hello, file.\n"
    first, second = answered(tokenhub_emulator)
    assert (first.rule, second.rule) == ("call Write", "after Write")
    result = second.messages[-1]["content"][0]
    assert result["type"] == "tool_result" and "greeting.txt" in json.dumps(result["content"])


def test_an_unknown_model_is_reported_as_such(claude, tokenhub_emulator, tmp_path):
    done = run_claude(claude, tokenhub_emulator, tmp_path, "-p", "hello", model="glm-9000")
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "glm-9000" in said and "does not exist" in said and "role" not in said
