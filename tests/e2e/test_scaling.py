"""Replicas and workers sharing state through a real redis-server (docs/scaling.md).

The topology of deploy/ with processes: two `serve --state unix://…` replicas on their own ports, one Redis
started here, a client spreading requests over both. And `serve --workers 2` on one port.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = {"authorization": "Bearer sk-test"}
SEQUENCE = """
rules:
  - name: steps
    when: {model: glm-5}
    sequence: [{reply: {content: step 1}}, {reply: {content: step 2}}, {reply: {content: step 3}},
               {reply: {content: step 4}}, {reply: {content: step 5}}, {reply: {content: step 6}},
               {reply: {content: step 7}}, {reply: {content: step 8}}]
    then: cycle
"""


# ---------------------------------------------------------------- processes


class Redis:
    """A redis-server of the test's own on a unix socket in a temporary folder."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        assert executable, "redis-server is not installed: run tools/install-redis.sh (the README's test command does)"
        self.folder = Path(tempfile.mkdtemp(prefix="emulator-redis-"))
        self.socket = self.folder / "redis.sock"
        self.url = f"unix://{self.socket}?db=0"
        self.executable = executable
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.executable, "--port", "0", "--unixsocket", str(self.socket), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(self.socket))
                    probe.sendall(b"PING\r\n")
                    if probe.recv(8).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.socket.unlink(missing_ok=True)


