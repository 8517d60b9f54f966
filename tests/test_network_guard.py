"""`--tokenhub-block-network`: a test that forgot to point its client at the emulator cannot reach a real LLM
API; it fails with a message that names the emulator's URL. Run as a user meets it: a suite in a temporary
folder, `python -m pytest` in a subprocess (the installed plugin, nothing else)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emulator.network_guard import BlockedNetworkError, NetworkGuard

pytestmark = pytest.mark.sdk

SUITE = """
import anthropic
import openai
import pytest


def test_forgot_the_base_url(tokenhub_emulator):
    client = openai.OpenAI(api_key="sk-real", max_retries=0)  # the real api.openai.com
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_swallowed_the_error(tokenhub_emulator):
    client = anthropic.Anthropic(api_key="sk-real", max_retries=0)
    try:
        client.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    except Exception:
        pass  # an app that logs and carries on: the test still fails


def test_pointed_at_the_emulator(tokenhub_emulator):
    reply = tokenhub_emulator.openai().chat.completions.create(
        model="glm-5", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content


def test_other_hosts_are_not_blocked():
    with pytest.raises(OSError) as caught:  # refused or unresolvable offline, but not by the guard
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert "tokenhub-emulator" not in str(caught.value)
"""


def run_suite(tmp_path: Path, *args: str, ini: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_suite.py").write_text("import socket\n" + textwrap.dedent(SUITE))
    if ini:
        (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *args]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def outcomes(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return dict(
        (name, status) for status, name in re.findall(r"^(PASSED|FAILED) test_suite\.py::(\w+)", result.stdout, re.M)
    )


def test_blocked_network_fails_the_tests_that_reach_a_real_host(tmp_path: Path) -> None:
    result = run_suite(tmp_path, "--tokenhub-block-network")
    assert outcomes(result) == {
        "test_forgot_the_base_url": "FAILED",
        "test_swallowed_the_error": "FAILED",
        "test_pointed_at_the_emulator": "PASSED",
        "test_other_hosts_are_not_blocked": "PASSED",
    }, result.stdout[-3000:]
    out = result.stdout
    assert "blocked a connection to api.openai.com" in out
    assert "blocked a connection to api.anthropic.com" in out
    url = re.search(r"base_url=(http://127\.0\.0\.1:\d+)/v1", out)
    assert url is not None, out[-3000:]  # the running emulator's own URL: the fix, ready to paste


def test_the_ini_option_turns_it_on_and_adds_hosts(tmp_path: Path) -> None:
    result = run_suite(tmp_path, ini="tokenhub_block_network = true\ntokenhub_blocked_hosts = llm.internal.example")
    assert outcomes(result)["test_forgot_the_base_url"] == "FAILED"
    assert "--tokenhub-block-network" in result.stdout


def test_off_by_default(tmp_path: Path) -> None:
    result = run_suite(tmp_path, "-k", "forgot")
    assert "blocked a connection" not in result.stdout  # it failed (offline) some other way, or reached the host


def test_the_guard_refuses_names_and_addresses_and_restores_the_socket_module() -> None:
    real = socket.getaddrinfo, socket.socket.connect
    guard = NetworkGuard(lambda: "http://127.0.0.1:1234", ("api.openai.com", "*.example-llm.test"))
    guard.start()
    try:
        with pytest.raises(BlockedNetworkError, match=r"api\.openai\.com.*base_url=http://127\.0\.0\.1:1234/v1"):
            socket.getaddrinfo("api.openai.com", 443)
        with pytest.raises(BlockedNetworkError, match=r"EU\.example-llm\.test"):
            socket.getaddrinfo("EU.example-llm.test.", 443)
        with socket.socket() as sock, pytest.raises(BlockedNetworkError):
            sock.connect(("api.openai.com", 443))
        assert socket.getaddrinfo("127.0.0.1", 80)  # everything else goes through
        assert len(guard.take()) == 3 and guard.take() == []
    finally:
        guard.stop()
    assert (socket.getaddrinfo, socket.socket.connect) == real
