"""Clients that go away mid-stream, 10,000 times: nothing may be left behind on the server.

    python bench/disconnects.py                       # 10,000 disconnects against each server form; about a minute
    python bench/disconnects.py --count 2000 --server cli

Each case opens a connection over loopback, sends a request of one of the three protocols (streamed, with or
without `x-emulator-chunk-delay-ms`) and leaves at a chosen moment:

    close    after a few SSE events (FIN)            reset    the same, with an RST (SO_LINGER 0)
    headers  right after the response headers        upload   half-way through sending the request body
    hang     during an `x-emulator-fault: hang`      latency  before the headers of a delayed non-streamed reply
    stall    during an `x-emulator-fault: stall=…`

Two server forms, the same app:

- `cli`: `tokenhub-emulator serve` in its own process, as a user starts it. Before and after: its open file
  descriptors (/proc/PID/fd), its RSS, and the journal (every entry closed, `disconnected` set).
- `thread`: the app under uvicorn with the CLI's HTTP protocol class, in a thread of this process, so that
  `asyncio.all_tasks(loop)` of the server's loop can be read: it must be back to what it was.

The CI short form is tests/e2e/test_hardening_disconnects.py, which imports this module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROMPT = "disconnect me"
WORDS = 200  # one token per word: a stream of ~200 events, seconds long with a chunk delay
SCENARIO = (
    "name: disconnects\nrules:\n  - name: long answer\n    when: {last_user: {starts_with: disconnect}}\n"
    f"    reply: {{content: {json.dumps(' '.join(['word'] * WORDS))}}}\n"
)
PROTOCOLS = ("chat", "responses", "messages")
MODES = ("close", "reset", "headers", "upload", "hang", "latency", "stall")
DELAYS_MS = (None, 5)  # no chunk delay (the stream may be written whole at once), and a 5 ms one
PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "messages": "/v1/messages"}


@dataclass(frozen=True)
class Case:
    protocol: str
    mode: str
    delay_ms: int | None
    events: int  # how many SSE events to read before leaving (close / reset / stall)


def cases(count: int) -> list[Case]:
    """A deterministic mix covering every protocol × mode × delay, in an order that interleaves them."""
    out = []
    for i in range(count):
        out.append(
            Case(
                protocol=PROTOCOLS[i % 3],
                mode=MODES[(i // 3) % len(MODES)],
                delay_ms=DELAYS_MS[(i // (3 * len(MODES))) % 2],
                events=1 + i % 4,
            )
        )
    return out


def body_for(protocol: str, stream: bool) -> dict[str, Any]:
    if protocol == "chat":
        return {"model": "glm-5", "stream": stream, "messages": [{"role": "user", "content": PROMPT}]}
    if protocol == "responses":
        return {"model": "glm-5", "stream": stream, "input": PROMPT, "store": False}
    return {"model": "glm-5", "stream": stream, "max_tokens": 1024, "messages": [{"role": "user", "content": PROMPT}]}


def request_for(case: Case, host: str, port: int, test_id: str = "disconnects") -> tuple[bytes, bytes]:
    """The request's head and body."""
    stream = case.mode != "latency"
    body = json.dumps(body_for(case.protocol, stream)).encode()
    headers = {
        "host": f"{host}:{port}",
        "authorization": "Bearer sk-disconnect",
        "content-type": "application/json",
        "content-length": str(len(body)),
        "x-emulator-test-id": test_id,
    }
    if case.protocol == "messages":
        headers["anthropic-version"] = "2023-06-01"
    if case.delay_ms is not None:
        headers["x-emulator-chunk-delay-ms"] = str(case.delay_ms)
    if case.mode == "hang":
        headers["x-emulator-fault"] = "hang"
    elif case.mode == "stall":
        headers["x-emulator-fault"] = f"stall=5000; after={case.events + 1}"
    elif case.mode == "latency":
        headers["x-emulator-latency-ms"] = "300"
    head = f"POST {PATHS[case.protocol]} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n").encode(), body


async def _read_until(reader: asyncio.StreamReader, marker: bytes, count: int, buffer: bytes, timeout: float) -> bytes:
    deadline = asyncio.get_running_loop().time() + timeout
    while buffer.count(marker) < count:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise TimeoutError(f"waited {timeout}s for {count} × {marker!r}")
        chunk = await asyncio.wait_for(reader.read(65536), left)
        if not chunk:
            raise ConnectionError("the server closed the connection first")
        buffer += chunk
    return buffer


