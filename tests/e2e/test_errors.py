"""Every row of the gateway's error table, in the OpenAI envelope, with `param` where the field is known."""

from __future__ import annotations

import openai
import pytest

from tests.helpers.servers import ROOT, start_server, stop_server
from tests.helpers.spec import assert_valid

FIXTURES = ROOT / "tests" / "fixtures"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway():
    """Keys restricted, a small body limit, and scripted failures."""
    running = start_server(
        "--scenario", str(FIXTURES / "gateway.yaml"), "--api-key", "sk-good", "--max-body-bytes", "4096"
    )
    yield running
    stop_server(running)


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"]
    body = response.json()
    assert_valid("ErrorResponse", body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def chat(server, body=None, *, key="sk-good", **kwargs):
    headers = {"authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    with server.http(headers=headers) as http:
        if "content" in kwargs:
            return http.post("/v1/chat/completions", **kwargs)
        return http.post("/v1/chat/completions", json=body)


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"messages": MESSAGES}, "model", "Missing required parameter: 'model'"),
        ({"model": "glm-5"}, "messages", "Missing required parameter: 'messages'"),
        ({"model": "glm-5", "messages": []}, "messages", "Expected at least 1"),
        ({"model": "glm-5", "messages": MESSAGES, "temperature": 2.5}, "temperature", "<= 2"),
        ({"model": "glm-5", "messages": MESSAGES, "temperature": -0.1}, "temperature", ">= 0"),
        ({"model": "glm-5", "messages": MESSAGES, "temperature": "hot"}, "temperature", "expected a number"),
        ({"model": "glm-5", "messages": MESSAGES, "top_p": 1.5}, "top_p", "<= 1"),
        ({"model": "glm-5", "messages": MESSAGES, "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"model": "glm-5", "messages": MESSAGES, "stop": 7}, "stop", "Invalid type for 'stop'"),
        ({"model": "glm-5", "messages": MESSAGES, "n": 0}, "n", ">= 1"),
        ({"model": "glm-5", "messages": MESSAGES, "presence_penalty": 2.5}, "presence_penalty", "<= 2"),
        ({"model": "glm-5", "messages": MESSAGES, "frequency_penalty": -3}, "frequency_penalty", ">= -2"),
        ({"model": "glm-5", "messages": MESSAGES, "max_tokens": 0}, "max_tokens", ">= 1"),
        ({"model": "glm-5", "messages": MESSAGES, "stream": "yes"}, "stream", "expected a boolean"),
        ({"model": "glm-5", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", "'wizard'"),
        ({"model": "glm-5", "messages": [{"role": "user"}]}, "messages[0].content", "Missing required"),
        ({"model": "glm-5", "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "Invalid type"),
        (
            {"model": "glm-5", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "messages[0].content[0].text",
            "expected a string",
        ),
        (
            {"model": "glm-5", "messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]},
            "messages[0].content[0].type",
            "'video'",
        ),
        (
            {"model": "glm-5", "messages": [*MESSAGES, {"role": "tool", "tool_call_id": "call_nope", "content": "{}"}]},
            "messages[1].tool_call_id",
            "does not answer any tool call",
        ),
        (
            {
                "model": "glm-5",
                "messages": [
                    *MESSAGES,
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                    },
                    {"role": "user", "content": "and?"},
                ],
            },
            "messages[2].role",
            "did not have response messages: c1",
        ),
        ({"model": "glm-5", "messages": MESSAGES, "tool_choice": "auto"}, "tool_choice", "only allowed when 'tools'"),
        (
            {"model": "glm-5", "messages": MESSAGES, "stream_options": {"include_usage": True}},
            "stream_options",
            "stream",
        ),
        (
            {"model": "glm-5", "messages": MESSAGES, "response_format": {"type": "yaml"}},
            "response_format.type",
            "'yaml'",
        ),
        (
            {
                "model": "glm-5",
                "messages": MESSAGES,
                "tools": [{"type": "function", "function": {"name": "bad name!"}}],
            },
            "tools[0].function.name",
            "pattern",
        ),
        ([1, 2], None, "must be a JSON object"),
    ],
)
def test_400_invalid_request_names_the_field(gateway, body, param, fragment):
    error = error_of(chat(gateway, body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_request_error"
    assert error["param"] == param
    assert fragment in error["message"]


def test_400_malformed_json(gateway):
    error = error_of(chat(gateway, content=b'{"model": "glm-5",', headers={"content-type": "application/json"}), 400)
    assert "could not parse the JSON body" in error["message"]


def test_400_invalid_utf8(gateway):
    error = error_of(chat(gateway, content=b'{"model": "\xff"}', headers={"content-type": "application/json"}), 400)
    assert "UTF-8" in error["message"]


def test_400_scenario_fields_pass_through(gateway):
    error = error_of(
        chat(gateway, {"model": "glm-5", "messages": [{"role": "user", "content": "custom failure"}]}), 400
    )
    assert error == {
        "message": "Too long.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }


def test_401_missing_and_wrong_key(gateway):
    with gateway.http(headers={"authorization": ""}) as http:
        error = error_of(http.post("/v1/chat/completions", json={"model": "glm-5", "messages": MESSAGES}), 401)
    assert error["type"] == "authentication_error" and error["code"] == "authentication_error"
    error = error_of(chat(gateway, {"model": "glm-5", "messages": MESSAGES}, key="sk-wrong-key-1234567890"), 401)
    assert "sk-wrong-key-1234567890" not in error["message"] and "7890" in error["message"]
    short = error_of(chat(gateway, {"model": "glm-5", "messages": MESSAGES}, key="sk-short9"), 401)
    assert "short" not in short["message"] and "****" in short["message"]  # a short key: nothing of it
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="sk-nope", base_url=gateway.base_url, max_retries=0).models.list()


def test_403_model_not_available_lists_models(gateway):
    error = error_of(chat(gateway, {"model": "gpt-7", "messages": MESSAGES}), 403)
    assert error["type"] == "model_not_available" and error["param"] == "model"
    assert "deepseek-v3.2" in error["message"] and "glm-5" in error["message"]
    with pytest.raises(openai.PermissionDeniedError):
        gateway.openai(api_key="sk-good").chat.completions.create(model="gpt-7", messages=MESSAGES)


def test_404_unknown_route_and_405_wrong_method(gateway):
    with gateway.http(headers={"authorization": "Bearer sk-good"}) as http:
        error = error_of(http.post("/v1/chat/complete", json={}), 404)
        assert error["code"] == "not_found" and "/v1/chat/complete" in error["message"]
        response = http.get("/v1/chat/completions")
        error = error_of(response, 405)
        assert error["code"] == "method_not_allowed" and response.headers["allow"] == "POST"


def test_413_body_too_large(gateway):
    big = {"model": "glm-5", "messages": [{"role": "user", "content": "x" * 5000}]}
    error = error_of(chat(gateway, big), 413)
    assert error["code"] == "request_too_large"


def test_415_not_json(gateway):
    error = error_of(
        chat(gateway, content=b"model=glm-5", headers={"content-type": "application/x-www-form-urlencoded"}), 415
    )
    assert error["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("status", "kind", "exception"),
    [
        (429, "rate_limit_exceeded", openai.RateLimitError),
        (500, "engine_server_error", openai.InternalServerError),
        (503, "service_unavailable", openai.InternalServerError),
    ],
)
def test_scripted_server_errors(gateway, status, kind, exception):
    response = chat(gateway, {"model": "glm-5", "messages": [{"role": "user", "content": f"status {status}"}]})
    error = error_of(response, status)
    assert error["type"] == kind and error["code"] == kind
    with pytest.raises(exception) as raised:
        gateway.openai(api_key="sk-good").chat.completions.create(
            model="glm-5", messages=[{"role": "user", "content": f"status {status}"}]
        )
    assert raised.value.status_code == status
    assert raised.value.body["code"] == kind


def test_429_carries_scenario_headers(gateway):
    response = chat(gateway, {"model": "glm-5", "messages": [{"role": "user", "content": "status 429"}]})
    assert response.headers["retry-after"] == "2"
