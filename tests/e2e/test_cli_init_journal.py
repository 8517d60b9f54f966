"""`tokenhub-emulator init` writes a starter that passes as written; `tokenhub-emulator journal` prints a running
server's journal readably, finds an entry by the x-request-id the client saw, and follows new requests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import ROOT, RunningServer, start_server, stop_server
from tests.helpers.subpytest import lean_pytest_environment


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_init_writes_a_starter_that_validates_and_passes(tmp_path: Path) -> None:
    project = tmp_path / "my-project"
    result = cli("init", str(project))
    assert result.returncode == 0, result.stderr
    assert (project / "scenarios" / "hello.yaml").is_file() and (project / "test_hello.py").is_file()
    assert f"tokenhub-emulator validate {project / 'scenarios'}" in result.stdout

    checked = cli("validate", str(project / "scenarios"))
    assert checked.returncode == 0 and "warning" not in checked.stdout, checked.stdout + checked.stderr

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=lean_pytest_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout

    (project / "test_hello.py").write_text("# mine\n")
    again = cli("init", str(project))
    assert again.returncode == 1 and "already exist" in again.stderr
    assert (project / "test_hello.py").read_text() == "# mine\n"  # nothing overwritten
    assert cli("init", "--force", str(project)).returncode == 0
    assert "tokenhub_emulator" in (project / "test_hello.py").read_text()


SCENARIO = """
rules:
  - name: greet
    when: {last_user: hello}
    reply: {content: Hello!}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path = tmp_path_factory.mktemp("journal") / "greet.yaml"
    path.write_text(SCENARIO)
    running = start_server("--scenario", str(path))
    yield running
    stop_server(running)


def ask(server: RunningServer, text: str, test_id: str, **extra: object) -> httpx.Response:
    with server.http(headers={"x-emulator-test-id": test_id}) as client:
        body = {"model": "glm-5", "messages": [{"role": "user", "content": text}], **extra}
        return client.post("/v1/chat/completions", json=body)


def test_journal_prints_one_readable_line_per_request(server: RunningServer) -> None:
    hit = ask(server, "hello", "journal-1")
    miss = ask(server, "good bye", "journal-1")
    ask(server, "hello", "someone-else")
    result = cli("journal", "--url", server.url, "--test-id", "journal-1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("#") and "POST /v1/chat/completions 200 OK · glm-5 · rule 'greet' · " in lines[0]
    assert lines[0].endswith(hit.headers["x-request-id"])
    assert (
        "generated — no rule matched; nearest: 'greet' (greet.yaml:3: last_user 'good bye' does not equal" in lines[1]
    )
    assert lines[1].endswith(miss.headers["x-request-id"])


def test_journal_finds_an_entry_by_the_request_id_the_client_saw(server: RunningServer) -> None:
    miss = ask(server, "anything else", "journal-2", stream=True)
    request_id = miss.headers["x-request-id"]
    result = cli("journal", "--url", server.url, "--request-id", request_id)
    assert result.returncode == 0, result.stderr
    head, *details = result.stdout.splitlines()
    assert head.endswith(request_id) and "stream" in head
    assert any(line.startswith("    missed 'greet' (") for line in details), details
    assert any(line.startswith("    timing: first byte ") and " chunks from " in line for line in details), details
    as_json = json.loads(cli("journal", "--url", server.url, "--request-id", request_id, "--json").stdout)
    assert as_json["request_id"] == request_id and as_json["misses"][0]["rule"] == "greet"

    with server.http() as client:  # the control API: by number or by request id, and the request_id filter
        by_id = client.get(f"/_emulator/journal/{request_id}").json()
        assert client.get(f"/_emulator/journal/{by_id['id']}").json()["request_id"] == request_id
        listed = client.get("/_emulator/journal", params={"request_id": request_id}).json()["data"]
        assert [entry["id"] for entry in listed] == [by_id["id"]]

    unknown = cli("journal", "--url", server.url, "--request-id", "req_nothing")
    assert unknown.returncode == 2 and "answered 404: No journal entry 'req_nothing'" in unknown.stderr


def test_journal_follow_prints_requests_as_they_finish(server: RunningServer) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "journal", "--url", server.url, "--test-id", "journal-3", "--follow"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = ask(server, "hello", "journal-3")
        assert process.stdout.readline().rstrip().endswith(first.headers["x-request-id"])
        second = ask(server, "hello again", "journal-3")
        line = process.stdout.readline()
        assert line.rstrip().endswith(second.headers["x-request-id"]) and "no rule matched" in line
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_journal_without_a_server_is_a_clear_error() -> None:
    result = cli("journal", "--url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert result.stderr.startswith("tokenhub-emulator journal: cannot reach http://127.0.0.1:9/_emulator/journal")
