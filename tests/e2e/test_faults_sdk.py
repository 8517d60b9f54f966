"""The official SDKs against the faults, over loopback: their retries recover and wait the retry-after they were
sent (read from the emulator's own journal), and each fault surfaces the way the real failure does."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest
from packaging.version import Version

from tests.helpers.servers import RunningServer, start_server, stop_server

SCENARIO = """
rules:
  - name: flaky
    when: {last_user: flaky}
    sequence:
      - fault: {error: 429, retry_after_ms: 400}
      - fault: {error: 503, retry_after_ms: 250}
      - reply: {content: Recovered.}
  - name: fixed
    when: {last_user: hello}
    reply: {content: "Hello there, how are you doing today?"}
"""
USER = [{"role": "user", "content": "hello"}]
FULL_TEXT = "Hello there, how are you doing today?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path = tmp_path_factory.mktemp("sdk") / "flaky.yaml"
    path.write_text(SCENARIO)
    running = start_server("--scenario", str(path))
    yield running
    stop_server(running)


def journal(server: RunningServer, test_id: str) -> list[dict[str, Any]]:
    with server.http() as client:
        return client.get("/_emulator/journal", params={"test_id": test_id}).json()["data"]


def waits_ms(entries: list[dict[str, Any]]) -> list[float]:
    """From the end of each response to the start of the next request, on the emulator's clock."""
    return [
        (later["time"] - (earlier["time"] + earlier["duration_ms"] / 1000)) * 1000
        for earlier, later in zip(entries, entries[1:], strict=False)
    ]


def assert_recovered_after_waiting(server: RunningServer, test_id: str) -> None:
    entries = journal(server, test_id)
    assert [e["status"] for e in entries] == [429, 503, 200]
    asked = [float(e["response_headers"]["retry-after-ms"]) for e in entries[:2]]
    assert asked == [400, 250]
    assert all(waited >= want for waited, want in zip(waits_ms(entries), asked, strict=True)), waits_ms(entries)
    with server.http() as client:
        report = client.get("/_emulator/report", params={"test_id": test_id}).json()
    assert report["ok"] is True and report["retries"] == 2 and report["gave_up"] == 0
    assert report["chains"][0]["backoff"] == "as told"


def test_openai_retries_429_then_503_and_waits_the_retry_after(server: RunningServer) -> None:
    client = openai.OpenAI(
        api_key="sk-test", base_url=server.base_url, max_retries=2, default_headers={"x-emulator-test-id": "oai-flaky"}
    )
    reply = client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "flaky"}])
    assert reply.choices[0].message.content == "Recovered."
    assert_recovered_after_waiting(server, "oai-flaky")


def test_anthropic_retries_429_then_503_and_waits_the_retry_after(server: RunningServer) -> None:
    client = anthropic.Anthropic(
        api_key="sk-test", base_url=server.url, max_retries=2, default_headers={"x-emulator-test-id": "ant-flaky"}
    )
    message = client.messages.create(model="glm-5", max_tokens=50, messages=[{"role": "user", "content": "flaky"}])
    assert message.content[0].text == "Recovered."  # type: ignore[union-attr]
    assert_recovered_after_waiting(server, "ant-flaky")
    entries = journal(server, "ant-flaky")
    assert entries[0]["response_headers"]["anthropic-ratelimit-requests-remaining"] == "0"
    assert entries[0]["error"]["error"]["type"] == "rate_limit_error"


# ---------------------------------------------------------------- each SDK, each mid-stream fault


def openai_chat(server: RunningServer, fault: str, timeout: float) -> str:
    client = openai.OpenAI(api_key="sk", base_url=server.base_url, max_retries=0, timeout=timeout)
    stream = client.chat.completions.create(
        model="glm-5", messages=USER, stream=True, extra_headers={"x-emulator-fault": fault}
    )
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "stop"
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def openai_responses(server: RunningServer, fault: str, timeout: float) -> str:
    client = openai.OpenAI(api_key="sk", base_url=server.base_url, max_retries=0, timeout=timeout)
    with client.responses.stream(model="glm-5", input="hello", extra_headers={"x-emulator-fault": fault}) as stream:
        for _ in stream:
            pass
        return stream.get_final_response().output_text


