"""Every attack of issue 11 against one running emulator, while an innocent client keeps asking.

    python bench/hostile.py                 # about 9 minutes; --json FILE keeps the figures, --only a,b runs some
    python bench/hostile.py --list          # the attacks, in order

Starts `tokenhub-emulator serve` as a user would (default limits, a descriptor limit of 256 so that the
connection attacks can exhaust it), with a scenario that has the rules the attacks aim at: a catastrophic
regex, `.*world`, ten `equals` rules with `fallback: error`, a template that repeats the prompt 200 times, a
sequence, a tool call with generated arguments. A second process, the prober, sends an innocent request
(`innocent ping` → `pong`) every 10 ms on a connection of its own and notes each latency; the record attacks
start `tokenhub-emulator record` in front of a hostile upstream and probe that instead.

Per attack: the worst latency of an innocent request while it ran (target ≤ 50 ms), the server's peak RSS over
its idle figure (target ≤ 300 MB; sampled every 20 ms from /proc), and the 5xx answers, the attack's own and the
innocent ones (target 0). Loopback only, each attack bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
KEY = {"authorization": "Bearer sk-hostile-bench-0123456789"}
INNOCENT = {"model": "glm-5", "messages": [{"role": "user", "content": "innocent ping"}]}
DESCRIPTORS = 256
SCENARIO = (
    """\
name: hostile
settings: {fallback: error}
rules:
  - name: innocent
    when: {last_user: innocent ping}
    reply: {content: pong}
  - name: catastrophic
    when: {last_user: {regex: '^(a+)+$'}}
    reply: {content: matched}
  - name: dotstar
    when: {last_user: {regex: '.*world'}}
    reply: {content: world}
  - name: echo
    when: {last_user: {starts_with: ECHO}}
    reply: {content: 'ECHO_TEMPLATE'}
  - name: counted
    when: {last_user: count me}
    sequence: [{reply: {content: one}}, {reply: {content: two}}]
  - name: tool
    when: {last_user: call the tool}
    reply: {tool_calls: [{name: t}]}
  - name: chain
    when: {last_user: {starts_with: turn}}
    reply: {content: next}
""".replace("ECHO_TEMPLATE", "{{ last_user }}" * 200)
    + "".join(
        f"  - name: near{i}\n    when: {{last_user: 'expected text number {i}'}}\n    reply: {{content: x}}\n"
        for i in range(10)
    )
)


# ── processes ────────────────────────────────────────────────────────────────


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


def start(command: list[str], *, descriptors: bool = False) -> tuple[subprocess.Popen[str], str, Any]:
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", *command, "--port", "0", "--log-level", "warning"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        preexec_fn=limit_descriptors if descriptors else None,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        log.seek(0)
        raise RuntimeError(f"did not start: {line!r} {log.read()}")
    return process, line.split()[-1], log


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Sampler:
    """The peak RSS of a process, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def reset(self) -> None:
        self.peak = rss_mb(self.pid)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Prober:
    """A process that asks the innocent question every 10 ms and writes `time latency status` lines."""

    def __init__(self, url: str, path: str = "/v1/chat/completions", body: dict | None = None) -> None:
        self.file = tempfile.NamedTemporaryFile(mode="w+", suffix=".probe", delete=False)  # noqa: SIM115
        spec = json.dumps({"url": url, "path": path, "body": body if body is not None else INNOCENT})
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--probe", spec], stdout=self.file, stderr=subprocess.DEVNULL
        )

    def between(self, start: float, end: float) -> tuple[float, int, int]:
        """(worst latency in ms, 5xx, answers) of the probes that were under way between start and end."""
        self.file.flush()
        worst, errors, count = 0.0, 0, 0
        with open(self.file.name) as lines:
            for line in lines:
                parts = line.split()
                if len(parts) != 3:
                    continue
                sent, latency, status = float(parts[0]), float(parts[1]), int(parts[2])
                if sent + latency / 1000 >= start and sent <= end:
                    worst, count = max(worst, latency), count + 1
                    errors += status >= 500 or status == 0
        return worst, errors, count

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()
        os.unlink(self.file.name)


