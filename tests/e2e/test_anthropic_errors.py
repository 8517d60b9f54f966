"""Anthropic Messages errors: the envelope, the type per status, the SDK's own exception classes, and bad input
always a 400 that names the field, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.exchange import Failure
from emulator.profiles import PROFILES, Catalog
from emulator.protocols.anthropic_messages import MessagesAdapter
from emulator.protocols.base import Context
from tests.helpers.anthropic import ERROR, FIXTURE, SDK_ERROR_TYPES, WEATHER_TOOL, http, post, sdk, strict_parse
from tests.helpers.servers import SCENARIOS, RunningServer, start_server, stop_server

USER = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def scripted() -> Iterator[RunningServer]:
    running = start_server("--scenario", str(FIXTURE), "--scenario", str(SCENARIOS), "--max-body-bytes", "20000")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def upstream() -> Iterator[RunningServer]:
    running = start_server("--profile", "anthropic", "--scenario", str(FIXTURE))
    yield running
    stop_server(running)


def assert_envelope(response, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == "error" and set(body) <= {"type", "error", "request_id"}
    assert set(body["error"]) == {"type", "message"} and body["error"]["type"] == error_type
    if error_type in SDK_ERROR_TYPES:
        strict_parse(ERROR, body)
    return body["error"]


# ── scripted failures, raised as the SDK's own classes ───────────────────────


@pytest.mark.parametrize(
    "status, error_type, exception, message",
    [
        (400, "invalid_request_error", anthropic.BadRequestError, "Invalid request."),
        (401, "authentication_error", anthropic.AuthenticationError, "invalid x-api-key"),
        (403, "permission_error", anthropic.PermissionDeniedError, None),
        (404, "not_found_error", anthropic.NotFoundError, None),
        (413, "request_too_large", anthropic.RequestTooLargeError, None),
        (429, "rate_limit_error", anthropic.RateLimitError, None),
        (500, "api_error", anthropic.InternalServerError, "Internal server error"),
        (503, "overloaded_error", anthropic.ServiceUnavailableError, "Overloaded"),
        (529, "overloaded_error", anthropic.OverloadedError, "Overloaded"),
    ],
)
def test_scripted_failure_raises_the_sdk_class(scripted, status, error_type, exception, message):
    with pytest.raises(exception) as caught:
        sdk(scripted).messages.create(
            model="glm-5", max_tokens=100, messages=[{"role": "user", "content": f"status {status}"}]
        )
    error = caught.value
    assert error.status_code == status and error.type == error_type
    assert error.body["type"] == "error" and error.body["error"]["type"] == error_type
    if message is not None:
        assert error.body["error"]["message"] == message
    if status >= 500:
        assert isinstance(error, anthropic.InternalServerError)


def test_scripted_failure_envelope_and_headers(scripted):
    response = post(
        scripted, {"model": "glm-5", "max_tokens": 10, "messages": [{"role": "user", "content": "status 429"}]}
    )
    error = assert_envelope(response, 429, "rate_limit_error")
    assert "rate limit" in error["message"]
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["request-id"] == response.headers["x-request-id"] == response.json()["request_id"]


def test_sdk_sees_the_request_id(scripted):
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk(scripted).messages.create(
            model="glm-5", max_tokens=10, messages=[{"role": "user", "content": "status 429"}]
        )
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    message = sdk(scripted).messages.create(model="glm-5", max_tokens=10, messages=USER)
    assert message._request_id and message._request_id.startswith("req_")


def test_scripted_type_and_message_win(scripted):
    response = post(
        scripted, {"model": "glm-5", "max_tokens": 10, "messages": [{"role": "user", "content": "custom failure"}]}
    )
    assert response.status_code == 400
    assert response.json()["error"] == {"type": "context_length_exceeded", "message": "Too long."}


def test_scripted_failure_while_streaming_is_an_http_error(scripted):
    client = sdk(scripted)
    with pytest.raises(anthropic.OverloadedError):  # noqa: SIM117 - the stream is never entered
        with client.messages.stream(model="glm-5", max_tokens=10, messages=[{"role": "user", "content": "status 529"}]):
            pass


def test_retries_follow_the_sdk_rules(scripted):
    """The SDK retries 529 on its own; with the scenario failing every time it gives up with OverloadedError."""
    with pytest.raises(anthropic.OverloadedError):
        sdk(scripted, max_retries=1).with_options(timeout=10).messages.create(
            model="glm-5", max_tokens=10, messages=[{"role": "user", "content": "status 529"}]
        )


def test_body_too_large(scripted):
    body = {"model": "glm-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x" * 30000}]}
    error = assert_envelope(post(scripted, body), 413, "request_too_large")
    assert error["message"]
    with pytest.raises(anthropic.RequestTooLargeError):
        sdk(scripted).messages.create(**body)


def test_unknown_route_and_method_use_the_anthropic_envelope(scripted):
    with http(scripted) as client:
        missing = client.post("/v1/messages/nowhere", json={})
        wrong_method = client.get("/v1/messages")
    assert_envelope(missing, 404, "not_found_error")
    assert_envelope(wrong_method, 405, "invalid_request_error")


def test_malformed_json_and_media_type(scripted):
    with http(scripted) as client:
        broken = client.post("/v1/messages", content=b'{"model": ', headers={"content-type": "application/json"})
        text = client.post("/v1/messages", content=b"hello", headers={"content-type": "text/plain"})
    assert_envelope(broken, 400, "invalid_request_error")
    assert_envelope(text, 415, "invalid_request_error")


def test_error_event_and_request_id():
    """The in-stream error event, and the body's request_id when the pipeline passes one."""
    adapter = MessagesAdapter()
    context = Context(PROFILES["anthropic"], Catalog.with_builtins())
    event = adapter.error_event(Failure(status=529, message=""), context)  # no message: the table's wording
    assert event.event == "error"
    assert json.loads(event.data) == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    body = adapter.error_body(Failure(status=429, message="Slow down."), context, request_id="req_011abc")
    assert strict_parse(ERROR, body).request_id == "req_011abc"
    assert body["error"] == {"type": "rate_limit_error", "message": "Slow down."}


