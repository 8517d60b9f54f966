"""`--tokenhub-block-network`: a test that forgot to point its client at the emulator cannot reach a real LLM
API; it fails with a message that names the emulator's URL. Run as a user meets it: a suite in a temporary
folder, `python -m pytest` in a subprocess (the installed plugin, nothing else)."""

from __future__ import annotations

import re
import socket
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from emulator.network_guard import BlockedNetworkError, NetworkGuard
from tests.helpers.subpytest import outcomes, run_pytest_in

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


def test_a_host_the_ini_adds(tokenhub_emulator):
    socket.create_connection(("llm.internal.example", 443), timeout=1)


def test_other_hosts_are_not_blocked():
    with pytest.raises(OSError) as caught:  # refused or unresolvable offline, but not by the guard
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert "tokenhub-emulator" not in str(caught.value)
"""


def run_suite(tmp_path: Path, *args: str, ini: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_suite.py").write_text("import socket\n" + textwrap.dedent(SUITE))
    return run_pytest_in(tmp_path, *args, ini=ini)


def test_blocked_network_fails_the_tests_that_reach_a_real_host(tmp_path: Path) -> None:
    result = run_suite(tmp_path, "--tokenhub-block-network", ini="tokenhub_blocked_hosts = llm.internal.example")
    assert outcomes(result) == {
        "test_forgot_the_base_url": "FAILED",
        "test_swallowed_the_error": "FAILED",
        "test_pointed_at_the_emulator": "PASSED",
        "test_a_host_the_ini_adds": "FAILED",
        "test_other_hosts_are_not_blocked": "PASSED",
    }, result.stdout[-3000:]
    out = result.stdout
    for host in ("api.openai.com", "api.anthropic.com", "llm.internal.example"):
        assert f"blocked a connection to {host}, a real LLM API (--tokenhub-block-network)" in out
    url = re.search(r"base_url=(http://127\.0\.0\.1:\d+)/v1", out)
    assert url is not None, out[-3000:]  # the running emulator's own URL: the fix, ready to paste


def test_off_by_default() -> None:
    """This suite runs without the option: the plugin has left the socket module alone."""
    assert socket.getaddrinfo.__module__ == "socket" and socket.socket.connect.__qualname__ == "socket.connect"


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


class _Config:
    """What the plugin's configure hook reads of a pytest config: options, ini values, the stash."""

    def __init__(self, option: bool | None, ini: dict[str, Any]) -> None:
        self.option, self.ini, self.stash = option, ini, pytest.Stash()

    def getoption(self, name: str) -> Any:
        return self.option if name == "--tokenhub-block-network" else None

    def getini(self, name: str) -> Any:
        return self.ini.get(name, [] if name == "tokenhub_blocked_hosts" else False)

    def addinivalue_line(self, name: str, line: str) -> None:
        pass  # the markers the hook declares


def test_the_ini_turns_it_on_and_adds_hosts() -> None:
    from emulator import pytest_plugin

    config = _Config(None, {"tokenhub_block_network": True, "tokenhub_blocked_hosts": ["*.llm.internal"]})
    pytest_plugin.pytest_configure(config)  # type: ignore[arg-type]
    try:
        with pytest.raises(BlockedNetworkError, match=r"eu\.llm\.internal.*the tokenhub_emulator fixture's URL"):
            socket.getaddrinfo("eu.llm.internal", 443)
    finally:
        pytest_plugin.pytest_unconfigure(config)  # type: ignore[arg-type]
    assert socket.getaddrinfo.__module__ == "socket"
    off = _Config(None, {})
    pytest_plugin.pytest_configure(off)  # type: ignore[arg-type]
    assert socket.getaddrinfo.__module__ == "socket"