def probe(spec: str) -> None:
    """The prober process: one keep-alive connection; a request that fails is status 0."""
    target = json.loads(spec)
    with httpx.Client(base_url=target["url"], headers=KEY, timeout=60) as client:
        while True:
            sent = time.time()
            try:
                status = client.post(target["path"], json=target["body"]).status_code
            except httpx.HTTPError:
                status = 0
            print(f"{sent:.4f} {(time.time() - sent) * 1000:.2f} {status}", flush=True)
            time.sleep(0.01)


# ── the attacks ──────────────────────────────────────────────────────────────


@dataclass
class Context:
    url: str
    root: Path  # the scenario root
    notes: list[str] = field(default_factory=list)
    errors: int = 0  # 5xx the attack itself got

    def count(self, response: httpx.Response) -> httpx.Response:
        self.errors += response.status_code >= 500
        return response

    def post(self, path: str, body: Any = None, *, content: bytes | None = None, **headers: str) -> httpx.Response:
        merged = {**KEY, "content-type": "application/json", **headers}
        data = content if content is not None else json.dumps(body).encode()
        return self.count(httpx.post(self.url + path, content=data, headers=merged, timeout=120))

    def chat(self, text: str, **headers: str) -> httpx.Response:
        return self.post(
            "/v1/chat/completions", {"model": "glm-5", "messages": [{"role": "user", "content": text}]}, **headers
        )

    def raw(self, data: bytes, *, read: bool = True) -> bytes:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            with contextlib.suppress(OSError):  # the server may answer and close before it has read it all
                connection.sendall(data)
            received = b""
            while read:
                try:
                    chunk = connection.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                received += chunk
        if received.startswith(b"HTTP/1.1 5"):
            self.errors += 1
        return received


def file_leak(ctx: Context) -> None:
    (ctx.root / "secrets.yaml").write_text("password: hunter2-leak-marker\n")
    os.symlink("/etc/passwd", ctx.root / "passwd.yaml")
    statuses = []
    for path in ("/etc/shadow", "/etc/passwd", "../../../../etc/passwd", "passwd.yaml", "secrets.yaml", "/nonexistent"):
        response = ctx.post("/_emulator/scenarios", {"path": path})
        statuses.append(response.status_code)
        if "root:" in response.text or "hunter2" in response.text:
            ctx.notes.append(f"LEAK through {path}")
    ctx.notes.append("answers " + " ".join(map(str, statuses)))


def browser(ctx: Context) -> None:
    csrf = httpx.post(
        ctx.url + "/_emulator/scenarios",
        content="rules: [{when: {last_user: csrf}, reply: {content: x}}]",
        headers={"content-type": "text/plain", "origin": "https://evil.example", "sec-fetch-site": "cross-site"},
    )
    simple = httpx.post(ctx.url + "/_emulator/reset", headers={"content-type": "text/plain"})
    rebound = httpx.get(ctx.url + "/_emulator/journal", headers={"host": "evil.example"})
    ctx.notes.append(f"CSRF {csrf.status_code}, simple POST {simple.status_code}, rebinding {rebound.status_code}")


def regex_catastrophic(ctx: Context) -> None:
    for _ in range(20):
        ctx.chat("a" * 28 + "!")


def regex_dotstar(ctx: Context) -> None:
    for _ in range(5):
        ctx.chat("hello " * 34_000)  # about 200,000 characters


def near_miss(ctx: Context) -> None:
    for _ in range(5):
        ctx.chat("expected text number 7" + "z" * 1_000_000)


def journal_objects(ctx: Context) -> None:
    body = b'{"model": "glm-5", "messages": [' + b",".join([b"{}"] * 3_000_000) + b"]}"
    for _ in range(11):
        ctx.post("/v1/chat/completions", content=body)
    ctx.notes.append(f"{len(body) // 1_000_000} MB each, 11 times")


def journal_prompts(ctx: Context) -> None:
    for _ in range(11):
        ctx.chat("x" * 9_000_000)