class Replica:
    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning", *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_EMULATOR_")}
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - as long as the server
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.stop()
            self.log.seek(0)
            raise RuntimeError(f"server did not start: {line!r} {self.log.read()}")
        self.url = line.rsplit(" ", 1)[-1].strip()
        self.http = httpx.Client(base_url=self.url, headers=KEY, timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()

    def control(self, method: str, path: str, test_id: str | None = None, **kwargs: Any) -> Any:
        headers = {"x-emulator-test-id": test_id} if test_id else {}
        response = self.http.request(method, f"/_emulator{path}", headers=headers, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    def load(self, text: str, test_id: str | None = None, name: str | None = None) -> httpx.Response:
        headers = {"content-type": "application/yaml", **({"x-emulator-test-id": test_id} if test_id else {})}
        return self.http.post(
            "/_emulator/scenarios", content=text, params={"name": name} if name else {}, headers=headers
        )

    def chat(self, test_id: str = "", model: str = "glm-5", content: str = "hi") -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        return self.http.post("/v1/chat/completions", json=body, headers={"x-emulator-test-id": test_id})


@pytest.fixture(scope="module")
def redis() -> Iterator[Redis]:
    running = Redis()
    yield running
    running.stop()
    shutil.rmtree(running.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def replicas(redis: Redis) -> Iterator[list[Replica]]:
    with ThreadPoolExecutor(2) as pool:
        started = list(pool.map(lambda _: Replica("--state", redis.url), range(2)))
    yield started
    for replica in started:
        replica.stop()


def entries(replica: Replica, test_id: str) -> list[dict[str, Any]]:
    return replica.control("GET", "/journal", test_id)["data"]


# ---------------------------------------------------------------- replicas


def test_each_sequence_step_fires_once_across_replicas(replicas: list[Replica]) -> None:
    first, second = replicas
    assert first.load(SEQUENCE, "seq-once").status_code == 201

    def ask(n: int) -> str:
        response = replicas[n % 2].chat("seq-once")
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["message"]["content"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(16)))
    assert sorted(answers) == sorted(
        f"step {n}" for n in range(1, 9) for _ in range(2)
    )  # twice round, each once a round
    journal = entries(second, "seq-once")
    assert len(journal) == 16 and {e["rule"] for e in journal} == {"steps"}
    assert len({e["id"] for e in journal}) == 16


def test_a_scenario_loaded_on_one_replica_answers_on_the_other_and_the_journal_lists_both(
    replicas: list[Replica],
) -> None:
    first, second = replicas
    scenario = "rules:\n  - name: hello\n    when: {model: glm-5}\n    reply: {content: from the shared scenario}\n"
    assert second.load(scenario, "loaded").status_code == 201
    for replica in (first, second):
        assert replica.chat("loaded").json()["choices"][0]["message"]["content"] == "from the shared scenario"
    listed = [s["name"] for s in first.control("GET", "/scenarios", "loaded")["scenarios"]]
    assert "hello" in str(first.control("GET", "/scenarios", "loaded")) and listed
    for replica in (first, second):
        journal = entries(replica, "loaded")
        assert [e["rule"] for e in journal] == ["hello", "hello"]
    second.control("POST", "/reset", "loaded")
    assert entries(first, "loaded") == []
    assert first.chat("loaded").json()["choices"][0]["message"]["content"] != "from the shared scenario"


def test_fail_next_queued_on_one_replica_fails_the_next_request_on_the_other(replicas: list[Replica]) -> None:
    first, second = replicas
    first.http.post("/_emulator/fail_next", json={"count": 1, "status": 529}, headers={"x-emulator-test-id": "failing"})
    failed = second.chat("failing")
    assert failed.status_code == 529
    assert first.chat("failing").status_code == 200
    assert [e["status"] for e in entries(first, "failing")] == [529, 200]


def test_a_responses_chain_continues_on_the_other_replica(replicas: list[Replica]) -> None:
    clients = [openai.OpenAI(api_key="sk-test", base_url=r.url + "/v1", max_retries=0) for r in replicas]
    first = clients[0].responses.create(model="glm-5", input="My name is Ada.")
    second = clients[1].responses.create(model="glm-5", input="What is my name?", previous_response_id=first.id)
    third = clients[0].responses.create(model="glm-5", input="And again?", previous_response_id=second.id)
    items = clients[1].responses.input_items.list(third.id)
    texts = [
        part.text for item in items.data if item.type == "message" for part in item.content if hasattr(part, "text")
    ]
    assert "And again?" in texts
    assert clients[1].responses.retrieve(first.id).id == first.id


def test_an_anthropic_thread_continues_on_the_other_replica_once(replicas: list[Replica]) -> None:
    first, second = replicas
    headers = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
    created = first.http.post(
        "/v1/messages",
        headers=headers,
        json={
            "model": "glm-5",
            "max_tokens": 50,
            "system": "Be brief.",
            "thread": {"type": "create"},
            "messages": [{"role": "user", "content": "Remember the word kiwi."}],
        },
    )
    assert created.status_code == 200, created.text
    turn = {
        "model": "glm-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "Which word?"}],
        "thread": {"type": "continue", "previous_message_id": created.json()["id"]},
    }
    continued = second.http.post("/v1/messages", headers=headers, json=turn)
    assert continued.status_code == 200, continued.text
    again = first.http.post("/v1/messages", headers=headers, json=turn)
    assert again.status_code == 400 and again.json()["error"]["message"].count("already been continued") == 1
    nxt = {**turn, "thread": {"type": "continue", "previous_message_id": continued.json()["id"]}}
    assert first.http.post("/v1/messages", headers=headers, json=nxt).status_code == 200


def test_a_rate_limit_of_ten_requests_holds_across_replicas(replicas: list[Replica]) -> None:
    first, second = replicas
    limited = "settings:\n  rate_limits: {requests: 10, window_s: 3600, per: []}\nrules: []\n"
    assert first.load(limited, name="limits").status_code == 201
    try:
        statuses = [replicas[n % 2].chat(model="glm-5").status_code for n in range(14)]
    finally:
        second.control("DELETE", "/scenarios/limits")
    assert statuses.count(200) == 10 and statuses[10:] == [429] * 4


def test_run_time_faults_switched_on_one_replica_fire_on_the_other(replicas: list[Replica]) -> None:
    first, second = replicas
    fault = first.http.post("/_emulator/faults", json={"error": 503, "test_id": "faulted"})
    assert fault.status_code == 201, fault.text
    try:
        assert second.chat("faulted").status_code == 503
        assert second.control("GET", "/faults")["data"][0]["id"] == fault.json()["id"]
        report = first.control("GET", "/report", "faulted")
        assert (
            report["requests"] == 1
            and list(report["faults"])
            and report["faults"][next(iter(report["faults"]))]["seen"] == 1
        )
    finally:
        second.control("DELETE", "/faults")
    assert first.chat("faulted").status_code == 200


def test_a_faults_first_count_holds_across_replicas(replicas: list[Replica]) -> None:
    first, second = replicas
    fault = first.http.post("/_emulator/faults", json={"error": 503, "first": 2, "test_id": "counted"})
    assert fault.status_code == 201, fault.text
    try:
        statuses = [replicas[n % 2].chat("counted").status_code for n in range(6)]
    finally:
        first.control("DELETE", "/faults")
    assert statuses == [503, 503, 200, 200, 200, 200]


# ---------------------------------------------------------------- Redis going away


def test_redis_killed_mid_run_is_a_503_in_the_envelope_and_the_server_recovers() -> None:
    redis = Redis()
    replica = Replica("--state", redis.url)
    try:
        assert replica.chat().status_code == 200
        redis.stop()
        chat = replica.chat()
        assert chat.status_code == 503 and chat.json()["error"]["code"] == "shared_state_unavailable"
        messages = replica.http.post(
            "/v1/messages",
            headers={"x-api-key": "sk-test", "anthropic-version": "2023-06-01"},
            json={"model": "glm-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert messages.status_code == 503 and messages.json()["type"] == "error"
        assert "Redis" in messages.json()["error"]["message"]
        assert replica.http.get("/_emulator/journal").status_code == 503
        redis.start()
        assert replica.chat().status_code == 200
        assert "Traceback" not in replica.log.read()
    finally:
        replica.stop()
        redis.stop()
        shutil.rmtree(redis.folder, ignore_errors=True)


# ---------------------------------------------------------------- round trips


def test_a_scripted_request_costs_one_round_trip(redis: Redis) -> None:
    """Counted at the connection: each packed send is one round trip (a pipeline is one too)."""
    from redis.asyncio.connection import UnixDomainSocketConnection

    from emulator.config import Settings
    from emulator.server.app import build_app
    from emulator.server.runtime import Runtime

    sends: list[int] = []

    class Counting(UnixDomainSocketConnection):
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sends.append(1)
            await super().send_packed_command(command, check_health)

    async def run() -> list[int]:
        runtime = Runtime.from_settings(Settings(state=redis.url.replace("db=0", "db=3")))
        assert runtime.shared is not None
        runtime.shared.redis.connection_pool.connection_class = Counting
        app = build_app(runtime.settings, runtime)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4000))
        counted = []
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=KEY) as client:
            await client.post("/_emulator/reset", json={})
            scenario = SEQUENCE + "  - name: plain\n    when: {model: glm-5.1}\n    reply: {content: fixed}\n"
            await client.post("/_emulator/scenarios", content=scenario, headers={"content-type": "application/yaml"})
            warm = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}
            await client.post("/v1/chat/completions", json=warm)  # connections made, scripts loaded: once
            await runtime.shared.flush()
            for model in ("glm-5", "glm-5.1", "kimi-k2.5"):  # a sequence step, a plain rule, a generated reply
                body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
                await runtime.shared.flush()
                sends.clear()
                response = await client.post("/v1/chat/completions", json=body)
                assert response.status_code == 200
                counted.append(len(sends))
            body = {"model": "glm-5.1", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(2):  # the first time round opens the pool's connections
                await runtime.shared.flush()
                sends.clear()
                await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(40)))
            await runtime.shared.flush()
            counted.append(len(sends))
        await runtime.shared.close()
        return counted

    *single, many = asyncio.run(run())
    assert single == [1, 1, 1]
    assert many < 40 + 40 // 2  # one each before the answer; the journal's finishing writes go many at a time


