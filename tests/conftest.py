"""Shared fixtures: the real server, started as the CLI starts it, on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.servers import SCENARIOS, RunningServer, start_server, stop_server

collect_ignore = ["docs"]  # files the documentation's examples use (tests/e2e/test_docs.py), not tests of this suite


@pytest.fixture(scope="session")
def server() -> Iterator[RunningServer]:
    """The emulator serving the shipped example scenarios, seed 7."""
    running = start_server("--scenario", str(SCENARIOS), "--seed", "7")
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def bare_server() -> Iterator[RunningServer]:
    """The emulator with no scenario: every answer is generated."""
    running = start_server("--seed", "7")
    yield running
    stop_server(running)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SDK_MODULES = ("openai", "anthropic")


# Where the long tests are, longest first. Started first, none ends a parallel run alone: under -n, xdist hands
# tests out a few at a time (--maxschedchunk in pyproject's addopts) and the many short unit tests even it out.
# A stable sort: any shuffle within a group is kept.
LONG_FIRST = ("tests/e2e/test_docs.py", "tests/quality/", "tests/e2e/")


@pytest.hookimpl(trylast=True)  # after any plugin that shuffles (pytest-randomly, if installed)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first; mark `sdk` every test whose module imports an official SDK: the set tools/sdk_drift.py
    reruns on new releases."""
    items.sort(key=_long_first)
    for item in items:
        module = getattr(item, "module", None)
        names = vars(module).values() if module is not None else ()
        if any(_from_sdk(value) for value in names):
            item.add_marker(pytest.mark.sdk)


def _from_sdk(value: object) -> bool:
    """An SDK module, or a class or function imported from one."""
    name = value.__name__ if isinstance(value, type(pytest)) else getattr(value, "__module__", None)
    return isinstance(name, str) and name.split(".")[0] in SDK_MODULES


def _long_first(item: pytest.Item) -> int:
    where = item.nodeid
    return next((rank for rank, prefix in enumerate(LONG_FIRST) if where.startswith(prefix)), len(LONG_FIRST))