# ── authentication and the version header ────────────────────────────────────


def test_missing_key(server):
    response = post(server, {"model": "glm-5", "max_tokens": 10, "messages": USER}, headers={"x-api-key": ""})
    assert assert_envelope(response, 401, "authentication_error")["message"] == "x-api-key header is required"
    with http(server) as client:
        client.headers.pop("x-api-key")
        anonymous = client.post("/v1/messages", json={"model": "glm-5", "max_tokens": 10, "messages": USER})
    assert assert_envelope(anonymous, 401, "authentication_error")["message"] == "x-api-key header is required"


def test_bearer_key_is_accepted_too(server):
    client = anthropic.Anthropic(auth_token="sk-bearer", base_url=server.url, max_retries=0)
    message = client.messages.create(
        model="glm-5", max_tokens=100, messages=[{"role": "user", "content": "Calculate 1+1"}]
    )
    assert message.content[0].text == "1+1=2"


def test_restricted_keys():
    running = start_server("--api-key", "sk-ant-good")
    try:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            sdk(running, api_key="sk-ant-bad").messages.create(model="glm-5", max_tokens=10, messages=USER)
        assert caught.value.body["error"]["message"] == "invalid x-api-key"
        assert sdk(running, api_key="sk-ant-good").messages.create(model="glm-5", max_tokens=10, messages=USER).content
    finally:
        stop_server(running)