def test_stored_turns_stay_within_their_caps_in_redis(redis: Redis) -> None:
    from emulator.state.redis_state import PREFIX, RedisState

    async def run() -> tuple[int, int, list[str]]:
        state = RedisState(redis.url.replace("db=0", "db=5"), journal_entries=10, journal_bytes=10_000,
                           store_bytes=2_000, ttl_s=60)  # fmt: skip
        await state.redis.flushdb()
        for n in range(10):
            await state.put_records([("responses", f"resp_{n}", {"key": f"resp_{n}", "text": "x" * 400})])
        base = f"{PREFIX}responses:"
        kept = await state.redis.lrange(base + "ids", 0, -1)
        size = int(await state.redis.get(base + "bytes"))
        items = await state.redis.hlen(base + "items")
        await state.close()
        return size, items, kept

    size, items, kept = asyncio.run(run())
    assert size <= 2_000 and items == len(kept) == 4 and kept[-1] == "resp_9"  # the newest kept, the oldest out


# ---------------------------------------------------------------- workers and the command line


def test_workers_share_one_port_and_one_state_and_stop_with_their_embedded_redis() -> None:
    server = Replica("--workers", "2")
    try:
        assert server.load(SEQUENCE, "workers").status_code == 201
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda _: server.chat("workers").json()["choices"][0]["message"]["content"], range(8))
            )
        assert sorted(answers) == [f"step {n}" for n in range(1, 9)]
        pids = {e["headers"].get("x-emulator-test-id") for e in entries(server, "workers")}
        assert pids == {"workers"}
        redis_pids = subprocess.run(
            ["pgrep", "-P", str(server.process.pid), "redis-server"], capture_output=True, text=True
        ).stdout.split()
        assert len(redis_pids) == 1
        workers = [pid for pid in _children(server.process.pid) if pid not in redis_pids]
        folders = {_environment(int(pid)).get("PROMETHEUS_MULTIPROC_DIR") for pid in workers} - {None}
        assert len(folders) == 1  # one metrics folder for every worker (prometheus_client's multi-process mode)
        (folder,) = folders
        assert Path(folder).is_dir()
    finally:
        assert server.stop() == 0
    assert not Path(folder).exists()  # made for this server, removed with it
    assert subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True).returncode == 1
    for pid in redis_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