def anthropic_messages(server: RunningServer, fault: str, timeout: float) -> str:
    client = anthropic.Anthropic(api_key="sk", base_url=server.url, max_retries=0, timeout=timeout)
    with client.messages.stream(
        model="glm-5", max_tokens=100, messages=USER, extra_headers={"x-emulator-fault": fault}
    ) as stream:
        text = "".join(stream.text_stream)
        assert stream.get_final_message().stop_reason == "end_turn"
        return text


SDKS: dict[str, Callable[[RunningServer, str, float], str]] = {
    "openai-chat": openai_chat,
    "openai-responses": openai_responses,
    "anthropic": anthropic_messages,
}


def named(module: str, name: str) -> Callable[[BaseException], bool]:
    """An exception class from the transport library the SDK bundles (httpx or httpx2), by name."""
    return lambda error: type(error).__name__ == name and type(error).__module__.split(".")[0].startswith(module)


def is_class(cls: type[BaseException]) -> Callable[[BaseException], bool]:
    return lambda error: isinstance(error, cls)


def says(cls: type[BaseException], text: str) -> Callable[[BaseException], bool]:
    return lambda error: isinstance(error, cls) and text in str(error)


def anthropic_stream_error(wrapped: type[BaseException], raw: str) -> Callable[[BaseException], bool]:
    """What a broken stream raises from the anthropic SDK's iterator: its own public class since 2.17; before that,
    the transport library's error went through unwrapped (both ranges are supported: pyproject says anthropic>=0.40).
    """
    if Version(anthropic.__version__) >= Version("2.17"):
        return lambda error: type(error) is wrapped
    return named("httpx", raw)


# (sdk, fault) → what the application sees: a predicate on the exception, or None for a complete result
MID_STREAM: list[tuple[str, str, Callable[[BaseException], bool] | None]] = [
    ("openai-chat", "disconnect_after=4", is_class(openai.APIConnectionError)),
    ("openai-responses", "disconnect_after=4", is_class(openai.APIConnectionError)),
    ("anthropic", "disconnect_after=4", anthropic_stream_error(anthropic.APIConnectionError, "RemoteProtocolError")),
    ("openai-chat", "stall=3000; after=3", is_class(openai.APITimeoutError)),
    ("openai-responses", "stall=3000; after=3", is_class(openai.APITimeoutError)),
    ("anthropic", "stall=3000; after=3", anthropic_stream_error(anthropic.APITimeoutError, "ReadTimeout")),
    ("openai-chat", "malformed; after=2", is_class(json.JSONDecodeError)),
    ("openai-responses", "malformed; after=2", is_class(json.JSONDecodeError)),
    ("anthropic", "malformed; after=2", is_class(json.JSONDecodeError)),
    ("openai-chat", "error_event; after=3", says(openai.APIError, "Engine internal error")),
    ("openai-responses", "error_event; after=3", says(RuntimeError, "response.completed")),
    ("anthropic", "error_event; after=3", says(anthropic.APIStatusError, "overloaded_error")),
    ("openai-chat", "no_terminator", None),  # [DONE] is not needed: the result looks complete
    ("openai-responses", "no_terminator", says(RuntimeError, "Didn't receive a `response.completed` event")),
    ("anthropic", "no_terminator", None),  # message_stop is not needed either
]


@pytest.mark.parametrize(
    ("sdk", "fault", "expected"), MID_STREAM, ids=[f"{s}-{f.split(';')[0]}" for s, f, _ in MID_STREAM]
)
def test_a_mid_stream_fault_surfaces_as_the_real_one_does(
    server: RunningServer, sdk: str, fault: str, expected: Callable[[BaseException], bool] | None
) -> None:
    if expected is None:
        assert SDKS[sdk](server, fault, 5.0) == FULL_TEXT
        return
    with pytest.raises(Exception) as caught:  # noqa: B017 - the predicate names the class
        SDKS[sdk](server, fault, 0.8)
    assert expected(caught.value), repr(caught.value)


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_a_short_stall_only_slows_the_stream(server: RunningServer, sdk: str) -> None:
    started = time.perf_counter()
    assert SDKS[sdk](server, "stall=500; after=3", 5.0) == FULL_TEXT
    assert time.perf_counter() - started >= 0.5


# ---------------------------------------------------------------- transport faults