def test_version_header_optional_on_tokenhub_required_upstream(server, upstream):
    body = {"model": "glm-5", "max_tokens": 10, "messages": USER}
    assert post(server, body, headers={"anthropic-version": ""}).status_code == 200
    response = post(upstream, body, headers={"anthropic-version": ""})
    error = assert_envelope(response, 400, "invalid_request_error")
    assert error["message"] == "anthropic-version: header is required"
    beta = post(upstream, body, headers={"anthropic-beta": "prompt-caching-2024-07-31,something-else"})
    assert beta.status_code == 200


def test_unknown_model(server, upstream):
    body = {"model": "claude-unknown", "max_tokens": 10, "messages": USER}
    gateway = assert_envelope(post(server, body), 403, "permission_error")
    assert "claude-unknown" in gateway["message"]
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk(upstream).messages.create(**body)
    error = caught.value.body["error"]
    assert error["type"] == "not_found_error" and error["message"].startswith("model: claude-unknown. ")
    assert "Available models: deepseek-v3.2, glm-5," in error["message"] and "`models:`" in error["message"]


# ── bad input: a 400 naming the field, the way the API words it ──────────────


def _request(**overrides: Any) -> dict[str, Any]:
    body = {"model": "glm-5", "max_tokens": 100, "messages": USER}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def _tool_turns(result_id: str) -> list[dict[str, Any]]:
    call = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}
    result = {"type": "tool_result", "tool_use_id": result_id, "content": "sunny"}
    return [USER[0], {"role": "assistant", "content": [call]}, {"role": "user", "content": [result]}]


BAD_REQUESTS = [
    (_request(max_tokens=None), "max_tokens: Field required"),
    (_request(model=None), "model: Field required"),
    (_request(max_tokens="100"), "max_tokens: Input should be a valid integer"),
    (_request(max_tokens=1.5), "max_tokens: Input should be a valid integer"),
    (_request(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
    (_request(messages=[]), "messages: at least one message is required"),
    (_request(messages="Hello"), "messages: Input should be a valid list"),
    (
        _request(messages=[{"role": "system", "content": "x"}]),
        "messages.0: use the top-level `system` parameter for the initial system prompt; a role "
        '"system" message must follow a user or assistant message',
    ),
    (_request(messages=[{"role": "tool", "content": "x"}]), "messages.0.role: Input should be 'user' or 'assistant'"),
    (_request(messages=[{"role": "user"}]), "messages.0.content: Field required"),
    (_request(messages=[{"role": "user", "content": 42}]), "messages.0.content: Input should be a valid"),
    (
        _request(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "messages.0.content.0.text.text: Field required",
    ),
    (
        _request(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "video"}]}]),
        "messages.0.content.1: Input tag 'video' found using 'type' does not match any of the expected tags",
    ),
    (
        _request(messages=[{"role": "user", "content": [{"type": "tool_result"}]}]),
        "messages.0.content.0.tool_result.tool_use_id: Field required",
    ),
    (_request(messages=[{"role": "user", "content": ""}]), "messages.0: all messages must have non-empty content"),
    (
        _request(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
        "messages: text content blocks must be non-empty",
    ),
    (
        _request(messages=_tool_turns("toolu_01B")),
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01B.",
    ),
    (
        _request(messages=[*_tool_turns("toolu_01A")[:2], {"role": "user", "content": "and?"}]),
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01A.",
    ),
    (_request(system=7), "system: Input should be a valid"),
    (_request(tools=[{"name": "get_weather"}]), "tools.0.custom.input_schema: Field required"),
    (_request(tools=[{"name": "get_weather", "input_schema": {}}]), "tools.0.custom.input_schema.type: Field required"),
    (
        _request(tools=[{"name": "bad name!", "input_schema": {"type": "object"}}]),
        "tools.0.custom.name: String should match pattern",
    ),
    (_request(tools=[WEATHER_TOOL, WEATHER_TOOL]), "tools: Tool names must be unique."),
    (_request(tool_choice={"type": "sometimes"}), "tool_choice: Input tag 'sometimes' found using 'type'"),
    (_request(tools=[WEATHER_TOOL], tool_choice={"type": "tool"}), "tool_choice.tool.name: Field required"),
    (
        _request(tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "x"}),
        "tool_choice.tool.name: Tool 'x' not found",
    ),
    (_request(tool_choice={"type": "any"}), "tool_choice.any:"),
    (_request(stop_sequences="STOP"), "stop_sequences: Input should be a valid list"),
    (_request(temperature=2.5), "temperature: Input should be less than or equal to 2"),
    (_request(temperature="hot"), "temperature: Input should be a valid number"),
    (_request(top_p=1.5), "top_p: Input should be less than or equal to 1"),
    (_request(stream="yes"), "stream: Input should be a valid boolean"),
    (_request(cache_control={"type": "forever"}), "cache_control.type: Input should be 'ephemeral'"),
]