def test_workers_and_their_redis_go_when_the_parent_is_killed() -> None:
    server = Replica("--workers", "2")
    children = _children(server.process.pid)
    assert len(children) >= 3  # two workers and redis-server (and multiprocessing's resource tracker)
    server.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    left = children
    while left and time.monotonic() < deadline:  # the kernel's SIGTERM (PR_SET_PDEATHSIG) reaches each child
        left = [pid for pid in left if _alive(int(pid))]
        time.sleep(0.05)
    assert left == []


def _children(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").partition("=")[::2] for item in raw if b"=" in item)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return " Z " not in stat  # a zombie has exited


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_EMULATOR_")}
    return subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**environment, **(env or {})},
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--state", "http://localhost:6379"], "is not a Redis URL"),
        (["--state", "redis://localhost:99999/0"], "not a valid URL"),
        (["--state", "redis://localhost:6379/zero"], "the database must be a number"),
        (["--state", "unix:///nonexistent/redis.sock"], "cannot reach the shared state (--state)"),
    ],
)
def test_a_bad_or_unreachable_state_url_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    done = _serve(*args)
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_workers_without_redis_refuse_naming_both_fixes(tmp_path: Path) -> None:
    (tmp_path / "python").symlink_to(sys.executable)
    done = _serve("--workers", "2", env={"PATH": str(tmp_path)})
    assert done.returncode == 2
    assert "--state redis://" in done.stderr and "install redis-server" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_state_env_variable_is_read(redis: Redis) -> None:
    done = _serve(env={"TOKENHUB_EMULATOR_STATE": "ftp://x"})
    assert done.returncode == 2 and "TOKENHUB_EMULATOR_STATE" in done.stderr


def test_journal_entries_stay_within_their_caps_in_redis(redis: Redis) -> None:
    url = redis.url.replace("db=0", "db=4")
    replica = Replica("--state", url, "--journal-entries", "5")
    try:
        for _ in range(9):
            replica.chat("capped")
        journal = entries(replica, "capped")
        assert len(journal) == 5 and journal[-1]["id"] == 9
    finally:
        replica.stop()
    listing = json.dumps(journal)
    assert "sk-test" not in listing  # keys masked in the shared journal too
