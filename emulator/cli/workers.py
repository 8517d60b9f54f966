"""`serve --workers N`: N processes answering on one port, sharing their state through Redis.

The parent binds the port, starts the workers (each a whole server on the inherited socket), restarts one that
dies, and stops them all on SIGTERM / SIGINT. Without `--state` it runs a Redis of its own (when
`redis-server` is on the PATH): a unix socket in a private temporary folder, no persistence, stopped with the
parent — even when the parent is killed, since the kernel sends it SIGTERM then (PR_SET_PDEATHSIG). Without
either, it refuses with one line that names both fixes: several workers with separate state would answer
sequences, chains and the journal inconsistently.

Metrics: the workers count into one folder (prometheus_client's multi-process mode): PROMETHEUS_MULTIPROC_DIR
when it is set, else a fresh temporary folder removed at exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.context import SpawnProcess
from pathlib import Path
from types import FrameType

from emulator.config import Settings, env_name

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
REDIS_START_S = 10.0  # how long an embedded redis-server may take to answer
CRASH_LOOP_S = 2.0  # a worker that dies this soon after it started, CRASH_LOOP_TRIES times in a row: give up
CRASH_LOOP_TRIES = 5
PR_SET_PDEATHSIG = 1


def no_state_line(workers: int) -> str:
    return (
        f"tokenhub-emulator: --workers {workers} needs state shared between the workers: pass --state "
        f"redis://HOST:6379/0 (or {env_name('state')}), or install redis-server (e.g. `apt-get install "
        "redis-server`) so that serve starts one of its own"
    )


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


class EmbeddedRedis:
    """A redis-server of the parent's own: unix socket only, nothing written to disk, gone with the parent."""

    def __init__(self, executable: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="tokenhub-emulator-redis-"))
        self.socket_path = self.folder / "redis.sock"
        command = [
            executable,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.folder),
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
            start_new_session=True,  # Ctrl-C reaches the workers, which finish their answers; Redis stops after them
        )

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def wait_ready(self) -> str | None:
        """None once it answers a PING; else what went wrong."""
        deadline = time.monotonic() + REDIS_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                return f"redis-server exited ({self.process.returncode}): {error.strip()[:300]}"
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(0.5)
                probe.connect(str(self.socket_path))
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return None
            time.sleep(0.02)
        return f"redis-server did not answer within {REDIS_START_S:g} s"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def worker_main(settings: Settings, sock: socket.socket, number: int, parent: int) -> None:
    """One worker: a whole server on the parent's socket, stopped with the parent."""
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the kernel was asked to say so
        sys.exit(1)
    from emulator.cli.serving import serve_on

    sys.exit(serve_on(settings, sock, announce=False, worker=number))


class Workers:
    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self.settings = settings
        self.sock = sock
        self.context = multiprocessing.get_context("spawn")
        self.processes: dict[int, tuple[SpawnProcess, float]] = {}
        self.stopping = False
        self.crashes = 0

    def start(self, number: int) -> None:
        process = self.context.Process(
            target=worker_main,
            args=(self.settings, self.sock, number, os.getpid()),
            name=f"tokenhub-emulator-worker-{number}",
        )
        process.start()
        self.processes[number] = (process, time.monotonic())

    def stop(self, signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        self.stopping = True
        for process, _ in self.processes.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    def run(self, on_started: Callable[[], None]) -> int:
        for number in range(self.settings.workers):
            self.start(number)
        on_started()
        while True:
            for number, (process, started) in list(self.processes.items()):
                process.join(0.1 / max(1, len(self.processes)))
                if process.exitcode is None:
                    continue
                if self.stopping:
                    del self.processes[number]
                    continue
                self.crashes = self.crashes + 1 if time.monotonic() - started < CRASH_LOOP_S else 0
                if self.crashes >= CRASH_LOOP_TRIES:
                    print(
                        f"tokenhub-emulator: worker {number} keeps exiting ({process.exitcode}); stopping",
                        file=sys.stderr,
                    )
                    self.stop()
                    continue
                print(
                    f"tokenhub-emulator: worker {number} exited ({process.exitcode}); starting it again",
                    file=sys.stderr,
                )
                self.start(number)
            if not self.processes:
                return 1 if self.crashes >= CRASH_LOOP_TRIES else 0
            grace = self.settings.shutdown_grace_s + 5
            if self.stopping and any(time.monotonic() - started > grace for _, started in self.processes.values()):
                for process, _ in self.processes.values():
                    if process.is_alive():
                        process.kill()


def serve_workers(settings: Settings, sock: socket.socket, announce: Callable[[str | None], None]) -> int:
    """Run `settings.workers` workers on `sock`; `announce` prints the first lines once they are started (it is
    told "embedded Redis" when this started one)."""
    redis: EmbeddedRedis | None = None
    multiproc_dir: str | None = None
    try:
        if settings.state is None:
            executable = shutil.which("redis-server")
            if executable is None:
                print(no_state_line(settings.workers), file=sys.stderr)
                return 2
            redis = EmbeddedRedis(executable)
            problem = redis.wait_ready()
            if problem is not None:
                print(f"tokenhub-emulator: could not start the embedded Redis: {problem}", file=sys.stderr)
                return 2
            settings = replace(settings, state=redis.url)
        if not os.environ.get(MULTIPROC_VARIABLE):
            multiproc_dir = tempfile.mkdtemp(prefix="tokenhub-emulator-metrics-")
            os.environ[MULTIPROC_VARIABLE] = multiproc_dir
        workers = Workers(settings, sock)
        signal.signal(signal.SIGTERM, workers.stop)
        signal.signal(signal.SIGINT, workers.stop)
        return workers.run(lambda: announce("embedded Redis" if redis is not None else None))
    finally:
        if redis is not None:
            redis.stop()
        if multiproc_dir is not None:
            shutil.rmtree(multiproc_dir, ignore_errors=True)
            os.environ.pop(MULTIPROC_VARIABLE, None)