def huge_header(ctx: Context) -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 20_000_000 + b"\r\n\r\n"
    answer = ctx.raw(head)
    ctx.notes.append(answer.split(b"\r\n", 1)[0].decode())


def connections(ctx: Context) -> None:
    """300 silent sockets, 50 partial heads, 50 partial bodies: more than the 256 descriptors the server has."""
    host, port = ctx.url.removeprefix("http://").rsplit(":", 1)
    held = []
    body = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"
    for index in range(400):
        try:
            connection = socket.create_connection((host, int(port)), timeout=5)
        except OSError:
            continue
        if 300 <= index < 350:
            connection.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        elif index >= 350:
            connection.sendall(body.encode())
        held.append(connection)
    answered = sum(ctx.chat("innocent ping").status_code == 200 for _ in range(20))
    for connection in held:
        connection.close()
    ctx.notes.append(f"{len(held)} sockets held; 20 requests meanwhile: {answered} answered")


def responses_chain(ctx: Context) -> None:
    previous = None
    started = time.monotonic()
    for turn in range(6528):
        body = {"model": "glm-5", "input": f"turn {turn}", **({"previous_response_id": previous} if previous else {})}
        response = ctx.post("/v1/responses", body)
        if response.status_code != 200:
            ctx.notes.append(f"turn {turn}: {response.status_code}")
            break
        previous = response.json()["id"]
    ctx.notes.append(f"6,528 links in {time.monotonic() - started:.0f} s")


def item_reference(ctx: Context) -> None:
    for _ in range(20):
        ctx.post("/v1/responses", {"model": "glm-5", "input": [{"type": "item_reference", "id": "msg_missing"}]})


def reasoning(ctx: Context) -> None:
    item = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "é"}
    statuses = {
        ctx.post("/v1/responses", {"model": "glm-5", "input": [item, {"role": "user", "content": "hi"}]}).status_code
        for _ in range(20)
    }
    ctx.notes.append(f"answers {sorted(statuses)}")


def template(ctx: Context) -> None:
    for _ in range(5):
        ctx.chat("ECHO" + "e" * 1_000_000)


def big_index(ctx: Context) -> None:
    digits = "9" * 5000
    scenario = (
        f'rules:\n  - when: {{last_user: idx}}\n    reply: {{content: "{{{{ body.messages.{digits}.content }}}}"}}\n'
    )
    loaded = ctx.post("/_emulator/scenarios", content=scenario.encode(), **{"content-type": "application/yaml"})
    ctx.chat("idx")
    ctx.notes.append(f"load answered {loaded.status_code}")


def control_body(ctx: Context) -> None:
    def chunks():
        piece = b"#" * 1_000_000
        for _ in range(400):
            yield piece

    try:
        response = httpx.post(
            ctx.url + "/_emulator/scenarios", content=chunks(), headers={"content-type": "application/yaml"}, timeout=60
        )
        ctx.count(response)
        ctx.notes.append(f"400 MB body answered {response.status_code}")
    except httpx.HTTPError as error:
        ctx.notes.append(f"400 MB body: connection closed by the server ({type(error).__name__})")


def test_ids(ctx: Context) -> None:
    with httpx.Client(base_url=ctx.url, headers={**KEY, "content-type": "application/json"}, timeout=60) as client:
        body = json.dumps({"model": "glm-5", "messages": [{"role": "user", "content": "count me"}]})
        for n in range(15_000):
            ctx.count(client.post("/v1/chat/completions", content=body, headers={"x-emulator-test-id": f"t-{n}"}))
    ctx.notes.append("15,000 test ids")


def malformed(ctx: Context) -> None:
    answers = {ctx.raw(b"NOT HTTP\r\n\r\n").split(b"\r\n", 1)[0] for _ in range(100)}
    ctx.notes.append(" / ".join(sorted(a.decode() for a in answers)))


