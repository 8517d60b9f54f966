"""`serve --watch`: a changed scenario file is served; a broken one keeps the previous version and is reported."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers.servers import start_server, stop_server

RULE = "rules:\n  - name: ping\n    when: {{last_user: ping}}\n    reply: {{content: {answer}}}\n"
BROKEN = "rules:\n  - name: ping\n    when: {last_usr: ping}\n    reply: {content: broken}\n"


def ask(http, text: str = "ping") -> str:
    body = {"model": "glm-5", "messages": [{"role": "user", "content": text}]}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def wait_for(http, condition, timeout: float = 15.0) -> dict:
    """Poll the control API until `condition(reload status)` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        status = http.get("/_emulator/scenarios").json()["reload"]
        if condition(status):
            return status
        assert time.monotonic() < deadline, f"no reload seen: {status}"
        time.sleep(0.02)


@pytest.fixture
def watched(tmp_path: Path):
    scenario = tmp_path / "live.yaml"
    scenario.write_text(RULE.format(answer="one"))
    server = start_server("--watch", "--scenario", str(tmp_path))
    yield server, scenario
    stop_server(server)


def test_edit_reload_break_and_recover(watched):
    server, scenario = watched
    with server.http() as http:
        assert ask(http) == "one"
        scenario.write_text(RULE.format(answer="two"))
        wait_for(http, lambda s: s["count"] >= 1)
        assert ask(http) == "two"

        scenario.write_text(BROKEN)
        status = wait_for(http, lambda s: s["last_error"] is not None)
        problem = status["last_error"]["problems"][0]
        assert problem["file"].endswith("live.yaml") and problem["line"] == 3 and problem["column"] > 1
        assert "last_usr" in status["last_error"]["message"]
        assert ask(http) == "two"  # the previous version keeps serving

        (scenario.parent / "more.yaml").write_text(RULE.format(answer="never").replace("ping", "pong"))
        scenario.write_text(RULE.format(answer="three"))
        wait_for(http, lambda s: s["last_error"] is None)
        assert ask(http) == "three"
        assert ask(http, "pong") == "never"  # a new file in the watched folder


def test_a_file_deleted_and_written_again_is_never_missing(watched):
    """An editor's or git's replace deletes the file first: the rules it held must not stop answering meanwhile."""
    server, scenario = watched
    with server.http() as http:
        for version, gap in (("two", 0.03), ("three", 0.15)):
            scenario.unlink()
            time.sleep(gap)  # the replace's own pace, not a wait for the server
            scenario.write_text(RULE.format(answer=version))
            deadline = time.monotonic() + 15
            seen = set()
            while (answer := ask(http)) != version:
                seen.add(answer)
                assert time.monotonic() < deadline, seen
            assert seen <= {"one", "two"}, seen  # the previous version until the new one: never no rule
