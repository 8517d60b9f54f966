"""Scenario behaviour seen from a client: sequences per test id, the error fallback, templated replies."""

from __future__ import annotations

import openai
import pytest

from tests.helpers.servers import SCENARIOS, start_server, stop_server


def ask(client: openai.OpenAI, text: str, test_id: str):
    return client.chat.completions.create(
        model="glm-5",
        messages=[{"role": "user", "content": text}],
        extra_headers={"x-emulator-test-id": test_id},
    )


def test_flaky_example_fails_twice_then_recovers(server):
    client = server.openai()
    with pytest.raises(openai.RateLimitError) as first:
        ask(client, "flaky: hello", "flaky-1")
    assert first.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError) as second:
        ask(client, "flaky: hello", "flaky-1")
    assert second.value.status_code == 503
    assert ask(client, "flaky: hello", "flaky-1").choices[0].message.content == "Recovered after two failures."
    assert ask(client, "flaky: hello", "flaky-1").choices[0].message.content == "Recovered after two failures."


def test_sequences_count_separately_per_test_id(server):
    client = server.openai()
    with pytest.raises(openai.RateLimitError):
        ask(client, "flaky: a", "isolated-a")
    with pytest.raises(openai.RateLimitError):
        ask(client, "flaky: b", "isolated-b")


def test_openai_sdk_retries_through_the_sequence(server):
    client = server.openai(max_retries=2)
    # the SDK honours retry-after (1 s) for the 429 and backs off briefly for the 503
    assert ask(client, "flaky: retried", "sdk-retry").choices[0].message.content == "Recovered after two failures."


@pytest.fixture(scope="module")
def strict_server():
    running = start_server("--scenario", str(SCENARIOS), "--fallback", "error")
    yield running
    stop_server(running)


def test_error_fallback_names_the_nearest_rules(strict_server):
    with strict_server.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "glm-5", "messages": [{"role": "user", "content": "Calculate 2+2"}]},
        )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("No scenario rule matched this request. Nearest rules: 1) ")
    assert "one plus one" in message and "Calculate 1+1" in message
