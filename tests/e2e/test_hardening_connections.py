"""Connections are held to limits and the server stops cleanly (issue 11): real servers, raw sockets.

Each limit answers in the envelope of the protocol the path belongs to. Timing is judged by what the server
did (it answered, it closed), never by how long a client waited beyond generous bounds.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.servers import RunningServer, start_server, stop_server

KEY = {"authorization": "Bearer sk-test"}
CHAT = {"model": "glm-5", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def limited() -> Iterator[RunningServer]:
    server = start_server(
        "--header-timeout-s", "0.5", "--body-timeout-s", "0.5", "--keep-alive-s", "0.3", "--max-connections", "40"
    )
    yield server
    stop_server(server)


def connect(server: RunningServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    connection = socket.create_connection((host, int(port)))
    connection.settimeout(10)
    return connection


def read_until_closed(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def answer_of(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_a_head_too_large_is_a_431_in_the_paths_envelope(limited):
    for path, anthropic in (("/v1/chat/completions", False), ("/v1/messages", True)):
        connection = connect(limited)
        connection.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Big: ".encode() + b"a" * 100_000 + b"\r\n\r\n")
        status, body = answer_of(read_until_closed(connection))
        assert status == 431
        assert (body["type"] == "error" and body["error"]["type"]) if anthropic else body["error"]["message"]
    assert httpx.post(limited.url + "/v1/chat/completions", json=CHAT, headers=KEY).status_code == 200


def test_twenty_megabytes_of_headers_are_never_read_whole(limited):
    connection = connect(limited)
    connection.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    try:
        for _ in range(20 * 16):
            connection.sendall(b"X-Pad: " + b"p" * 65_000 + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were still sending: what we want
    status, _ = answer_of(read_until_closed(connection))
    assert status == 431


def test_malformed_http_is_answered_in_the_openai_envelope(limited):
    connection = connect(limited)
    connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    status, body = answer_of(read_until_closed(connection))
    assert status == 400 and set(body["error"]) == {"message", "type", "param", "code"}


def test_a_head_that_never_ends_gets_a_408_and_a_silent_connection_is_closed(limited):
    partial = connect(limited)
    partial.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    silent = connect(limited)
    status, body = answer_of(read_until_closed(partial))
    assert status == 408 and "did not arrive within 0.5 s" in body["error"]["message"]
    assert read_until_closed(silent) == b""  # closed without a word: it had asked nothing


def test_a_body_that_stops_coming_gets_a_408_and_is_journaled(limited):
    connection = connect(limited)
    head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nauthorization: Bearer sk-test\r\n"
    head += "content-type: application/json\r\ncontent-length: 100\r\nx-emulator-test-id: slow-body\r\n\r\n"
    connection.sendall(head.encode() + b'{"model"')
    status, body = answer_of(read_until_closed(connection))
    assert status == 408 and "no progress" in body["error"]["message"]
    (entry,) = httpx.get(limited.url + "/_emulator/journal", params={"test_id": "slow-body"}).json()["data"]
    assert entry["status"] == 408 and entry["action"] == "rejected" and not entry["disconnected"]


def test_an_idle_keep_alive_connection_is_closed(limited):
    connection = connect(limited)
    body = json.dumps(CHAT).encode()
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nauthorization: Bearer sk-test\r\n"
    request += b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    connection.sendall(request)
    assert read_until_closed(connection).startswith(b"HTTP/1.1 200")  # answered, then closed once idle


def test_past_the_connection_cap_the_oldest_idle_connection_makes_room(limited):
    idle = [connect(limited) for _ in range(60)]
    try:
        for _ in range(3):
            assert httpx.post(limited.url + "/v1/chat/completions", json=CHAT, headers=KEY).status_code == 200
        closed = 0
        for connection in idle[:20]:
            connection.settimeout(5)
            closed += read_until_closed(connection) == b""
        assert closed == 20  # the oldest went first
    finally:
        for connection in idle:
            connection.close()


def test_when_every_connection_is_busy_a_new_one_is_answered_503():
    server = start_server("--max-connections", "3")
    try:
        busy = []
        for _ in range(3):  # three slow streams: each connection is answering, none is idle
            connection = connect(server)
            body = json.dumps({**CHAT, "stream": True}).encode()
            head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nauthorization: Bearer sk-test\r\n"
            head += "x-emulator-chunk-delay-ms: 10000\r\ncontent-type: application/json\r\n"
            head += f"content-length: {len(body)}\r\n\r\n"
            connection.sendall(head.encode() + body)
            assert connection.recv(65536).startswith(b"HTTP/1.1 200")  # its stream has started
            busy.append(connection)
        status, body = answer_of(read_until_closed(connect(server)))
        assert status == 503 and "connections open" in body["error"]["message"]
    finally:
        stop_server(server)


# ---------------------------------------------------------------- stopping


def test_stopping_ends_every_open_answer_in_its_protocols_terms():
    server = start_server("--shutdown-grace-s", "2")
    results: dict[str, object] = {}
    streaming = threading.Event()

    def stream() -> None:
        headers = {**KEY, "x-emulator-chunk-delay-ms": "400"}
        body = {**CHAT, "stream": True}
        with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, headers=headers, timeout=30) as r:
            lines = []
            for line in r.iter_lines():
                if line:
                    lines.append(line)
                    streaming.set()
            results["stream"] = lines

    def responses_stalled() -> None:
        headers = {**KEY, "x-emulator-fault": "stall=60000"}
        body = {"model": "glm-5", "input": "hi", "stream": True}
        with httpx.stream("POST", server.url + "/v1/responses", json=body, headers=headers, timeout=30) as r:
            results["responses"] = [line for line in r.iter_lines() if line.startswith("event:")]

    def hang() -> None:
        headers = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01", "x-emulator-fault": "hang"}
        body = {"model": "glm-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        response = httpx.post(server.url + "/v1/messages", json=body, headers=headers, timeout=30)
        results["hang"] = (response.status_code, response.json())

    def delayed() -> None:
        headers = {**KEY, "x-emulator-latency-ms": "60000"}
        response = httpx.post(server.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=30)
        results["delayed"] = (response.status_code, response.json())

    threads = [threading.Thread(target=f) for f in (stream, responses_stalled, hang, delayed)]
    for thread in threads:
        thread.start()
    assert streaming.wait(10)
    while len(httpx.get(server.url + "/_emulator/journal").json()["data"]) < 4:  # all four are being answered
        pass
    stopped_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=15)
    for thread in threads:
        thread.join(timeout=15)
    assert time.monotonic() - stopped_at < 5  # within the grace period, not at the end of the longest answer
    assert results["stream"][-1] == "data: [DONE]"  # every chunk, then the terminator
    assert results["responses"][-1] == "event: response.completed"
    status, error = results["hang"]
    assert status == 503 and error["type"] == "error" and "shutting down" in error["error"]["message"]
    status, reply = results["delayed"]
    assert status == 200 and reply["object"] == "chat.completion"
    log = server.read_log()
    assert "Traceback" not in log and "Cancel" not in log, log
