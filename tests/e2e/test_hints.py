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

from tests.helpers.servers import ROOT


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
