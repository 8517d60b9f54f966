"""pytest plugin (entry point `pytest11: tokenhub_emulator`): the emulator as a fixture.

    def test_answers(tokenhub_emulator):
        tokenhub_emulator.load("rules: [{when: {last_user: hi}, reply: {content: hello}}]")
        reply = tokenhub_emulator.openai().chat.completions.create(model="glm-5", messages=[...])
        assert tokenhub_emulator.last_request.body["model"] == "glm-5"

One server per session (per xdist worker), started on first use; each test gets its own test id, so its
scenarios, sequences, failures and journal are its own, and they are reset when the test ends.

Strict by default, as respx and pytest-httpserver are: when a test ends, a request of it that matched no
rule while rules were loaded fails it, with the nearest rules and why each missed
(`@pytest.mark.tokenhub_allow_unmatched`, or `--tokenhub-allow-unmatched` / ini `tokenhub_allow_unmatched`,
to allow it). `@pytest.mark.tokenhub_assert_all_used` (or `--tokenhub-assert-all-used` / ini
`tokenhub_assert_all_used`) also fails a test that left a rule it loaded unused or a sequence unfinished.

`--tokenhub-block-network` (ini `tokenhub_block_network`) makes any connection from the test process to a
known LLM API host fail, naming the emulator's URL, and fails the test that tried (emulator/network_guard.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from emulator.network_guard import NetworkGuard
    from emulator.testing import EmulatorServer, EmulatorTest

MARKER = "tokenhub_scenario"
ALLOW_UNMATCHED = "tokenhub_allow_unmatched"
ASSERT_ALL_USED = "tokenhub_assert_all_used"
BLOCK_NETWORK = "tokenhub_block_network"
BLOCKED_HOSTS = "tokenhub_blocked_hosts"
HANDLE = pytest.StashKey["EmulatorTest"]()
SERVER = pytest.StashKey["EmulatorServer"]()
GUARD = pytest.StashKey["NetworkGuard"]()
URL_TOKEN_VARIABLE = "TOKENHUB_EMULATOR_URL_TOKEN"  # the token of the emulator at --tokenhub-url: no server reads it


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tokenhub-emulator", "tokenhub-emulator (the tokenhub_emulator fixture)")
    group.addoption(
        "--tokenhub-url",
        default=os.environ.get("TOKENHUB_EMULATOR_URL"),
        help="use the emulator running at this URL (e.g. a CI service container) instead of starting one "
        "[env TOKENHUB_EMULATOR_URL]",
    )
    group.addoption(
        "--tokenhub-control-token",
        default=os.environ.get(URL_TOKEN_VARIABLE) or os.environ.get("TOKENHUB_EMULATOR_CONTROL_TOKEN"),
        metavar="TOKEN",
        help=f"the control token of the emulator at --tokenhub-url [env {URL_TOKEN_VARIABLE}, else "
        "TOKENHUB_EMULATOR_CONTROL_TOKEN — which any emulator the suite starts would read too]",
    )
    group.addoption(
        "--tokenhub-scenario",
        action="append",
        default=[],
        metavar="PATH",
        help="scenario file or folder every test sees (repeatable); tests add their own with .load() or the marker",
    )
    group.addoption("--tokenhub-seed", type=int, default=0, help="seed for generated replies (default 0)")
    group.addoption(
        "--tokenhub-env",
        action="store_true",
        help="point OPENAI_BASE_URL / ANTHROPIC_BASE_URL and the API keys at the emulator in every test",
    )
    group.addoption(
        "--tokenhub-allow-unmatched",
        action="store_true",
        default=None,
        help="do not fail a test whose request matched no rule while rules were loaded "
        f"(ini: {ALLOW_UNMATCHED} = true; per test: @pytest.mark.{ALLOW_UNMATCHED})",
    )
    group.addoption(
        "--tokenhub-assert-all-used",
        action="store_true",
        default=None,
        help="fail a test that left a rule it loaded unused, or a sequence with steps left "
        f"(ini: {ASSERT_ALL_USED} = true; per test: @pytest.mark.{ASSERT_ALL_USED})",
    )
    group.addoption(
        "--tokenhub-block-network",
        action="store_true",
        default=None,
        help="fail any connection from the tests to a known LLM API host (api.openai.com, api.anthropic.com, the "
        f"gateways, …), naming the emulator's URL (ini: {BLOCK_NETWORK} = true; more hosts: ini {BLOCKED_HOSTS})",
    )
    parser.addini(BLOCK_NETWORK, "block connections to known LLM API hosts (--tokenhub-block-network)", "bool", False)
    parser.addini(BLOCKED_HOSTS, "more host names or globs to block with --tokenhub-block-network", "linelist", [])
    parser.addini(
        ALLOW_UNMATCHED, "allow requests that match no rule (the strict check is on by default)", "bool", False
    )
    parser.addini(ASSERT_ALL_USED, "fail tests that leave a loaded rule unused", "bool", False)


def pytest_configure(config: pytest.Config) -> None:
    given = config.getoption("--tokenhub-block-network")
    if given or (given is None and config.getini(BLOCK_NETWORK)):
        from emulator.network_guard import KNOWN_LLM_HOSTS, NetworkGuard

        guard = NetworkGuard(lambda: _emulator_url(config), (*KNOWN_LLM_HOSTS, *config.getini(BLOCKED_HOSTS)))
        guard.start()
        config.stash[GUARD] = guard
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*sources, name=None): load scenarios (a path, YAML text or a dict) for this test only; "
        "implies the tokenhub_emulator fixture",
    )
    config.addinivalue_line(
        "markers", f"{ALLOW_UNMATCHED}: a request of this test may match no scenario rule (not strict)"
    )
    config.addinivalue_line(
        "markers",
        f"{ASSERT_ALL_USED}: fail this test if a rule it loaded answered nothing or a sequence has steps left",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.stash.get(GUARD, None)
    if guard is not None:
        guard.stop()


def _emulator_url(config: pytest.Config) -> str:
    server = config.stash.get(SERVER, None)
    if server is not None:
        return str(server.url)
    return str(config.getoption("--tokenhub-url") or "the tokenhub_emulator fixture's URL")


@pytest.fixture(scope="session")
def tokenhub_emulator_server(request: pytest.FixtureRequest) -> Iterator[EmulatorServer]:
    """The emulator of this session (of this xdist worker): started once, stopped at the end."""
    from emulator.testing import EmulatorServer

    option = request.config.getoption
    server = EmulatorServer(
        scenarios=option("--tokenhub-scenario"),
        seed=option("--tokenhub-seed"),
        url=option("--tokenhub-url"),
        control_token=option("--tokenhub-control-token") if option("--tokenhub-url") else None,
    ).start()
    request.config.stash[SERVER] = server
    yield server
    server.stop()


@pytest.fixture
def tokenhub_emulator(
    tokenhub_emulator_server: EmulatorServer, request: pytest.FixtureRequest
) -> Iterator[EmulatorTest]:
    """The emulator as this test sees it: `.url`, `.openai_base_url`, `.load()`, `.requests`, `.fail_next()`,
    `.openai()` / `.anthropic()` clients; everything scoped to this test's id and reset when it ends."""
    test = tokenhub_emulator_server.handle(
        test_id_for(request), base_dir=Path(str(request.path)).parent, name=request.node.name
    )
    request.node.stash[HANDLE] = test
    try:
        for marker in request.node.iter_markers(MARKER):
            for source in marker.args:
                test.load(source, name=marker.kwargs.get("name"))
        yield test
    finally:
        test.close()


