"""Hints instead of bare errors: a 404 near a served path names it and the client base URL to use; scenario
mistakes say how to write what was meant; `validate` warns about models nothing declares and refuses an empty
folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anthropic
import openai
import pytest
from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.scenarios import ScenarioError, parse_scenario
from emulator.server.app import build_app
from tests.helpers.servers import ROOT


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


def test_the_sdks_show_the_hint(bare_server) -> None:
    """A base URL without /v1 (OpenAI) or with it (Anthropic): the SDK's NotFoundError carries the fix."""
    client = openai.OpenAI(api_key="k", base_url=bare_server.url, max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "hi"}])
    assert f"Give the OpenAI client the base URL {bare_server.url}/v1" in str(caught.value)
    claude = anthropic.Anthropic(api_key="k", base_url=bare_server.url + "/v1", max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as caught_too:
        claude.messages.create(model="glm-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert "Did you mean POST /v1/messages?" in str(caught_too.value)
    assert f"the base URL {bare_server.url} (it adds /v1/messages itself)" in str(caught_too.value)


# ---------------------------------------------------------------- scenario mistakes


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


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", "validate", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_validate_warns_about_a_model_nothing_declares(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "models: [{id: my-model}]\n"
        "rules:\n"
        "  - {name: declared, when: {model: my-model}, reply: {content: a}}\n"
        "  - {name: builtin, when: {model: glm-5}, reply: {content: b}}\n"
        "  - {name: provider form, when: {model: alibaba/deepseek-v3.2}, reply: {content: c}}\n"
        "  - {name: glob, when: {model: 'glm-*'}, reply: {content: d}}\n"
    )
    (tmp_path / "b.yaml").write_text(
        "rules:\n"
        "  - {name: typo, when: {model: glm5}, reply: {content: e}}\n"
        "  - {name: nothing matches, when: {model: 'gpt-*'}, reply: {content: f}}\n"
        "  - {name: declared elsewhere, when: {model: my-model, last_user: hi}, reply: {content: g}}\n"
    )
    result = validate(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr  # warnings do not fail
    lines = result.stdout.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(
        f"{tmp_path / 'b.yaml'}:2:5: warning: rule 'typo' names model 'glm5', which no scenario declares"
    )
    assert (
        "Declare it under 'models:' (models: [{id: glm5}]) or use a built-in model: deepseek-v3.2, glm-5," in lines[0]
    )
    assert lines[1].startswith(
        f"{tmp_path / 'b.yaml'}:3:5: warning: rule 'nothing matches': the model pattern 'gpt-*' matches no model"
    )
    assert lines[2] == f"ok: {tmp_path} (2 warning(s))"


def test_validate_of_an_empty_folder_fails(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a scenario")
    result = validate(tmp_path)
    assert result.returncode == 1
    assert (
        result.stdout
        == f"{tmp_path}:1:1: no scenario files in this folder: nothing to check (expected *.yaml or *.yml files)\n"
    )


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
