"""One log line per API request, from `tokenhub-emulator serve` as a user runs it: hits, misses (a warning
with the nearest rules), faults, streams and errors; text and JSON; colour only on a terminal; the banner."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.request_log import SCENARIO
from tests.helpers.servers import ROOT

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("log") / "demo.yaml"
    path.write_text(SCENARIO)
    return path


class Server:
    """`serve` at --log-level info, its stderr read line by line as it comes (no sleeping)."""

    def __init__(self, *args: str, scenario: Path) -> None:
        command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--scenario", str(scenario), *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_EMULATOR_")}
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        first = self.process.stdout.readline()
        assert "listening on" in first, first + self.process.stderr.read()
        self.url = first.rsplit(" ", 1)[-1].strip()
        self.stdout: list[str] = []
        self.seen: list[str] = []  # the stderr lines read so far
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.process.stderr, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stdout, self.stdout.append), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, put: Any) -> None:
        for line in stream:
            put(line.rstrip("\n"))

    def line_with(self, text: str) -> str:
        """The next stderr line that contains `text` (waits for it, 30 s at most)."""
        while True:
            line = self.lines.get(timeout=30)
            self.seen.append(line)
            if text in line:
                return line

    def post(self, content: str, **extra: Any) -> httpx.Response:
        headers = {"authorization": "Bearer sk-test", **extra.pop("headers", {})}
        body = {"model": "glm-5", "messages": [{"role": "user", "content": content}], **extra}
        return httpx.post(self.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)

    def entry(self, request_id: str) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_emulator/journal/{request_id}", timeout=30).json()

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=10)
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return "\n".join(rest)




@pytest.fixture(scope="module")
def text_server(scenario: Path) -> Iterator[Server]:
    server = Server(scenario=scenario)
    yield server
    server.stop()


def test_a_hit_a_miss_a_fault_a_stream_and_a_404_each_get_one_line(text_server: Server) -> None:
    hit = text_server.post("hello")
    line = text_server.line_with(hit.headers["x-request-id"])
    assert re.fullmatch(
        r"INFO: {5}\d\d:\d\d:\d\d\.\d{3} POST /v1/chat/completions 200 OK · glm-5 · rule 'greet' · "
        r"\d+\.\d ms · " + hit.headers["x-request-id"],
        line,
    ), line

    miss = text_server.post("what is the wether like?", headers={"x-emulator-test-id": "t-1"})
    line = text_server.line_with(miss.headers["x-request-id"])
    assert line.startswith("WARNING:  "), line
    assert (
        "200 OK · glm-5 · generated — no rule matched; nearest: 'weather' (demo.yaml:5: last_user "
        "'what is the wether like?' does not contain 'weather'); " in line
    )
    assert "· test t-1 ·" in line
    assert text_server.entry(miss.headers["x-request-id"])["misses"][0]["rule"] == "weather"  # the same answer

    fault = text_server.post("busy")
    assert fault.status_code == 429
    line = text_server.line_with(fault.headers["x-request-id"])
    assert "POST /v1/chat/completions 429 Too Many Requests · glm-5 · fault error 429 (rule 'busy') · " in line

    stream = text_server.post("hello", stream=True)
    entry = text_server.entry(stream.headers["x-request-id"])
    line = text_server.line_with(stream.headers["x-request-id"])
    chunks = len(entry["chunk_times_ms"])
    assert chunks > 2 and f"· rule 'greet' · stream {chunks} chunks · {entry['duration_ms']:.1f} ms ·" in line

    lost = httpx.post(text_server.url + "/chat/completions", json={}, headers={"authorization": "Bearer k"})
    line = text_server.line_with(lost.headers["x-request-id"])
    assert "POST /chat/completions 404 Not Found · error: Unknown request URL: POST /chat/completions. " in line
    assert "Did you mean POST /v1/chat/completions?" in line

    seen = "\n".join(text_server.seen)
    assert "HTTP/1.1" not in seen  # uvicorn's own access log is off: one line per request, ours
    assert not ANSI.search(seen)  # not a terminal: no colour
    for response in (hit, miss, fault, stream, lost):
        assert seen.count(response.headers["x-request-id"]) == 1


def test_the_banner_lists_profile_scenarios_rules_models_and_urls(text_server: Server, scenario: Path) -> None:
    text_server.post("hello")  # the banner has been printed before the first request was answered
    banner = "\n".join(text_server.stdout)
    url = text_server.url
    assert "  profile     tokenhub" in banner
    assert f"  base URLs   OpenAI {url}/v1 · Anthropic {url}" in banner
    assert f"  scenarios   {scenario} (3 rules)" in banner
    assert "  rules       3 rules; 10 models (10 built-in, 0 declared)" in banner
    assert f"  control API {url}/_emulator/ (open on loopback)" in banner


def test_start_up_warnings_a_model_nothing_declares_and_an_empty_folder(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text("rules: [{name: typo, when: {model: glm5}, reply: {content: x}}]\n")
    (tmp_path / "empty").mkdir()
    server = Server("--scenario", str(tmp_path / "empty"), scenario=path)
    try:
        line = server.line_with("no scenario files")
        assert line.startswith("WARNING:  ") and str(tmp_path / "empty") in line
        line = server.line_with("names model 'glm5'")
        assert line.startswith("WARNING:  ") and f"{path}:1:" in line and "rule 'typo'" in line
    finally:
        server.stop()


def test_json_lines_for_ci(scenario: Path) -> None:
    server = Server("--log-format", "json", scenario=scenario)
    try:
        started = json.loads(server.line_with("tokenhub_emulator.start"))
        assert started["url"] == server.url and started["rules"] == 3 and started["profile"] == "tokenhub"
        miss = server.post("nothing like it")
        data = json.loads(server.line_with(miss.headers["x-request-id"]))
        assert data["level"] == "warning" and data["logger"] == "tokenhub_emulator.requests"
        assert data["status"] == 200 and data["action"] == "generated" and data["rule"] is None
        assert {n["rule"]: n["where"] for n in data["nearest"]} == {
            "greet": "demo.yaml:2",
            "weather": "demo.yaml:5",
            "busy": "demo.yaml:8",
        }
        hit = server.post("hello", stream=True)
        data = json.loads(server.line_with(hit.headers["x-request-id"]))
        assert data["level"] == "info" and data["rule"] == "greet" and data["stream"] is True
        assert data["chunks"] == len(server.entry(hit.headers["x-request-id"])["chunk_times_ms"])
        assert data["time"].endswith("+00:00")
    finally:
        rest = server.stop()
    for line in rest.splitlines():
        json.loads(line)  # uvicorn's own lines are JSON too


def test_colour_on_a_terminal_only(scenario: Path, tmp_path: Path) -> None:
    """Under a pseudo-terminal (`script`), the level, the request and the status are coloured."""
    client = tmp_path / "client.py"
    client.write_text(
        "import httpx, subprocess, sys\n"
        "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)\n"
        "url = p.stdout.readline().split()[-1]\n"
        "r = httpx.post(url + '/v1/chat/completions', headers={'authorization': 'Bearer k'},\n"
        "               json={'model': 'glm-5', 'messages': [{'role': 'user', 'content': 'hello'}]})\n"
        "while True:\n"
        "    entry = httpx.get(url + '/_emulator/journal/' + r.headers['x-request-id']).json()\n"
        "    if entry['duration_ms'] is not None: break\n"
        "p.terminate(); p.wait()\n"
    )
    serve = f"{sys.executable} -m emulator serve --port 0 --scenario {scenario}"
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    result = subprocess.run(
        ["script", "-q", "-e", "-c", f"{sys.executable} {client} {serve}", "/dev/null"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    line = next(line for line in result.stdout.splitlines() if "/v1/chat/completions" in line)
    assert "\x1b[32mINFO\x1b[0m:" in line  # uvicorn's green level
    assert "\x1b[1mPOST /v1/chat/completions\x1b[0m" in line and "\x1b[32m200 OK\x1b[0m" in line
    assert ANSI.sub("", line).split(" ", 6)[-1].startswith("POST /v1/chat/completions 200 OK · glm-5 · rule 'greet'")
