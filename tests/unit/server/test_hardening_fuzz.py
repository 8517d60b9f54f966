"""Fuzzing every endpoint, short form: no 5xx, every error in its protocol's envelope, the server alive after.

tests/unit/server/test_fuzz.py covers chat completions and the Responses create endpoint; this adds Anthropic Messages
(and count_tokens), the models routes, the stored-response routes, wrong paths and methods, auth headers,
and the control API — the latter with schemathesis against the served /_emulator/openapi.json.
In-process (starlette TestClient). The long form, `python bench/fuzz_long.py`, runs this module against real
servers with many more examples: it sets TOKENHUB_FUZZ_URL (protocol endpoints), TOKENHUB_FUZZ_CONTROL_URL (the
control API: its own server, since fuzzing it switches faults on) and TOKENHUB_FUZZ_EXAMPLES.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.server.app import build_app
from tests.helpers.fuzz import VALID_CHAT as RICH_CHAT
from tests.helpers.fuzz import VALID_RESPONSES as RICH_RESPONSES
from tests.helpers.fuzz import field_paths, json_values, replaced
from tests.helpers.servers import SCENARIOS

HEADERS = {"authorization": "Bearer sk-fuzz", "content-type": "application/json"}
VALID_MESSAGES: dict[str, Any] = {
    "model": "glm-5",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ],
    "tools": [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto"},
    "temperature": 0.5,
    "top_p": 0.9,
    "stop_sequences": ["END"],
    "metadata": {"user_id": "u"},
    "stream": False,
}
VALID_COUNT = {k: v for k, v in VALID_MESSAGES.items() if k in ("model", "system", "messages", "tools", "tool_choice")}
VALID_CHAT = {"model": "glm-5", "messages": [{"role": "user", "content": "hi"}]}
VALID_RESPONSES = {"model": "glm-5", "input": "hi"}
BODIES = {
    "/v1/chat/completions": VALID_CHAT,
    "/v1/responses": VALID_RESPONSES,
    "/v1/messages": VALID_MESSAGES,
    "/v1/messages/count_tokens": VALID_COUNT,
}
URL = os.environ.get("TOKENHUB_FUZZ_URL")  # the long form: a real server
CONTROL_URL = os.environ.get("TOKENHUB_FUZZ_CONTROL_URL")
EXAMPLES = int(os.environ.get("TOKENHUB_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
FEW = settings(max_examples=max(1, EXAMPLES * 5 // 12), deadline=None, suppress_health_check=list(HealthCheck))


PRINTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
HEADER_VALUE = PRINTABLE.map(str.strip)  # what an HTTP client will send: no surrounding blanks


def deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value] if depth % 2 else {"k": value}
    return value


# Values no well-behaved client sends: beyond every range, past every length, nested past every recursion limit.
HOSTILE = st.sampled_from(
    [
        10**30,
        -(10**30),
        2**63,
        -(2**63) - 1,
        1.7976931348623157e308,
        -1e-320,
        "x" * 200_000,
        "\u0000\u202e\ufeff",
        "\ud800",
        "😀" * 5_000,
        deep(400),
        [None] * 5_000,
        {str(i): i for i in range(2_000)},
        "",
        [],
        {},
        True,
    ]
)


@pytest.fixture(scope="module")
def client():
    if URL:
        with httpx.Client(base_url=URL, timeout=60) as real:
            yield real
        return
    with TestClient(
        build_app(Settings(scenarios=[SCENARIOS])), base_url="http://127.0.0.1", raise_server_exceptions=False
    ) as test_client:
        yield test_client


def post(client, path: str, body: Any, headers: dict[str, str] = HEADERS):
    """JSON with every non-ASCII character escaped, so that lone surrogates (`\\ud800`) can be sent."""
    return client.post(path, content=json.dumps(body).encode(), headers=headers)


def is_anthropic(path: str) -> bool:
    return path.startswith("/v1/messages")


def assert_enveloped(response, path: str) -> None:
    """No 5xx; a 4xx in the envelope of the protocol the path belongs to; a 2xx that parses."""
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        body = response.json()
        if is_anthropic(path):
            assert body["type"] == "error" and set(body) <= {"type", "error", "request_id"}, body
            assert set(body["error"]) == {"type", "message"} and body["error"]["message"], body
        else:
            assert set(body) == {"error"}, body
            assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"], body
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        for block in response.text.split("\n\n"):
            for line in re.split(r"\r\n|\r|\n", block):  # SSE lines end at CR / LF only (not U+2028 …)
                if line.startswith("data: ") and line != "data: [DONE]":
                    json.loads(line[6:])
    else:
        response.json()


def test_the_valid_requests_are_valid(client):
    for path, body in BODIES.items():
        response = client.post(path, json=body, headers=HEADERS)
        assert response.status_code == 200, (path, response.text)


MESSAGES_PATHS = field_paths(VALID_MESSAGES)
COUNT_PATHS = field_paths(VALID_COUNT)


@FUZZ
@given(path=st.sampled_from(MESSAGES_PATHS), value=json_values | HOSTILE, stream=st.booleans())
def test_messages_any_field_replaced(client, path, value, stream):
    body = replaced(VALID_MESSAGES, path, value)
    if path and isinstance(body, dict):
        body["stream"] = stream if path != ("stream",) else value
    assert_enveloped(post(client, "/v1/messages", body), "/v1/messages")


@pytest.mark.skipif(not URL, reason="the long form only: tests/unit/server/test_fuzz.py fuzzes these two in CI")
@FUZZ
@given(
    endpoint_path=st.sampled_from(
        [("/v1/chat/completions", p) for p in field_paths(RICH_CHAT)]
        + [("/v1/responses", p) for p in field_paths(RICH_RESPONSES)]
    ),
    value=json_values | HOSTILE,
    stream=st.booleans(),
)
def test_openai_any_field_replaced(client, endpoint_path, value, stream):
    endpoint, path = endpoint_path
    body = replaced(RICH_CHAT if endpoint == "/v1/chat/completions" else RICH_RESPONSES, path, value)
    if path and isinstance(body, dict) and path != ("stream",):
        body["stream"] = stream
    assert_enveloped(post(client, endpoint, body), endpoint)


@FUZZ
@given(path=st.sampled_from(COUNT_PATHS), value=json_values | HOSTILE)
def test_count_tokens_any_field_replaced(client, path, value):
    body = replaced(VALID_COUNT, path, value)
    response = post(client, "/v1/messages/count_tokens", body)
    assert_enveloped(response, "/v1/messages/count_tokens")


@FUZZ
@given(endpoint=st.sampled_from(sorted(BODIES)), key=st.sampled_from(["model", "messages", "input"]), value=HOSTILE)
def test_hostile_values_at_the_top_fields(client, endpoint, key, value):
    body = {**BODIES[endpoint], key: value}
    assert_enveloped(post(client, endpoint, body), endpoint)


@FUZZ
@given(endpoint=st.sampled_from(sorted(BODIES)), raw=st.binary(max_size=300))
def test_any_bytes(client, endpoint, raw):
    assert_enveloped(client.post(endpoint, content=raw, headers=HEADERS), endpoint)


@FUZZ
@given(endpoint=st.sampled_from(sorted(BODIES)), data=st.data())
def test_truncated_json(client, endpoint, data):
    text = json.dumps(BODIES[endpoint])
    cut = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    response = client.post(endpoint, content=text[:cut], headers=HEADERS)
    assert response.status_code == 400, response.text
    assert_enveloped(response, endpoint)


@FUZZ
@given(
    endpoint=st.sampled_from(sorted(BODIES)),
    content_type=st.sampled_from(["", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
    | HEADER_VALUE,
)
def test_wrong_content_types(client, endpoint, content_type):
    headers = {**HEADERS, "content-type": content_type}
    assert_enveloped(client.post(endpoint, content=json.dumps(BODIES[endpoint]), headers=headers), endpoint)


@pytest.mark.parametrize("endpoint", sorted(BODIES))
@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b"\xff\xfe\x00{",
        b'{"model": "glm-5", "messages": [{"role": "user", "content": "\xc3\x28"}]}',
        b'{"model": "glm-5", "messages": [{"role": "user", "content": "\\udfff"}]}',
        b'{"model": 1e999999}',
        b'{"model": "glm-5", "max_tokens": 1' + b"0" * 5_000 + b"}",
        b"\x00" * 1000,
        b"{}" * 1000,
    ],
    ids=[
        "deep-array",
        "deep-object",
        "bom-garbage",
        "invalid-utf8",
        "lone-surrogate",
        "inf",
        "huge-int",
        "nul",
        "junk",
    ],
)
def test_known_hostile_bodies(client, endpoint, raw):
    response = client.post(endpoint, content=raw, headers=HEADERS)
    assert response.status_code == 400, response.text[:300]
    assert_enveloped(response, endpoint)


@FUZZ
@given(endpoint=st.sampled_from(sorted(BODIES)), authorization=HEADER_VALUE, api_key=st.none() | HEADER_VALUE)
def test_any_credentials(client, endpoint, authorization, api_key):
    headers = {"content-type": "application/json", "authorization": authorization}
    if api_key is not None:
        headers["x-api-key"] = api_key
    response = client.post(endpoint, json=BODIES[endpoint], headers=headers)
    assert response.status_code in (200, 401), response.text[:300]
    assert_enveloped(response, endpoint)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    path=st.sampled_from(["/v1/models", "/v1/models/glm-5", "/v1/chat/completions", "/v1/messages", "/v1/responses"])
    | st.text(max_size=40).map(lambda t: "/v1/" + quote(t, safe="/")),
    query=st.dictionaries(PRINTABLE, PRINTABLE, max_size=3),
)
def test_any_method_path_and_query(client, method, path, query):
    response = client.request(method, path, params=query, headers={"authorization": "Bearer sk-fuzz"})
    assert_enveloped(response, path)


@pytest.fixture(scope="module")
def stored_id(client) -> str:
    response = client.post("/v1/responses", json={**VALID_RESPONSES, "store": True}, headers=HEADERS)
    return response.json()["id"]


@FUZZ
@given(
    query=st.fixed_dictionaries(
        {},
        optional={
            k: PRINTABLE | HOSTILE.map(str).filter(lambda t: t.isascii() and len(t) < 2_000)
            for k in ("limit", "order", "after")
        },
    )
)
def test_stored_response_input_items_any_query(client, stored_id, query):
    response = client.get(f"/v1/responses/{stored_id}/input_items", params=query, headers=HEADERS)
    assert response.status_code in (200, 400), response.text[:300]
    assert_enveloped(response, "/v1/responses")


@FUZZ
@given(previous=st.text(max_size=80) | HOSTILE, stream=st.booleans())
def test_responses_any_previous_response_id(client, previous, stream):
    body = {**VALID_RESPONSES, "previous_response_id": previous, "stream": stream}
    assert_enveloped(post(client, "/v1/responses", body), "/v1/responses")


def test_a_405_on_a_stored_response_lists_every_method(client, stored_id):
    response = client.request("PUT", f"/v1/responses/{stored_id}", headers=HEADERS)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "DELETE"}


def test_still_alive(client):
    assert client.get("/_emulator/health").json()["status"] == "ok"
    for path, body in BODIES.items():
        assert client.post(path, json=body, headers=HEADERS).status_code == 200


# ---------------------------------------------------------------- the control API, from its OpenAPI document

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import checks as st_checks  # noqa: E402

CONTROL_APP = build_app(Settings(scenarios=[SCENARIOS]))
if CONTROL_URL:
    SCHEMA = schemathesis.openapi.from_url(CONTROL_URL + "/_emulator/openapi.json")
else:
    SCHEMA = schemathesis.openapi.from_asgi("/_emulator/openapi.json", CONTROL_APP)


def control_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every control API error is `{"error": {message, type, param, code, …}}`."""
    if response.status_code >= 400:
        error = json.loads(response.content)["error"]
        assert {"message", "type", "param", "code"} <= set(error) and error["message"], response.content[:300]
    return None


