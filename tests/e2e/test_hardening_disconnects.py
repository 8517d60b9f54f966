"""Clients that leave mid-stream leave nothing behind: short form of `python bench/disconnects.py`.

300 disconnects over loopback per server form — the three protocols, streamed with and without a chunk
delay, leaving after some events (FIN or RST), after the headers, mid-upload, during a hang, a latency or a
stall. Then the CLI server's open file descriptors are back to what they were, its RSS grew by little, every
journal entry is closed and the streams cut short are flagged `disconnected`; the in-thread servers' asyncio
tasks are back to what they were.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.servers import ROOT

_spec = importlib.util.spec_from_file_location("bench_disconnects", ROOT / "bench" / "disconnects.py")
assert _spec is not None and _spec.loader is not None
disconnects: Any = importlib.util.module_from_spec(_spec)
sys.modules["bench_disconnects"] = disconnects
_spec.loader.exec_module(disconnects)

COUNT = 300
pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc")


def tracebacks(log: str) -> list[str]:
    return disconnects.exceptions_logged(log)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> dict[str, Any]:
    return disconnects.measure_cli(COUNT, 30, tmp_path_factory.mktemp("disconnects"))


def test_every_client_left_as_planned(cli_run):
    assert dict(cli_run["outcomes"]) == {"left": COUNT}


def test_no_socket_is_left_open(cli_run):
    before, after = cli_run["fds"]
    assert after <= before


def test_memory_stays_put(cli_run):
    start, half, end, _ = cli_run["rss_mb"]
    assert end - start < 12, cli_run["rss_mb"]  # the journal holds the requests
    assert end - half < 4, cli_run["rss_mb"]  # the second half, after a reset, added next to nothing


def test_the_journal_closes_every_entry_and_flags_the_streams_cut_short(cli_run):
    journal = cli_run["journal"]
    assert len(journal) == len(cli_run["second_half"])
    assert [e["id"] for e in journal if e["duration_ms"] is None] == []
    # with a chunk delay the stream cannot have been written whole before the client left
    cut_short = [c for c in cli_run["second_half"] if c.delay_ms and c.mode in ("close", "reset", "headers", "stall")]
    assert sum(1 for e in journal if e["disconnected"]) >= len(cut_short)


def test_the_server_is_alive_and_logged_nothing_but_mid_upload_disconnects(cli_run):
    assert cli_run["health"] == "ok"
    assert {t for t in tracebacks(cli_run["log"]) if "ClientDisconnect" not in t} == set()


@pytest.mark.parametrize("transport", [True, False], ids=["cli-protocol", "plain-uvicorn"])
def test_no_asyncio_task_is_left_behind(tmp_path, transport):
    run = disconnects.measure_thread(COUNT, 30, tmp_path, transport)
    assert dict(run["outcomes"]) == {"left": COUNT}
    before, after = run["tasks"]
    assert after <= before, run["left"]


# ---------------------------------------------------------------- what the journal and the log should say


def one_kind(tmp_path: Path, mode: str, count: int = 6) -> dict[str, Any]:
    server = disconnects.CliServer(disconnects.write_scenario(tmp_path))
    try:
        todo = [c for c in disconnects.cases(42 * count) if c.mode == mode][:count]
        assert set(disconnects.disconnect(server.url, todo, 3)) == {"left"}
        deadline = time.monotonic() + 5
        journal: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            journal = server.control("GET", "/journal")["data"]
            if len(journal) == count and all(e["duration_ms"] is not None for e in journal):
                break
            time.sleep(0.05)
    finally:
        log = server.stop()
    return {"journal": journal, "log": log}


def test_a_client_that_leaves_mid_upload_is_journaled_not_logged(tmp_path):
    run = one_kind(tmp_path, "upload")
    assert tracebacks(run["log"]) == []
    assert all(e["disconnected"] for e in run["journal"]), run["journal"]


@pytest.mark.parametrize("mode", ["hang", "latency"])
def test_a_client_that_gives_up_before_the_headers_is_flagged(tmp_path, mode):
    run = one_kind(tmp_path, mode)
    assert len(run["journal"]) == 6
    assert all(e["disconnected"] for e in run["journal"]), [(e["action"], e["disconnected"]) for e in run["journal"]]


def test_tracebacks_reads_the_exception_of_each():
    log = "x\nTraceback (most recent call last):\n  File a\n    line\nValueError: no\nnext\n"
    assert tracebacks(log) == ["ValueError: no"]
