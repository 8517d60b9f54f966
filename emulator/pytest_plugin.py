"""pytest plugin (entry point `pytest11: tokenhub_emulator`): the emulator as a fixture.

    def test_answers(tokenhub_emulator):
        tokenhub_emulator.load("rules: [{when: {last_user: hi}, reply: {content: hello}}]")
        reply = tokenhub_emulator.openai().chat.completions.create(model="glm-5", messages=[...])
        assert tokenhub_emulator.last_request.body["model"] == "glm-5"

One server per session (per xdist worker), started on first use; each test gets its own test id, so its
scenarios, sequences, failures and journal are its own, and they are reset when the test ends.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from emulator.testing import EmulatorServer, EmulatorTest

MARKER = "tokenhub_scenario"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tokenhub-emulator", "tokenhub-emulator (the tokenhub_emulator fixture)")
    group.addoption(
        "--tokenhub-url",
        default=os.environ.get("TOKENHUB_EMULATOR_URL"),
        help="use the emulator running at this URL (e.g. a CI service container) instead of starting one "
        "[env TOKENHUB_EMULATOR_URL]; its control token comes from TOKENHUB_EMULATOR_CONTROL_TOKEN",
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*sources, name=None): load scenarios (a path, YAML text or a dict) for this test only; "
        "implies the tokenhub_emulator fixture",
    )


@pytest.fixture(scope="session")
def tokenhub_emulator_server(request: pytest.FixtureRequest) -> Iterator[EmulatorServer]:
    """The emulator of this session (of this xdist worker): started once, stopped at the end."""
    from emulator.testing import EmulatorServer

    option = request.config.getoption
    server = EmulatorServer(
        scenarios=option("--tokenhub-scenario"),
        seed=option("--tokenhub-seed"),
        url=option("--tokenhub-url"),
        control_token=os.environ.get("TOKENHUB_EMULATOR_CONTROL_TOKEN"),
    ).start()
    yield server
    server.stop()


@pytest.fixture
def tokenhub_emulator(
    tokenhub_emulator_server: EmulatorServer, request: pytest.FixtureRequest
) -> Iterator[EmulatorTest]:
    """The emulator as this test sees it: `.url`, `.openai_base_url`, `.load()`, `.requests`, `.fail_next()`,
    `.openai()` / `.anthropic()` clients; everything scoped to this test's id and reset when it ends."""
    test = tokenhub_emulator_server.handle(test_id_for(request), base_dir=Path(str(request.path)).parent)
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


def test_id_for(request: pytest.FixtureRequest) -> str:
    """`<xdist worker>:<node id>`, printable ASCII so that it travels in a header."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return re.sub(r"[^\x20-\x7e]", "?", f"{worker}:{request.node.nodeid}")