def openai_call(server: RunningServer, fault: str, timeout: float = 5.0, retries: int = 0) -> Any:
    client = openai.OpenAI(api_key="sk", base_url=server.base_url, max_retries=retries, timeout=timeout)
    return client.chat.completions.create(model="glm-5", messages=USER, extra_headers={"x-emulator-fault": fault})


def anthropic_call(server: RunningServer, fault: str, timeout: float = 5.0, retries: int = 0) -> Any:
    client = anthropic.Anthropic(api_key="sk", base_url=server.url, max_retries=retries, timeout=timeout)
    return client.messages.create(
        model="glm-5", max_tokens=100, messages=USER, extra_headers={"x-emulator-fault": fault}
    )


CALLS = {"openai": (openai_call, openai), "anthropic": (anthropic_call, anthropic)}


@pytest.mark.parametrize("sdk", sorted(CALLS))
@pytest.mark.parametrize("fault", ["reset", "empty", "truncate"])
def test_a_broken_connection_is_a_connection_error(server: RunningServer, sdk: str, fault: str) -> None:
    call, module = CALLS[sdk]
    with pytest.raises(module.APIConnectionError) as caught:
        call(server, fault)
    assert not isinstance(caught.value, module.APITimeoutError)


@pytest.mark.parametrize("sdk", sorted(CALLS))
def test_a_hang_ends_in_the_clients_timeout(server: RunningServer, sdk: str) -> None:
    call, module = CALLS[sdk]
    started = time.perf_counter()
    with pytest.raises(module.APITimeoutError):
        call(server, "hang", timeout=0.5)
    assert 0.45 <= time.perf_counter() - started < 5


@pytest.mark.parametrize("sdk", sorted(CALLS))
def test_latency_before_the_headers(server: RunningServer, sdk: str) -> None:
    call, _ = CALLS[sdk]
    started = time.perf_counter()
    call(server, "latency=400")
    assert time.perf_counter() - started >= 0.4


@pytest.mark.parametrize("sdk", sorted(CALLS))
def test_the_sdks_retry_a_reset_connection(server: RunningServer, sdk: str) -> None:
    call, _ = CALLS[sdk]
    test_id = f"reset-once-{sdk}"
    client_headers = {"x-emulator-test-id": test_id}
    fault = "reset; first=1"
    if sdk == "openai":
        client = openai.OpenAI(api_key="sk", base_url=server.base_url, max_retries=2, default_headers=client_headers)
        client.chat.completions.create(model="glm-5", messages=USER, extra_headers={"x-emulator-fault": fault})
    else:
        client = anthropic.Anthropic(api_key="sk", base_url=server.url, max_retries=2, default_headers=client_headers)
        client.messages.create(model="glm-5", max_tokens=50, messages=USER, extra_headers={"x-emulator-fault": fault})
    entries = journal(server, test_id)
    assert [e["status"] for e in entries] == [None, 200]
    with server.http() as http:
        report = http.get("/_emulator/report", params={"test_id": test_id}).json()
    assert report["faults"] == {"reset": {"seen": 1, "retried": 1, "honored_retry_after": 0}}
    assert report["chains"][0]["last_outcome"] == "200 ok" and report["ok"] is True


# ---------------------------------------------------------------- timing through each SDK


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_time_to_first_token_through_each_sdk(server: RunningServer, sdk: str) -> None:
    headers = {"x-emulator-ttft-ms": "300", "x-emulator-chunk-delay-ms": "0"}
    started = time.perf_counter()
    if sdk == "anthropic":
        client = anthropic.Anthropic(api_key="sk", base_url=server.url, max_retries=0, default_headers=headers)
        with client.messages.stream(model="glm-5", max_tokens=100, messages=USER) as stream:
            first = next(iter(stream.text_stream))
    else:
        client = openai.OpenAI(api_key="sk", base_url=server.base_url, max_retries=0, default_headers=headers)
        if sdk == "openai-chat":
            stream = client.chat.completions.create(model="glm-5", messages=USER, stream=True)
            first = next(c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content)
        else:
            events = client.responses.create(model="glm-5", input="hello", stream=True)
            first = next(e.delta for e in events if e.type == "response.output_text.delta")
    assert first and time.perf_counter() - started >= 0.3