@pytest.mark.parametrize("body, message", BAD_REQUESTS, ids=[m.split(":")[0] for _, m in BAD_REQUESTS])
def test_bad_input_names_the_field(server, body, message):
    error = assert_envelope(post(server, body), 400, "invalid_request_error")
    assert error["message"].startswith(message), error["message"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"thinking": {"type": "enabled", "budget_tokens": 100}},
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
        ({"thinking": {"type": "sometimes"}}, "thinking: Input tag 'sometimes'"),
        ({"top_k": -1}, "top_k: Input should be greater than or equal to 0"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id: Input should be a valid string"),
        ({"service_tier": "gold"}, "service_tier: Input should be 'auto' or 'standard_only'"),
    ],
)
def test_fields_the_gateway_ignores_are_checked_upstream(server, upstream, overrides, message):
    body = _request(max_tokens=1024, **overrides)
    error = assert_envelope(post(upstream, body), 400, "invalid_request_error")
    assert error["message"].startswith(message), error["message"]
    assert post(server, body).status_code == 200  # tokenhub: ignored without a look


def test_a_body_that_is_not_an_object(server):
    with http(server) as client:
        response = client.post("/v1/messages", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert_envelope(response, 400, "invalid_request_error")


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
_FIELDS = st.sampled_from(
    [
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "thinking",
        "stream",
        "cache_control",
        "metadata",
    ]
)
_CACHE = st.one_of(_JSON, st.just({"type": "ephemeral"}), st.just({"type": "ephemeral", "ttl": "1h"}))
_BLOCK = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "document", "x"])},
    optional={
        "text": st.one_of(_JSON, st.text(min_size=1, max_size=8)),
        "id": _JSON,
        "tool_use_id": _JSON,
        "name": st.one_of(_JSON, st.just("get_weather")),
        "input": _JSON,
        "content": _JSON,
        "thinking": _JSON,
        "signature": _JSON,
        "cache_control": _CACHE,
    },
)
_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", 3])},
    optional={"content": st.one_of(st.text(max_size=6), st.lists(_BLOCK, max_size=3), _JSON)},
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    messages=st.lists(_MESSAGE, max_size=4),
    extra=st.dictionaries(_FIELDS, _JSON, max_size=3),
)
def test_never_a_server_error(server, messages, extra):
    assert_not_a_server_error(server, {"model": "glm-5", "max_tokens": 50, "messages": messages, **extra})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    messages=st.lists(_MESSAGE, max_size=4),
    extra=st.dictionaries(_FIELDS, _JSON, max_size=3),
    system=st.one_of(st.text(max_size=5), st.lists(_BLOCK, max_size=5)),
)
def test_never_a_server_error_upstream(upstream, messages, extra, system):
    """The upstream profile checks more (thinking, caching, top_k, …): the same promise."""
    body = {"model": "glm-5", "max_tokens": 50, "messages": messages, "system": system, **extra}
    assert_not_a_server_error(upstream, body)


def assert_not_a_server_error(server: RunningServer, body: dict[str, Any]) -> None:
    response = post(server, body)
    assert response.status_code < 500, (json.dumps(body), response.text)
    if response.status_code != 200:
        assert response.json()["type"] == "error"
