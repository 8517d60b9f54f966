"""Hints instead of bare errors: a 404 near a served path names it and the client base URL to use; scenario
mistakes say how to write what was meant; `validate` warns about models nothing declares and refuses an empty
folder."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.scenarios import ScenarioError, parse_scenario
from emulator.server.app import build_app


def not_found(profile: str, path: str) -> dict:
    client = TestClient(build_app(Settings(profile=profile)), base_url="http://127.0.0.1:8000")
    response = client.post(path, json={}, headers={"authorization": "Bearer k", "x-api-key": "k"})
    assert response.status_code == 404, (path, response.status_code)
    return response.json()


@pytest.mark.parametrize(
    ("profile", "path", "meant", "why", "base"),
    [
        (
            "tokenhub",
            "/chat/completions",
            "/v1/chat/completions",
            "the path lacks /v1 in front",
            "OpenAI client the base URL http://127.0.0.1:8000/v1",
        ),
        (
            "tokenhub",
            "/v1/v1/chat/completions",
            "/v1/chat/completions",
            "the path has /v1 too many in front",
            "/v1 (it adds /chat/completions itself)",
        ),
        (
            "tokenhub",
            "/V1/Chat/Completions",
            "/v1/chat/completions",
            "paths are lower case",
            "http://127.0.0.1:8000/v1",
        ),
        (
            "tokenhub",
            "/v1/ai/cloudbase/responses",
            "/v1/responses",
            "this server is the tokenhub profile, not cloudbase: start it with --profile cloudbase",
            "/v1",
        ),
        (
            "cloudbase",
            "/v1/chat/completions",
            "/v1/ai/cloudbase/chat/completions",
            "this server is the cloudbase profile, not tokenhub",
            "http://127.0.0.1:8000/v1/ai/cloudbase",
        ),
        (
            "cloudbase",
            "/v1/models/",
            "/v1/ai/cloudbase/models",
            "this server is the cloudbase profile, not tokenhub",
            "OpenAI client",
        ),
        (
            "cloudbase",
            "/v1/messages",
            "/v1/ai/cloudbase/v1/messages",
            "this server is the cloudbase profile, not tokenhub",
            "Anthropic client the base URL http://127.0.0.1:8000/v1/ai/cloudbase",
        ),
    ],
)
def test_a_404_near_a_served_path_names_it(profile: str, path: str, meant: str, why: str, base: str) -> None:
    error = not_found(profile, path)["error"]
    message = error["message"]
    assert message.startswith(f"Unknown request URL: POST {path}. Did you mean POST {meant}? ({why}")
    assert base in message


def test_the_hint_comes_in_the_protocol_s_envelope() -> None:
    body = not_found("tokenhub", "/v1/v1/messages")
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"  # Anthropic's
    assert "Did you mean POST /v1/messages?" in body["error"]["message"]
    assert (
        "Give the Anthropic client the base URL http://127.0.0.1:8000 (it adds /v1/messages itself)"
        in body["error"]["message"]
    )
    far = not_found("tokenhub", "/nowhere")["error"]
    assert far["message"] == "Unknown request URL: POST /nowhere. Please check the URL and method."


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_a_regex_error_shows_the_pattern_as_written_with_a_caret() -> None:
    (problem,) = problems('rules:\n  - when: {last_user: {regex: "a(b\\\\d+"}}\n    reply: {content: x}\n')
    assert problem == (  # RE2's words (docs/scenarios.md#regular-expressions), at the part RE2 quotes
        "s.yaml:2:31: invalid regex in last_user: missing ) at position 0 (scenario regexes are RE2: no lookarounds "
        "or backreferences)\n    a(b\\d+\n    ^"
    )
    assert "\\\\" not in problem  # not Python's repr


def test_reply_with_bare_text_says_how_to_write_it() -> None:
    (problem,) = problems("rules:\n  - reply: Hello\n")
    assert (
        "'reply' must be a mapping, got the text 'Hello'; to answer with it write 'reply: {content: Hello}'" in problem
    )
    (quoted,) = problems('rules:\n  - reply: "Hi: there"\n')
    assert "write 'reply: {content: 'Hi: there'}'" in quoted


def test_a_fault_window_already_over_is_added_with_a_warning() -> None:
    client = TestClient(build_app(Settings()), base_url="http://127.0.0.1")  # a loopback name (DNS rebinding guard)
    late = client.post("/_emulator/faults", json={"error": 503, "window": [0, 0.001]})
    assert late.status_code == 201
    assert late.json()["warning"].startswith(
        "the window [0, 0.001] is over: it counts seconds since the server started"
    )
    assert client.post("/_emulator/reset", headers={"content-type": "application/json"}).status_code == 200
    fresh = client.post("/_emulator/faults", json={"error": 503, "window": [0, 600]})
    assert fresh.status_code == 201 and "warning" not in fresh.json()


@pytest.mark.parametrize("profile", ["tokenhub", "maxtoken", "openai", "anthropic"])
@pytest.mark.parametrize("status", [429, 500, 503, 418])
def test_a_scripted_fail_and_a_fault_word_the_same_error_alike(profile: str, status: int) -> None:
    from emulator.server.runtime import Runtime

    scenario = parse_scenario(
        f"rules:\n  - {{name: fail, when: {{last_user: a}}, fail: {{status: {status}}}}}\n"
        f"  - {{name: fault, when: {{last_user: b}}, fault: {{error: {status}}}}}\n",
        "s.yaml",
    )
    settings = Settings(profile=profile)
    client = TestClient(build_app(settings, Runtime.from_settings(settings, [scenario])))
    for path, headers, body in (
        ("/v1/chat/completions", {"authorization": "Bearer k"}, {}),
        ("/v1/messages", {"x-api-key": "k", "anthropic-version": "2023-06-01"}, {"max_tokens": 10}),
    ):
        errors = []
        for text in ("a", "b"):
            payload = {"model": "glm-5", "messages": [{"role": "user", "content": text}], **body}
            response = client.post(path, headers=headers, json=payload)
            assert response.status_code == status
            errors.append(response.json()["error"])
        assert errors[0] == errors[1], (path, errors)
