"""Hostile input never gets a 500, a traceback or a dead server: every answer is a 2xx or a 4xx in the envelope.

Short form for CI (in-process ASGI, a few hundred examples); the long form lives in bench/.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.server.app import build_app
from tests.helpers.fuzz import VALID_CHAT, VALID_RESPONSES, field_paths, json_values, replaced
from tests.helpers.servers import SCENARIOS

HEADERS = {"authorization": "Bearer sk-fuzz", "content-type": "application/json"}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])



@pytest.fixture(scope="module")
def client():
    with TestClient(
        build_app(Settings(scenarios=[SCENARIOS])), base_url="http://127.0.0.1", raise_server_exceptions=False
    ) as test_client:
        yield test_client


def assert_clean(response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]






CHAT_PATHS = field_paths(VALID_CHAT)
RESPONSES_PATHS = field_paths(VALID_RESPONSES)


@FUZZ
@given(path=st.sampled_from(CHAT_PATHS), value=json_values)
def test_chat_any_field_replaced_by_any_json(client, path, value):
    assert_clean(client.post("/v1/chat/completions", json=replaced(VALID_CHAT, path, value), headers=HEADERS))


@FUZZ
@given(body=json_values)
def test_chat_any_json_document(client, body):
    assert_clean(client.post("/v1/chat/completions", json=body, headers=HEADERS))


@FUZZ
@given(path=st.sampled_from(RESPONSES_PATHS), value=json_values, stream=st.booleans())
def test_responses_any_field_replaced_by_any_json(client, path, value, stream):
    body = {**replaced(VALID_RESPONSES, path, value), "stream": stream} if path else value
    assert_clean(client.post("/v1/responses", json=body, headers=HEADERS))


@FUZZ
@given(response_id=st.text(max_size=60), method=st.sampled_from(["GET", "DELETE"]))
def test_responses_any_stored_id(client, response_id, method):
    response = client.request(method, "/v1/responses/" + quote(response_id, safe=""), headers=HEADERS)
    assert response.status_code in (404, 405), response.text
    assert_clean(response)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_chat_any_bytes(client, raw):
    assert_clean(client.post("/v1/chat/completions", content=raw, headers=HEADERS))


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(json.dumps(VALID_CHAT)) - 1))
def test_chat_truncated_json(client, cut):
    response = client.post("/v1/chat/completions", content=json.dumps(VALID_CHAT)[:cut], headers=HEADERS)
    assert response.status_code == 400
    assert_clean(response)


@FUZZ
@given(content_type=st.text(max_size=40).filter(lambda t: "\n" not in t and "\r" not in t))
def test_any_content_type(client, content_type):
    headers = {**HEADERS, "content-type": content_type.encode("ascii", "ignore").decode()}
    assert_clean(client.post("/v1/chat/completions", content=json.dumps(VALID_CHAT), headers=headers))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"model": "glm-5", "messages": [{"role": "user", "content": "\\ud800"}]}',
        json.dumps({**VALID_CHAT, "n": 10**30}).encode(),
        json.dumps({**VALID_CHAT, "max_tokens": 10**30}).encode(),
        json.dumps({**VALID_CHAT, "messages": [{"role": "user", "content": "x" * 1_000_000}]}).encode(),
        json.dumps({**VALID_CHAT, "metadata": json.loads("[" * 500 + "]" * 500)}).encode(),
        json.dumps({**VALID_CHAT, "stop": ["x" * 10_000]}).encode(),
    ],
    ids=["deep-array", "lone-surrogate", "huge-n", "huge-max-tokens", "long-string", "deep-field", "long-stop"],
)
def test_known_hostile_bodies(client, body):
    assert_clean(client.post("/v1/chat/completions", content=body, headers=HEADERS))


REASONING = {"type": "reasoning", "id": "rs_1", "summary": []}


@pytest.mark.parametrize(
    "body",
    [
        # found by the fuzzer: base64 of non-ASCII text raised ValueError, a 500
        {**VALID_RESPONSES, "input": [{**REASONING, "encrypted_content": "é"}, *VALID_RESPONSES["input"]]},
        {**VALID_RESPONSES, "input": [{**REASONING, "encrypted_content": "\ud800"}, *VALID_RESPONSES["input"]]},
        {**VALID_RESPONSES, "input": [{**REASONING, "encrypted_content": "/w=="}, *VALID_RESPONSES["input"]]},
        {**VALID_RESPONSES, "input": [{"type": "item_reference", "id": "x" * 100_000}]},
    ],
    ids=["reasoning-non-ascii", "reasoning-surrogate", "reasoning-not-utf8", "long-reference"],
)
def test_known_hostile_responses_bodies(client, body):
    assert_clean(client.post("/v1/responses", content=json.dumps(body).encode(), headers=HEADERS))


@FUZZ
@given(model=st.text(max_size=80))
def test_models_any_id(client, model):
    response = client.get("/v1/models/" + quote(model, safe=""), headers=HEADERS)
    assert response.status_code in (200, 404)
    assert_clean(response)


YAML_PIECES = st.sampled_from(
    [
        "rules:",
        "- ",
        "  ",
        "when:",
        "reply:",
        "fail:",
        "sequence:",
        "{",
        "}",
        "[",
        "]",
        ":",
        "'",
        '"',
        "&a",
        "*a",
        "!!python/object:os.system",
        "<<: *a",
        "\n",
        "last_user:",
        "regex: '('",
        "status: 99",
        "{{ x",
        "\t",
        "---",
        "\x00",
    ]
)


@FUZZ
@given(text=st.lists(YAML_PIECES | st.text(max_size=8), max_size=40).map("".join))
def test_any_scenario_text_is_loaded_or_explained_with_positions(text):
    from emulator.scenarios import ScenarioError, parse_scenario

    try:
        parse_scenario(text, "fuzz.yaml")
    except ScenarioError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.line >= 1 and problem.column >= 1 and problem.message
            assert str(problem).startswith(f"fuzz.yaml:{problem.line}:{problem.column}: ")
