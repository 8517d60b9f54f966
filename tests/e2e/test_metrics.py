"""GET /metrics: what is counted (requests, faults, tokens, chunks, lateness, open streams), the label bounds,
the guard, and two `serve` processes sharing one PROMETHEUS_MULTIPROC_DIR scraped as one."""

from __future__ import annotations

import json
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.server.app import build_app
from tests.helpers.servers import RunningServer, start_server, stop_server

AUTH = {"authorization": "Bearer sk-test"}
SCENARIO = "rules:\n  - name: ping\n    when: {last_user: ping}\n    reply: {content: pong}\n"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    """The sum over the series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, series), v in found.items() if n == name and wanted <= series)


def series(found: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in found if n == name]


def chat(http: httpx.Client | TestClient, text: str, headers: dict[str, str] | None = None, **body: object):
    payload = {"model": "glm-5", "messages": [{"role": "user", "content": text}], **body}
    return http.post("/v1/chat/completions", json=payload, headers={**AUTH, **(headers or {})})


@pytest.fixture
def http(tmp_path: Path) -> TestClient:
    (tmp_path / "ping.yaml").write_text(SCENARIO)
    app = build_app(Settings(scenarios=[tmp_path / "ping.yaml"]))
    return TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)


def scrape(http: httpx.Client | TestClient, **headers: str) -> Samples:
    response = http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


# -- what is counted ---------------------------------------------------------------------------------------------


def test_requests_by_protocol_model_status_and_rule(http: TestClient) -> None:
    assert chat(http, "ping").status_code == 200
    assert chat(http, "ping").status_code == 200
    assert chat(http, "something else").status_code == 200  # generated: no rule
    assert chat(http, "ping", model="no-such-model").status_code >= 400
    messages = {"model": "glm-5", "max_tokens": 50, "messages": [{"role": "user", "content": "ping"}]}
    anthropic = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
    assert http.post("/v1/messages", json=messages, headers=anthropic).status_code == 200
    found = scrape(http)
    name = "tokenhub_emulator_requests_total"
    assert value(found, name, protocol="chat", model="glm-5", status="200", rule="ping") == 2
    assert value(found, name, protocol="chat", model="glm-5", status="200", rule="(none)") == 1
    assert value(found, name, protocol="messages", model="glm-5", status="200", rule="ping") == 1
    refused = [s for s in series(found, name) if s["model"] == "no-such-model"]
    assert len(refused) == 1 and int(refused[0]["status"]) >= 400 and refused[0]["rule"] == "(none)"
    assert value(found, name) == 5  # the scrape itself is not a request of the API, nor journaled
    journal = http.get("/_emulator/journal").json()["data"]
    assert all(entry["path"] != "/metrics" for entry in journal) and len(journal) == 5


def test_faults_by_kind_and_the_status_they_answered(http: TestClient) -> None:
    assert chat(http, "ping", {"x-emulator-fault": "error=503"}).status_code == 503
    assert chat(http, "ping", {"x-emulator-fault": "error=429"}).status_code == 429
    assert chat(http, "ping").status_code == 200
    found = scrape(http)
    assert value(found, "tokenhub_emulator_faults_injected_total", kind="error") == 2
    assert value(found, "tokenhub_emulator_faults_injected_total") == 2
    assert value(found, "tokenhub_emulator_requests_total", status="503", rule="(none)") == 1  # before any rule


def test_tokens_are_the_usage_the_replies_carried(http: TestClient) -> None:
    usages = [chat(http, text).json()["usage"] for text in ("ping", "tell me something", "and more, please")]
    found = scrape(http)
    name = "tokenhub_emulator_tokens_total"
    assert value(found, name, model="glm-5", type="prompt") == sum(u["prompt_tokens"] for u in usages)
    assert value(found, name, model="glm-5", type="completion") == sum(u["completion_tokens"] for u in usages)


def test_stream_chunks_and_lateness_as_the_journal_counts_them(http: TestClient) -> None:
    headers = {"x-emulator-chunk-delay-ms": "2", "x-emulator-test-id": "chunks"}
    reply = chat(http, "tell me a story", headers, stream=True)
    assert reply.status_code == 200 and reply.text.rstrip().endswith("data: [DONE]")
    [entry] = http.get("/_emulator/journal", params={"test_id": "chunks"}).json()["data"]
    found = scrape(http)
    chunks = value(found, "tokenhub_emulator_stream_chunks_total", protocol="chat")
    assert chunks == len(entry["chunk_times_ms"]) > 5
    planned = value(found, "tokenhub_emulator_chunk_lateness_seconds_count", protocol="chat")
    assert 0 < planned < chunks  # the chunks after the first are paced; the first is due at once
    assert value(found, "tokenhub_emulator_open_streams", protocol="chat") == 0


def test_label_values_from_requests_are_bounded(http: TestClient) -> None:
    for index in range(130):
        chat(http, "ping", model=f"model-{index}")
    found = scrape(http)
    models = {s["model"] for s in series(found, "tokenhub_emulator_requests_total")}
    assert len(models) == 101 and "(other)" in models
    assert value(found, "tokenhub_emulator_requests_total") == 130
    assert value(found, "tokenhub_emulator_requests_total", model="(other)") == 30


# -- the guard -----------------------------------------------------------------------------------------------------


def client(**settings: object) -> TestClient:
    return TestClient(build_app(Settings(**settings)), base_url="http://127.0.0.1", raise_server_exceptions=False)  # type: ignore[arg-type]


def test_guarded_as_the_control_api_beyond_loopback() -> None:
    refused = client(host="0.0.0.0").get("/metrics")
    assert refused.status_code == 403
    assert (
        "--control-token" in refused.json()["error"]["message"]
        and "--metrics open" in refused.json()["error"]["message"]
    )
    guarded = client(host="0.0.0.0", control_token="scrape-s3cret")
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get("/metrics", headers={"authorization": "Bearer scrape-s3cret"}).status_code == 200
    assert client(host="0.0.0.0", metrics="open").get("/metrics").status_code == 200


def test_a_web_page_cannot_read_it_on_loopback() -> None:
    http = client()
    assert http.get("/metrics").status_code == 200
    assert http.get("/metrics", headers={"origin": "http://evil.example"}).status_code == 403
    assert http.get("/metrics", headers={"host": "evil.example"}).status_code == 403  # DNS rebinding


def test_off_serves_nothing() -> None:
    http = client(metrics="off")
    assert chat(http, "hi").status_code == 200
    assert http.get("/metrics").status_code == 404
    assert http.app.state.runtime.metrics is None  # type: ignore[attr-defined]


# -- real servers ----------------------------------------------------------------------------------------------------


def serve(*args: str, env: dict[str, str] | None = None) -> tuple[RunningServer, str]:
    server = start_server(*args, env=env)
    return server, server.url


def stop(server: RunningServer) -> None:
    stop_server(server)


def until(check, what: str, limit_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Scrape until `check()` holds: what a server does after a client left is seen from outside only."""
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def open_stream(url: str) -> socket.socket:
    """A chat stream of 100 chunks, one every 100 ms, read up to its first event."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"model": "glm-5", "stream": True, "messages": [{"role": "user", "content": "go"}]}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer sk-test\r\nx-emulator-chunk-delay-ms: 100\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(head + body)
    received = b""
    while b"data: " not in received:
        received += sock.recv(65536)
    return sock


@pytest.fixture
def multiprocess_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        yield folder


def test_the_served_stream_path_counts_open_streams_chunks_and_lateness() -> None:
    process, url = serve("--seed", "3")
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            sock = open_stream(url)
            assert value(scrape(http), "tokenhub_emulator_open_streams", protocol="chat") == 1
            sock.close()
            until(lambda: value(scrape(http), "tokenhub_emulator_open_streams") == 0, "the stream never closed")
            reply = chat(
                http, "a story", {"x-emulator-chunk-delay-ms": "3", "x-emulator-test-id": "paced"}, stream=True
            )
            assert reply.status_code == 200
            [entry] = http.get("/_emulator/journal", params={"test_id": "paced"}).json()["data"]
            found = scrape(http)
            chunks = value(found, "tokenhub_emulator_stream_chunks_total")
            left_before = chunks - len(entry["chunk_times_ms"])  # the first stream's, written before it closed
            assert 1 <= left_before < 100
            assert value(found, "tokenhub_emulator_chunk_lateness_seconds_count") > 0
    finally:
        stop(process)


def test_two_processes_sharing_a_multiprocess_dir_are_scraped_as_one(multiprocess_dir: str) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": multiprocess_dir}
    (first, first_url), (second, second_url) = serve(env=env), serve(env=env)
    try:
        with httpx.Client(base_url=first_url, timeout=10) as one, httpx.Client(base_url=second_url, timeout=10) as two:
            for _ in range(3):
                assert chat(one, "hello").status_code == 200
            for _ in range(2):
                assert chat(two, "hello").status_code == 200
            assert chat(two, "hello", model="no-such-model").status_code >= 400
            for http in (one, two):  # each process folds its counts into the shared files within a second
                until(lambda http=http: value(scrape(http), "tokenhub_emulator_requests_total") == 6, "not all counted")
                found = scrape(http)
                assert value(found, "tokenhub_emulator_requests_total", model="glm-5", status="200") == 5
                assert value(found, "tokenhub_emulator_tokens_total", type="completion") > 0
            sock = open_stream(second_url)
            assert value(scrape(one), "tokenhub_emulator_open_streams", protocol="chat") == 1
            sock.close()
            stop(second)  # its counts stay (a counter of a process that ended still counted); its gauge goes
            found = scrape(one)
            assert value(found, "tokenhub_emulator_requests_total") == 7
            assert value(found, "tokenhub_emulator_open_streams") == 0
    finally:
        for server in (first, second):
            if server.process.poll() is None:
                stop(server)


def test_the_documented_names_are_the_exposed_ones(http: TestClient) -> None:
    chat(http, "ping", stream=True, headers={"x-emulator-chunk-delay-ms": "1", "x-emulator-fault": "error=503"})
    chat(http, "ping", stream=True, headers={"x-emulator-chunk-delay-ms": "1"})
    table = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(tokenhub_emulator_\w+)` \| (\w+) \|", table, re.M))
    exposed = {
        (family.name + ("_total" if family.type == "counter" else ""), family.type)
        for family in text_string_to_metric_families(http.get("/metrics").text)
        if family.name.startswith("tokenhub_emulator_") and not family.name.endswith("_created")  # a counter's start
    }
    assert documented == exposed