async def run_case(host: str, port: int, case: Case, test_id: str = "disconnects") -> str:
    """One disconnect; returns what the client saw before leaving ('left', or what went wrong)."""
    head, body = request_for(case, host, port, test_id)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if case.mode == "upload":
            writer.write(head + body[: len(body) // 2])
            await writer.drain()
            await asyncio.sleep(0.005)
            return "left"
        writer.write(head + body)
        await writer.drain()
        if case.mode in ("hang", "latency"):
            await asyncio.sleep(0.02)  # the server is waiting: nothing has been sent yet
            return "left"
        buffer = await _read_until(reader, b"\r\n\r\n", 1, b"", 10)
        status = buffer.split(b" ", 2)[1]
        if status != b"200":
            return f"status {status.decode()}"
        if case.mode == "headers":
            return "left"
        await _read_until(reader, b"\n\n", case.events + 1, buffer, 10)  # the header block ends in \r\n\r\n
        return "left"
    except (ConnectionError, TimeoutError) as error:
        return type(error).__name__
    finally:
        if case.mode == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()


async def run_cases(host: str, port: int, todo: list[Case], concurrency: int) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    queue = list(reversed(todo))

    async def worker() -> None:
        while queue:
            case = queue.pop()
            outcomes[await run_case(host, port, case)] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def disconnect(url: str, todo: list[Case], concurrency: int = 20) -> Counter[str]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return asyncio.run(run_cases(host, int(port), todo, concurrency))


# ---------------------------------------------------------------- what the server holds


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def settle(measure: Callable[[], int], baseline: int, timeout: float = 8.0) -> int:
    """The measure once it is back to the baseline (or the timeout passed): closes finish asynchronously."""
    deadline = time.monotonic() + timeout
    value = measure()
    while value > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
        value = measure()
    return value


def write_scenario(folder: Path) -> Path:
    path = folder / "disconnects.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


class CliServer:
    """`tokenhub-emulator serve` in its own process."""

    def __init__(self, scenario: Path, *extra: str) -> None:
        command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning"]
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - not a pipe: a full one would block the server
        self.process = subprocess.Popen(
            [*command, "--scenario", str(scenario), *extra],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"the emulator did not start: {line!r} {self.read_log()}")
        self.url = line.rsplit(" ", 1)[-1].strip()
        self.pid = self.process.pid

    def control(self, method: str, path: str, **params: Any) -> Any:
        import httpx

        headers = {"content-type": "application/json"}  # a POST the control API takes (not one a web page could send)
        response = httpx.request(method, self.url + "/_emulator" + path, params=params, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def read_log(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> str:
        """Stops the server; its stderr (the log)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        log = self.read_log()
        self.log.close()
        return log


class ThreadServer:
    """The app served by uvicorn with the CLI's protocol class, on a loop in a thread of this process.

    `transport=False` serves it as the pytest plugin does (plain uvicorn: streams go through ASGI sends).
    """

    def __init__(self, scenario: Path, *, transport: bool = True) -> None:
        import uvicorn

        from emulator.config import Settings
        from emulator.server.app import build_app
        from emulator.server.listener import listening_socket
        from emulator.server.runtime import Runtime
        from emulator.server.transport import http_protocol

        settings = Settings(port=0, scenarios=[scenario], log_level="warning")
        app = build_app(settings, Runtime.from_settings(settings))
        extra: dict[str, Any] = {"http": http_protocol()} if transport else {}
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2, **extra)
        self.server = uvicorn.Server(config)
        self.sock = listening_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.loop: asyncio.AbstractEventLoop | None = None
        started = threading.Event()

        def run() -> None:
            try:
                import uvloop

                loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            except ImportError:
                loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            loop.run_until_complete(self.server.serve(sockets=[self.sock]))
            loop.close()

        self.thread = threading.Thread(target=run, name="disconnects-server", daemon=True)
        self.thread.start()
        started.wait(10)
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            raise RuntimeError("the in-thread server did not start")

    def tasks(self) -> int:
        """How many asyncio tasks the server's loop holds (read on that loop)."""
        assert self.loop is not None

        async def count() -> int:
            return len(asyncio.all_tasks()) - 1  # not this one

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(10)

    def task_names(self) -> list[str]:
        assert self.loop is not None

        async def names() -> list[str]:
            me = asyncio.current_task()
            return sorted(repr(t.get_coro()) for t in asyncio.all_tasks() if t is not me)

        return asyncio.run_coroutine_threadsafe(names(), self.loop).result(10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# ---------------------------------------------------------------- the long form


def measure_cli(count: int, concurrency: int, folder: Path) -> dict[str, Any]:
    """`count` disconnects against `tokenhub-emulator serve`, in two halves each followed by a reset.

    RSS after the first half (the journal then emptied) against RSS after the second: what a leak would add.
    """
    server = CliServer(write_scenario(folder))
    try:
        disconnect(server.url, cases(3 * len(MODES) * 2), concurrency)  # warm up: imports, caches, pools
        server.control("POST", "/reset")
        time.sleep(0.3)
        fds0, rss0 = fd_count(server.pid), rss_mb(server.pid)
        started = time.perf_counter()
        todo = cases(count)
        outcomes = disconnect(server.url, todo[: count // 2], concurrency)
        settle(lambda: fd_count(server.pid), fds0)
        server.control("POST", "/reset")
        rss_half = rss_mb(server.pid)
        outcomes += disconnect(server.url, todo[count // 2 :], concurrency)
        took = time.perf_counter() - started
        fds1 = settle(lambda: fd_count(server.pid), fds0)
        time.sleep(0.3)
        rss1 = rss_mb(server.pid)
        journal = server.control("GET", "/journal")["data"]
        server.control("POST", "/reset")
        rss2 = rss_mb(server.pid)
        health = server.control("GET", "/health")["status"]
    finally:
        log = server.stop()
    return {
        "pid": server.pid,
        "count": count,
        "seconds": took,
        "outcomes": outcomes,
        "fds": (fds0, fds1),
        "rss_mb": (rss0, rss_half, rss1, rss2),
        "journal": journal,  # of the second half
        "second_half": todo[count // 2 :],
        "health": health,
        "log": log,
    }


def measure_thread(count: int, concurrency: int, folder: Path, transport: bool) -> dict[str, Any]:
    logger = logging.getLogger("tokenhub_emulator")
    errors = _Counting()
    logger.addHandler(errors)
    propagate, logger.propagate = logger.propagate, False
    server = ThreadServer(write_scenario(folder), transport=transport)
    try:
        disconnect(server.url, cases(3 * len(MODES) * 2), concurrency)
        time.sleep(0.3)
        tasks0 = server.tasks()
        started = time.perf_counter()
        outcomes = disconnect(server.url, cases(count), concurrency)
        took = time.perf_counter() - started
        tasks1 = settle(server.tasks, tasks0)
        left = server.task_names() if tasks1 > tasks0 else []
    finally:
        server.stop()
        logger.removeHandler(errors)
        logger.propagate = propagate
    return {
        "count": count,
        "seconds": took,
        "outcomes": outcomes,
        "tasks": (tasks0, tasks1),
        "left": left,
        "logged_errors": errors.count,
    }


class _Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def _row(name: str, before: float, after: float) -> str:
    return f"  {name:<30} {before:>9.1f} {after:>9.1f}   ({after - before:+.1f})"


def exceptions_logged(log: str) -> list[str]:
    """The exception line of each traceback in a server log."""
    found = []
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = [line for line in block.splitlines() if line and not line.startswith((" ", "\t"))]
        found.append(lines[0] if lines else "?")
    return found


def report_cli(m: dict[str, Any]) -> bool:
    fds0, fds1 = m["fds"]
    rss0, rss_half, rss1, rss2 = m["rss_mb"]
    journal = m["journal"]
    still_open = sum(1 for e in journal if e["duration_ms"] is None)
    flagged = sum(1 for e in journal if e["disconnected"])
    found = exceptions_logged(m["log"])
    known = sum(1 for line in found if "ClientDisconnect" in line)
    print(f"cli server (tokenhub-emulator serve, pid {m['pid']}): {m['count']} disconnects in {m['seconds']:.1f} s")
    print(f"  client outcomes: {dict(m['outcomes'])}")
    print(f"  {'':<30} {'before':>9} {'after':>9}")
    print(_row("open fds", fds0, fds1))
    print(_row("RSS MB (whole run)", rss0, rss1))
    print(_row("RSS MB (second half)", rss_half, rss1))
    print(
        f"  RSS MB: {rss_half:.1f} after the first half and a reset, {rss1:.1f} after the second (its journal "
        f"held), {rss2:.1f} after reading that journal and a reset"
    )
    print(
        f"  journal of the second half: {len(journal)} entries, {still_open} still open, {flagged} flagged disconnected"
    )
    print(
        f"  server log: {len(found)} tracebacks, {known} of them ClientDisconnect (a client that left mid-upload: "
        f"a known bug, tests/e2e/test_hardening_disconnects.py); health after: {m['health']}"
    )
    ok = fds1 <= fds0 and still_open == 0 and m["health"] == "ok" and set(m["outcomes"]) == {"left"}
    return ok and len(found) == known


def report_thread(m: dict[str, Any], transport: bool) -> bool:
    form = "uvicorn + the CLI's protocol class" if transport else "plain uvicorn, as the pytest plugin serves"
    tasks0, tasks1 = m["tasks"]
    print(f"thread server ({form}): {m['count']} disconnects in {m['seconds']:.1f} s")
    print(f"  client outcomes: {dict(m['outcomes'])}")
    print(_row("asyncio tasks", tasks0, tasks1))
    print(f"  errors logged: {m['logged_errors']}")
    for name in m["left"][:10]:
        print(f"    left: {name}")
    return tasks1 <= tasks0 and set(m["outcomes"]) == {"left"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="disconnects per server form (default 10000)")
    parser.add_argument("--concurrency", type=int, default=50, help="clients at once (default 50)")
    parser.add_argument("--server", choices=["cli", "thread", "plugin", "all"], default="all")
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.server in ("cli", "all"):
            ok &= report_cli(measure_cli(args.count, args.concurrency, folder))
        for form, transport in (("thread", True), ("plugin", False)):
            if args.server in (form, "all"):
                ok &= report_thread(measure_thread(args.count, args.concurrency, folder, transport), transport)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