def tool_schema(ctx: Context) -> None:
    schema = {
        "type": "object",
        "required": ["s", "a"],
        "properties": {
            "s": {"type": "string", "pattern": "((a{1000}){1000}){1000}", "minLength": 10**9},
            "a": {"type": "array", "minItems": 10**6, "items": {"type": "array", "minItems": 10**6}},
        },
    }
    body = {
        "model": "glm-5",
        "messages": [{"role": "user", "content": "call the tool"}],
        "tools": [{"type": "function", "function": {"name": "t", "parameters": schema}}],
    }
    sizes = {len(ctx.post("/v1/chat/completions", body).content) for _ in range(5)}
    ctx.notes.append(f"answers of {max(sizes)} bytes")


ATTACKS: dict[str, Callable[[Context], None]] = {
    "file leak through the control API": file_leak,
    "browser: CSRF, DNS rebinding": browser,
    "regex ^(a+)+$ x 28": regex_catastrophic,
    "regex .*world, 200 k prompt": regex_dotstar,
    "near miss, 1 MB prompt, 10 rules": near_miss,
    "journal: 11 x 9 MB of {}": journal_objects,
    "journal: 11 x 9 MB prompt": journal_prompts,
    "20 MB header": huge_header,
    "400 sockets, 256 descriptors": connections,
    "Responses chain, 6,528 links": responses_chain,
    "item_reference to a missing id": item_reference,
    "reasoning, non-ASCII encrypted_content": reasoning,
    "template 200 x last_user, 1 MB": template,
    "5,000-digit index": big_index,
    "control API, 400 MB body": control_body,
    "15,000 test ids": test_ids,
    "malformed HTTP": malformed,
    "tool schema: huge minLength, pattern": tool_schema,
}


# ── the record attacks: a hostile upstream ───────────────────────────────────


class Upstream:
    """A raw HTTP upstream on loopback: each request gets what `kind` says."""

    def __init__(self) -> None:
        self.kind = "endless"
        # made once, before any attack runs: compressing 400 MB takes this process seconds of CPU
        self.bomb = gzip.compress(b'{"choices": "' + b"0" * 400_000_000 + b'"}', compresslevel=1)
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._answer, "127.0.0.1", 0))
        ready.set()
        self.loop.run_forever()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://user:pw-secret@127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1?api_key=q-secret"

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        await reader.readexactly(length)
        try:
            if self.kind == "endless":
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                frame = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n' * 200
                chunk = b"%x\r\n%b\r\n" % (len(frame), frame)
                while True:
                    writer.write(chunk)
                    await writer.drain()
            elif self.kind == "bomb":
                body = self.bomb
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n")
                writer.write(b"content-length: %d\r\n\r\n%b" % (len(body), body))
            else:  # a 300 MB answer
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 300000030\r\n\r\n")
                writer.write(b'{"choices": [], "pad": "')
                piece = b"p" * 1_000_000
                for _ in range(300):
                    writer.write(piece)
                    await writer.drain()
                writer.write(b'"}    ')
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def record_attack(kind: str) -> Callable[[Context], None]:
    def attack(ctx: Context) -> None:
        body = {
            "model": "glm-5",
            "messages": [{"role": "user", "content": f"record {kind}"}],
            "stream": kind == "endless",
        }
        try:
            with httpx.stream("POST", ctx.url + "/v1/chat/completions", json=body, headers=KEY, timeout=120) as r:
                got, started = 0, time.monotonic()
                for chunk in r.iter_raw():
                    got += len(chunk)
                    if kind == "endless" and time.monotonic() - started > 5:
                        break  # the client leaves; the recorder must stop too
                ctx.notes.append(f"client got {got // 1_000_000} MB")
        except httpx.HTTPError as error:
            ctx.notes.append(f"client: {type(error).__name__}")
        time.sleep(3 if kind == "endless" else 1)  # what the recorder does after the client left counts too
        after = ctx.chat("after")  # the next recording is not held up
        ctx.notes.append(f"next request {after.status_code}")

    return attack


RECORD_ATTACKS = {
    "record: endless upstream stream": "endless",
    "record: gzip bomb (400 MB)": "bomb",
    "record: 300 MB answer": "large",
}