@pytest.fixture
def tokenhub_env(tokenhub_emulator: EmulatorTest, monkeypatch: pytest.MonkeyPatch) -> EmulatorTest:
    """OPENAI_BASE_URL, ANTHROPIC_BASE_URL and the keys point at the emulator, with this test's id in the URL."""
    for name, value in tokenhub_emulator.env().items():
        monkeypatch.setenv(name, value)
    return tokenhub_emulator


@pytest.fixture(autouse=True)
def _tokenhub_autouse(request: pytest.FixtureRequest) -> None:
    """Starts the fixtures a marker or --tokenhub-env asks for, in tests that did not name them."""
    if request.config.getoption("--tokenhub-env"):
        request.getfixturevalue("tokenhub_env")
    elif request.node.get_closest_marker(MARKER) is not None:
        request.getfixturevalue("tokenhub_emulator")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """When the test body returns, its requests are checked (strict mode; the opt-in all-used check).

    A test that passed fails with the explanation; a test that failed anyway gets it as a report section,
    next to its assertion.
    """
    guard = item.config.stash.get(GUARD, None)
    if guard is not None:
        guard.take()  # attempts of an earlier phase are that phase's business
    try:
        result = yield
    except BaseException:
        test = item.stash.get(HANDLE, None)
        problems = _check(item, test) if test is not None else ""
        blocked = _blocked(guard)
        if problems or blocked:
            item.add_report_section("call", "tokenhub-emulator", "\n\n".join(p for p in (blocked, problems) if p))
        raise
    blocked = _blocked(guard)
    if blocked:  # the client may have swallowed the error (SDKs retry connection errors): the test fails anyway
        pytest.fail(blocked, pytrace=False)
    test = item.stash.get(HANDLE, None)
    if test is not None:
        problems = _check(item, test)
        if problems:
            pytest.fail(problems, pytrace=False)
    return result