# positive_data_acceptance: the schema cannot say everything the server checks (a scenario's YAML, a fault's keys).
EXCLUDED: list[Callable[..., Any]] = [st_checks.positive_data_acceptance]


@SCHEMA.parametrize()
@FEW
def test_control_api_against_its_openapi_document(case):
    if isinstance(case.body, dict) and isinstance(case.body.get("path"), str):
        case.body["path"] = "/nonexistent/fuzz/" + quote(case.body["path"], safe="")  # never read server files
    excluded = list(EXCLUDED)
    if case.operation.label == "POST /scenarios":  # any text is schema-valid YAML; `{}` is an empty scenario
        excluded.append(st_checks.negative_data_rejection)
    case.call_and_validate(additional_checks=[control_envelope], excluded_checks=excluded)


CONTROL_POSTS = ["/_emulator/scenarios", "/_emulator/fail_next", "/_emulator/faults", "/_emulator/reset"]


@pytest.fixture(scope="module")
def control_client():
    if CONTROL_URL:
        with httpx.Client(base_url=CONTROL_URL, timeout=60) as real:
            yield real
        return
    with TestClient(CONTROL_APP, base_url="http://127.0.0.1", raise_server_exceptions=False) as test_client:
        yield test_client


@FEW
@given(
    path=st.sampled_from(CONTROL_POSTS),
    raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
    content_type=st.sampled_from(["application/json", "application/yaml", "text/plain", "", "image/png"]),
)
def test_control_posts_any_body(control_client, path, raw, content_type):
    response = control_client.post(path, content=raw, headers={"content-type": content_type})
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert {"message", "type", "param", "code"} <= set(error)


