"""The installed pytest plugin, as a user meets it: a test suite in a temporary folder, run by `python -m pytest`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.subpytest import lean_pytest_environment

SCENARIO = """
rules:
  - name: greet
    when: {last_user: hello}
    reply: {content: "Hello from a file"}
"""

USER_SUITE = """
import asyncio

import openai
import pytest


def ask(client, text, **kwargs):
    reply = client.chat.completions.create(
        model="glm-5", messages=[{"role": "user", "content": text}], **kwargs
    )
    return reply.choices[0].message.content


def test_urls_and_id(tokenhub_emulator):
    assert tokenhub_emulator.url.startswith("http://127.0.0.1:")
    assert tokenhub_emulator.openai_base_url == tokenhub_emulator.url + "/v1"
    assert "test_urls_and_id" in tokenhub_emulator.test_id


@pytest.mark.tokenhub_allow_unmatched  # "something else" matches no rule, on purpose
def test_load_yaml_text_and_read_the_journal(tokenhub_emulator):
    tokenhub_emulator.load("rules: [{when: {last_user: ping}, reply: {content: pong}}]")
    client = tokenhub_emulator.openai()
    assert ask(client, "ping") == "pong"
    ask(client, "something else")
    requests = tokenhub_emulator.requests
    assert len(requests) == 2
    assert requests[0].body["messages"][0]["content"] == "ping"
    assert requests.filter(status=200, rule=None)[0].misses[0]["reasons"]
    assert tokenhub_emulator.last_request.body["messages"][0]["content"] == "something else"
    assert requests.filter(path="/v1/chat/completions").last.status == 200


def test_load_a_dict(tokenhub_emulator):
    tokenhub_emulator.load({"rules": [{"when": {"last_user": "dict"}, "reply": {"content": "from a dict"}}]})
    assert ask(tokenhub_emulator.openai(), "dict") == "from a dict"


def test_load_a_file_next_to_the_tests(tokenhub_emulator):
    tokenhub_emulator.load("greeting.yaml")
    assert ask(tokenhub_emulator.openai(), "hello") == "Hello from a file"


@pytest.mark.tokenhub_scenario("greeting.yaml")
@pytest.mark.tokenhub_scenario("rules: [{when: {last_user: marked}, reply: {content: by marker}}]")
def test_marker(tokenhub_emulator):
    client = tokenhub_emulator.openai()
    assert ask(client, "hello") == "Hello from a file"
    assert ask(client, "marked") == "by marker"


def test_scenarios_of_other_tests_do_not_leak(tokenhub_emulator):
    client = tokenhub_emulator.openai()
    assert ask(client, "ping") != "pong"
    assert ask(client, "hello") != "Hello from a file"
    assert len(tokenhub_emulator.requests) == 2


def test_bad_scenario_reports_positions(tokenhub_emulator):
    from emulator.testing import EmulatorError

    with pytest.raises(EmulatorError) as error:
        tokenhub_emulator.load("rules:\\n  - when: {last_usr: x}\\n    reply: {}\\n")
    assert ":2:" in error.value.problems[0]


def test_fail_next(tokenhub_emulator):
    tokenhub_emulator.fail_next(2, status=429, headers={"retry-after": "0"})
    client = tokenhub_emulator.openai()
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            ask(client, "hi")
    assert ask(client, "hi")
    assert [r.status for r in tokenhub_emulator.requests] == [429, 429, 200]


def test_retrying_client_gets_through(tokenhub_emulator):
    tokenhub_emulator.fail_next(1, status=503)
    assert ask(tokenhub_emulator.openai(max_retries=1), "hi")
    assert [r.status for r in tokenhub_emulator.requests] == [503, 200]


def test_async_client(tokenhub_emulator):
    tokenhub_emulator.load("rules: [{when: {last_user: async}, reply: {content: awaited}}]")

    async def main():
        client = tokenhub_emulator.async_openai()
        async with client:
            reply = await client.chat.completions.create(
                model="glm-5", messages=[{"role": "user", "content": "async"}]
            )
        return reply.choices[0].message.content

    assert asyncio.run(main()) == "awaited"


def test_streaming(tokenhub_emulator):
    tokenhub_emulator.load("rules: [{when: {last_user: s}, reply: {content: streamed words here}}]")
    stream = tokenhub_emulator.openai().chat.completions.create(
        model="glm-5", messages=[{"role": "user", "content": "s"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "streamed words here"
    assert tokenhub_emulator.last_request.stream is True


def test_env_for_code_that_builds_its_own_client(tokenhub_env):
    tokenhub_env.load("rules: [{when: {last_user: env}, reply: {content: via env}}]")
    assert ask(openai.OpenAI(), "env") == "via env"  # base URL and key from the environment
    assert tokenhub_env.last_request.path == "/v1/chat/completions"


@pytest.mark.parametrize("n", range(6))
def test_many_small_tests(tokenhub_emulator, n):
    tokenhub_emulator.load({"rules": [{"when": {"last_user": "n"}, "reply": {"content": str(n)}}]})
    assert ask(tokenhub_emulator.openai(), "n") == str(n)
"""


@pytest.fixture(scope="module")
def user_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("user_suite")
    (folder / "greeting.yaml").write_text(SCENARIO)
    (folder / "test_with_emulator.py").write_text(textwrap.dedent(USER_SUITE))
    return folder


def run_pytest(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # -p no:cacheprovider: leave the folder as written; only installed plugins are loaded
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_a_user_suite_passes_with_only_the_installed_plugin(user_suite):
    result = run_pytest(user_suite)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "18 passed" in result.stdout


def test_the_user_suite_passes_under_xdist(user_suite):
    pytest.importorskip("xdist")
    result = run_pytest(user_suite, "-n", "2", env=lean_pytest_environment(None, "xdist.plugin"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "18 passed" in result.stdout
