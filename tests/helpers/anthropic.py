"""The Anthropic Messages tests' shared fixture, SDK types and request helpers: strict parsing of every reply and event."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
from pydantic import BaseModel, TypeAdapter

from tests.helpers.servers import ROOT, RunningServer

FIXTURE = ROOT / "tests" / "fixtures" / "anthropic.yaml"


MESSAGE = TypeAdapter(anthropic.types.Message)


EVENT = TypeAdapter(anthropic.types.RawMessageStreamEvent)


ERROR = TypeAdapter(anthropic.types.ErrorResponse)


# the types the SDK's ErrorResponse union lists (not request_too_large, nor a scenario's own type)
SDK_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
        "timeout_error",
        "api_error",
        "overloaded_error",
    }
)


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Obtain the real-time weather for a specified city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}


def sdk(server: RunningServer, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("api_key", "sk-ant-test")
    return anthropic.Anthropic(base_url=server.url, **kwargs)


def http(server: RunningServer, headers: dict[str, str] | None = None) -> httpx.Client:
    """A plain HTTP client with what the SDK sends: a key and the version header."""
    defaults = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
    return httpx.Client(base_url=server.url, headers={**defaults, **(headers or {})}, timeout=10)


def _assert_no_unknown_keys(value: Any) -> None:
    if isinstance(value, BaseModel):
        assert not value.model_extra, f"keys the SDK does not know in {type(value).__name__}: {value.model_extra}"
        for name in type(value).model_fields:
            _assert_no_unknown_keys(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            _assert_no_unknown_keys(item)


def strict_parse(adapter: TypeAdapter, payload: dict[str, Any]) -> Any:
    """The SDK type, checked both ways: every key sent is one of its fields and dumps back to the same value."""
    parsed = adapter.validate_python(payload)
    _assert_no_unknown_keys(parsed)
    assert BaseModel.model_dump(parsed, mode="json", exclude_unset=True) == payload
    return parsed


def post(server: RunningServer, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    """A create request over plain HTTP; a message or an error body is checked against the SDK types."""
    with http(server, headers) as client:
        response = client.post("/v1/messages", json=body)
    payload = response.json()
    if response.status_code == 200:
        strict_parse(MESSAGE, payload)
    elif payload.get("error", {}).get("type") in SDK_ERROR_TYPES:
        strict_parse(ERROR, payload)
    return response


def create(server: RunningServer, **body: Any) -> tuple[anthropic.types.Message, dict[str, Any]]:
    """The message as the SDK parses it, and the exact JSON the server sent (checked against the SDK types)."""
    raw = sdk(server).messages.with_raw_response.create(**body)
    payload = json.loads(raw.text())
    strict_parse(MESSAGE, payload)
    return raw.parse(), payload


def sse_events(text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE frame."""
    for frame in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines() if line and not line.startswith(":"))
        if lines:
            yield lines["event"], json.loads(lines["data"])


def stream_events(server: RunningServer, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[Any]:
    """The raw stream, each event checked against the SDK's RawMessageStreamEvent; pings left out."""
    with http(server, headers) as client, client.stream("POST", "/v1/messages", json={**body, "stream": True}) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = []
    for name, data in sse_events(text):
        assert name == data["type"]
        if name != "ping":
            events.append(strict_parse(EVENT, data))
    return events