@FEW
@given(headers=st.dictionaries(PRINTABLE | st.text(max_size=10), json_values, max_size=3))
def test_fail_next_headers_are_checked_before_they_break_a_reply(control_client, headers):
    clean(control_client)
    queued = control_client.post("/_emulator/fail_next", json={"headers": headers, "status": 503})
    assert queued.status_code in (201, 400), queued.text
    reply = control_client.post("/v1/chat/completions", json=VALID_CHAT, headers=HEADERS)
    assert reply.status_code == (503 if queued.status_code == 201 else 200), reply.text[:300]
    control_client.post("/_emulator/reset", headers={"content-type": "application/json"})


@pytest.mark.parametrize("text", ["a: !!int hi\n", "rules: !!bool maybe\n"])
def test_a_scenario_the_loader_trips_on_is_a_400_not_a_500(control_client, text):
    response = control_client.post("/_emulator/scenarios", content=text, headers={"content-type": "application/yaml"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_scenario"


def test_a_405_on_a_control_path_lists_every_method(control_client):
    for path, methods in (
        ("/_emulator/scenarios", {"GET", "POST", "DELETE"}),
        ("/_emulator/faults", {"GET", "POST", "DELETE"}),
    ):
        response = control_client.put(path)
        assert response.status_code == 405
        assert {m.strip() for m in response.headers["allow"].split(",")} >= methods


def clean(control_client) -> None:
    """What the fuzzing may have switched on (faults, failures, scenarios) is switched off."""
    control_client.delete("/_emulator/faults")
    control_client.post("/_emulator/reset", headers={"content-type": "application/json"})


def test_control_still_alive(control_client):
    clean(control_client)
    assert control_client.get("/_emulator/health").json()["status"] == "ok"
    assert control_client.post("/v1/chat/completions", json=VALID_CHAT, headers=HEADERS).status_code == 200


def test_a_scripted_header_value_beyond_visible_ascii_is_refused_naming_it(control_client):
    """Found by the fuzzer: `\\x80` was queued, then broke the reply (clients decode such bytes differently)."""
    clean(control_client)
    queued = control_client.post("/_emulator/fail_next", json={"headers": {"x-note": "caf\u00e9"}, "status": 503})
    assert queued.status_code == 400 and "x-note" in queued.text, queued.text
    assert control_client.post("/v1/chat/completions", json=VALID_CHAT, headers=HEADERS).status_code == 200