def _blocked(guard: NetworkGuard | None) -> str:
    attempts = guard.take() if guard is not None else []
    if not attempts:
        return ""
    more = f" (and {len(attempts) - 1} more attempt(s))" if len(attempts) > 1 else ""
    return attempts[0] + more


def _check(item: pytest.Item, test: EmulatorTest) -> str:
    from emulator.testing import EmulatorError, unmatched_report

    config = item.config
    problems = []
    try:
        if not _setting(item, ALLOW_UNMATCHED, "--tokenhub-allow-unmatched") and _may_have_rules(config, test):
            unmatched = test.unmatched()
            if unmatched:
                problems.append(
                    unmatched_report(unmatched)
                    + f"\n(allow it: @pytest.mark.{ALLOW_UNMATCHED} on the test, or --tokenhub-allow-unmatched / "
                    f"ini {ALLOW_UNMATCHED} = true for the session)"
                )
        if _setting(item, ASSERT_ALL_USED, "--tokenhub-assert-all-used"):
            try:
                test.assert_all_used()
            except AssertionError as error:
                problems.append(str(error))
    except EmulatorError as error:  # the server is gone or refuses: say so, do not hide the test's outcome
        problems.append(f"tokenhub_emulator: could not check this test's requests: {error}")
    return "\n\n".join(problems)


def _setting(item: pytest.Item, name: str, flag: str) -> bool:
    marker = item.get_closest_marker(name)
    if marker is not None:
        return bool(marker.args[0]) if marker.args else True
    given = item.config.getoption(flag)
    return bool(given) if given is not None else bool(item.config.getini(name))


def _may_have_rules(config: pytest.Config, test: EmulatorTest) -> bool:
    """Whether any rule could have answered the test: its own, the session's files, or a server not ours."""
    return test.loaded or bool(config.getoption("--tokenhub-scenario")) or bool(config.getoption("--tokenhub-url"))


def test_id_for(request: pytest.FixtureRequest) -> str:
    """`<xdist worker>:<node id>`, printable ASCII so that it travels in a header."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return re.sub(r"[^\x20-\x7e]", "?", f"{worker}:{request.node.nodeid}")
