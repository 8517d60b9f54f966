"""The resilience report: right for a client that behaves and for one that does not, as JSON and from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.helpers.servers import ROOT, RunningServer, start_server, stop_server

BODY = {"model": "glm-5", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start_server()
    yield running
    stop_server(running)


def report_of(server: RunningServer, test_id: str) -> dict[str, Any]:
    with server.http() as client:
        response = client.get("/_emulator/report", headers={"x-emulator-test-id": test_id})
    assert response.status_code == 200
    return response.json()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", "report", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_a_well_behaved_sdk_client(server: RunningServer) -> None:
    client = openai.OpenAI(
        api_key="sk-good",
        base_url=server.base_url,
        max_retries=3,
        default_headers={"x-emulator-test-id": "good", "x-emulator-fault": "error=429; retry_after_ms=300; first=2"},
    )
    client.chat.completions.create(**BODY)  # type: ignore[call-overload]
    data = report_of(server, "good")
    assert data["ok"] is True and data["retries"] == 2 and data["gave_up"] == 0
    assert data["faults"] == {"error 429": {"seen": 2, "retried": 2, "honored_retry_after": 2}}
    result = cli("--url", server.url, "--test-id", "good")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "— OK" in result.stdout and "#3 after" in result.stdout


def test_a_deliberately_bad_client(server: RunningServer) -> None:
    headers = {"authorization": "Bearer sk-bad", "x-emulator-test-id": "bad"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        for _ in range(3):  # hammers through a 429 that asked for 2 s
            sent = client.post(
                "/v1/chat/completions", json=BODY, headers={"x-emulator-fault": "error=429; retry_after=2"}
            )
            assert sent.status_code == 429
        for _ in range(2):  # and retries a 400
            client.post("/v1/chat/completions", json={**BODY, "temperature": 7})
    data = report_of(server, "bad")
    assert data["ok"] is False
    first, second = data["chains"]
    assert first["retried_too_early"] == [2, 3] and first["gave_up"] is True
    assert second["retried_non_retryable"] == [2] and second["last_outcome"].startswith("400")
    result = cli("--url", server.url, "--test-id", "bad")
    assert result.returncode == 1
    assert "which asked to wait 2000 ms" in result.stdout and "not retryable" in result.stdout
    as_json = cli("--url", server.url, "--test-id", "bad", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["problems"] == data["problems"]


def test_the_cli_without_a_server() -> None:
    result = cli("--url", "http://127.0.0.1:9")
    assert result.returncode == 2 and "cannot get the report" in result.stderr