# ── running ──────────────────────────────────────────────────────────────────


@dataclass
class Result:
    attack: str
    stall_ms: float
    rss_mb: float
    errors: int
    probes: int
    seconds: float
    notes: str


def run(
    name: str, attack: Callable[[Context], None], ctx: Context, prober: Prober, sampler: Sampler, idle: float
) -> Result:
    ctx.notes, ctx.errors = [], 0
    sampler.reset()
    started, wall = time.time(), time.monotonic()
    try:
        attack(ctx)
    except Exception as error:  # a broken attack is reported, not fatal to the run
        ctx.notes.append(f"attack failed: {type(error).__name__}: {error}"[:200])
    time.sleep(0.3)  # the probes under way at the end have come back
    stall, probe_errors, probes = prober.between(started, time.time() - 0.3)
    return Result(
        name,
        stall,
        max(sampler.peak - idle, 0.0),
        ctx.errors + probe_errors,
        probes,
        time.monotonic() - wall,
        "; ".join(ctx.notes),
    )


def table(results: list[Result]) -> str:
    lines = [
        "| attack | worst innocent stall (ms) | peak RSS over idle (MB) | 5xx | time (s) | notes |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        lines.append(f"| {r.attack} | {r.stall_ms:.1f} | {r.rss_mb:.0f} | {r.errors} | {r.seconds:.1f} | {r.notes} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--only", help="comma-separated attack names (or parts of them)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe)
        return
    names = [*ATTACKS, *RECORD_ATTACKS]
    if args.list:
        print("\n".join(names))
        return
    chosen = [n for n in names if not args.only or any(part.strip() in n for part in args.only.split(","))]
    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    (root / "hostile.yaml").write_text(SCENARIO)
    results: list[Result] = []

    process, url, log = start(["serve", "--scenario", str(root / "hostile.yaml")], descriptors=True)
    try:
        for _ in range(200):
            httpx.post(url + "/v1/chat/completions", json=INNOCENT, headers=KEY)
        sampler, prober = Sampler(process.pid), Prober(url)
        time.sleep(1)
        idle = rss_mb(process.pid)
        print(f"server idle RSS {idle:.0f} MB", flush=True)
        ctx = Context(url, root)
        for name in [n for n in chosen if n in ATTACKS]:
            results.append(run(name, ATTACKS[name], ctx, prober, sampler, idle))
            print(table(results[-1:]).splitlines()[-1], flush=True)
        prober.stop()
        sampler.stop()
        alive = httpx.post(url + "/v1/chat/completions", json=INNOCENT, headers=KEY).status_code == 200
        print(f"server alive at the end: {alive}", flush=True)
    finally:
        process.terminate()
        process.wait()
        log.seek(0)
        tracebacks = log.read().count("Traceback")
        print(f"server log: {tracebacks} traceback(s)", flush=True)

    if any(n in RECORD_ATTACKS for n in chosen):
        upstream = Upstream()
        out = root / "recorded.yaml"
        process, url, log = start(["record", "--upstream", upstream.url, "--out", str(out), "--mode", "new"])
        try:
            sampler, prober = Sampler(process.pid), Prober(url, "/_emulator/health")
            time.sleep(1)
            idle = rss_mb(process.pid)
            print(f"recorder idle RSS {idle:.0f} MB", flush=True)
            for name in [n for n in chosen if n in RECORD_ATTACKS]:
                upstream.kind = RECORD_ATTACKS[name]
                results.append(run(name, record_attack(upstream.kind), Context(url, root), prober, sampler, idle))
                print(table(results[-1:]).splitlines()[-1], flush=True)
            prober.stop()
            sampler.stop()
        finally:
            process.terminate()
            process.wait()
            log.seek(0)
            text = log.read()
            leaked = [s for s in ("pw-secret", "q-secret") if s in text]
            print(
                f"recorder log: {text.count('Traceback')} traceback(s); URL secrets in it: {leaked or 'none'}",
                flush=True,
            )

    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))


if __name__ == "__main__":
    main()
