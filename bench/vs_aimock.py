"""Paced streams side by side with aimock (npm `@copilotkit/aimock`, the Node peer), in one run.

    python bench/vs_aimock.py                          # 1,000 streams x 50 chunks/s, 3 rounds each; ~2 min
    python bench/vs_aimock.py --streams 1000,2000      # and a larger point
    python bench/vs_aimock.py --rounds 5 --chunks 100 --interval-ms 20

Both servers answer the same chat completion stream: 100 chunks of `Hello ` (one token each for the emulator,
six characters each for aimock's `--chunk-size 6`), one every 20 ms (`x-emulator-chunk-delay-ms: 20` with a
TTFT of 0; aimock's `--latency 20`): 50 chunks a second per stream. aimock is installed on first use with npm
into a cache folder outside the repository (`~/.cache/tokenhub-emulator/aimock`, `--aimock-dir`), as
tests/claude_code.py caches Claude Code.

A client process of its own (asyncio + uvloop, raw sockets) opens every connection first, then sends the
requests spread over `--ramp-s`, and timestamps each SSE event carrying text as it comes off the socket. Two
figures, p50 and p99 over every chunk of every stream, what a client sees whatever either server's own clock
says: the interval error, |gap between consecutive text chunks − 20 ms|; and the lateness, how long after its
plan (the stream's first text chunk + k × 20 ms) chunk k arrived. Servers run
in turn, round after round (A B A B …), medians printed. For each run: the streams that did not arrive whole,
how much longer than planned a stream took from its first text chunk to its last (the
stretch: a server that times each chunk from the previous one keeps its intervals and drifts instead), the
server's CPU seconds (from /proc) and so its CPU per chunk, and for the emulator its own record of how late
it wrote each chunk: from the journal (`chunk_times_ms` against the plan) and from `/metrics`
(`tokenhub_emulator_chunk_lateness_seconds`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AIMOCK_VERSION = "1.43.0"
PROMPT = "stream me"
WORD = "Hello"
TICK_S = os.sysconf("SC_CLK_TCK")


# ── servers ──────────────────────────────────────────────────────────────────


def aimock_bin(folder: Path) -> Path:
    """llmock (aimock's flag-driven server) from the cache, installed with npm on first use."""
    binary = folder / "node_modules" / ".bin" / "llmock"
    if not binary.exists():
        if shutil.which("npm") is None:
            raise SystemExit("npm is needed to install @copilotkit/aimock (apt-get install npm)")
        folder.mkdir(parents=True, exist_ok=True)
        command = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder)]
        subprocess.run([*command, f"@copilotkit/aimock@{AIMOCK_VERSION}"], check=True, capture_output=True)
    return binary


def start_emulator(work: Path, chunks: int) -> tuple[subprocess.Popen[str], str]:
    scenario = work / "stream.yaml"
    text = " ".join([WORD] * chunks)
    scenario.write_text(f"rules:\n  - when: {{last_user: {PROMPT}}}\n    reply: {{content: {json.dumps(text)}}}\n")
    command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning"]
    command += ["--scenario", str(scenario), "--journal-body-bytes", "1024"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().split()[-1]


def start_aimock(
    binary: Path, work: Path, port: int, chunks: int, interval_ms: float
) -> tuple[subprocess.Popen[str], str]:
    fixtures = work / "aimock.json"
    text = " ".join([WORD] * chunks)
    fixtures.write_text(json.dumps({"fixtures": [{"match": {"userMessage": PROMPT}, "response": {"content": text}}]}))
    command = [str(binary), "-p", str(port), "-f", str(fixtures), "-l", f"{interval_ms:g}"]
    command += ["-c", str(len(WORD) + 1), "--log-level", "warn", "--journal-max", "100"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("aimock did not start") from None
            time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S  # utime, stime


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def journal_lateness(url: str, streams: int, chunks: int, interval_ms: float) -> list[float]:
    """How late the emulator wrote each text chunk, by its journal: its time − (stream start + k × interval).

    A stream's chunk times are the role chunk (written at the start, its first byte), the text chunks (the first
    due at once: TTFT 0), the finish chunk and `[DONE]`."""
    entries = get_json(f"{url}/_emulator/journal?limit={streams}")["data"]
    late: list[float] = []
    for entry in entries:
        start, texts = entry["first_byte_ms"], entry["chunk_times_ms"][1 : 1 + chunks]
        late.extend(at - start - k * interval_ms for k, at in enumerate(texts))
    return late


def metrics_lateness(url: str) -> dict[str, float]:
    """The lateness histogram from /metrics: the share of chunks within each bound."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tokenhub_emulator_chunk_lateness_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = float(line.rsplit(" ", 1)[1])
    total = buckets.get("+Inf", 0.0)
    return {bound: count / total for bound, count in buckets.items()} if total else {}


# ── the client (its own process) ─────────────────────────────────────────────


class Stream(asyncio.Protocol):
    """One streaming request on its own connection: when each text chunk arrived."""

    def __init__(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.done = loop.create_future()
        self.buffer = b""
        self.headers = False
        self.arrivals: list[float] = []
        self.finished = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def send(self) -> None:
        self.transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        if not self.headers:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.headers = True
            self.buffer = self.buffer[end + 4 :]
        *events, self.buffer = self.buffer.split(b"\n\n")
        for event in events:
            if b'"content":"' + WORD.encode() in event or b'"content":" ' + WORD.encode() in event:
                self.arrivals.append(now)
            elif b"data: [DONE]" in event:
                self.finished = True
        if self.finished and not self.done.done():
            self.done.set_result(None)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def run_client(url: str, streams: int, chunks: int, interval_ms: float, ramp_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    host, _, port = url.removeprefix("http://").partition(":")
    body = json.dumps({"model": "glm-5", "stream": True, "messages": [{"role": "user", "content": PROMPT}]})
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\nauthorization: Bearer sk-bench\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-emulator-ttft-ms: 0\r\nx-emulator-chunk-delay-ms: {interval_ms:g}\r\n\r\n{body}"
    ).encode()
    clients = [Stream(request) for _ in range(streams)]
    for start in range(0, streams, 100):
        batch = clients[start : start + 100]
        await asyncio.gather(*(loop.create_connection(lambda c=c: c, host, int(port)) for c in batch))
    began = loop.time()
    for index, client in enumerate(clients):
        due = began + ramp_s * index / streams
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        client.send()
    await asyncio.wait_for(
        asyncio.gather(*(c.done for c in clients)), timeout=60 + ramp_s + chunks * interval_ms / 1000
    )
    errors: list[float] = []
    stretch: list[float] = []
    late: list[float] = []
    incomplete = 0
    for client in clients:
        if not client.finished or len(client.arrivals) != chunks:
            incomplete += 1
            continue
        arrivals = client.arrivals
        errors.extend(abs((b - a) * 1000 - interval_ms) for a, b in zip(arrivals, arrivals[1:], strict=False))
        stretch.append((arrivals[-1] - arrivals[0]) * 1000 - (chunks - 1) * interval_ms)
        first = arrivals[0]
        late.extend((at - first) * 1000 - k * interval_ms for k, at in enumerate(arrivals))
    errors.sort()
    stretched, lateness = percentiles(stretch), percentiles([max(x, 0.0) for x in late])
    return {
        "incomplete": incomplete,
        "gaps": len(errors),
        **percentiles(errors),
        "stretch_p50_ms": stretched["p50_ms"],
        "stretch_p99_ms": stretched["p99_ms"],
        "late_p50_ms": lateness["p50_ms"],
        "late_p99_ms": lateness["p99_ms"],
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
        "max_ms": round(ordered[-1], 3),
    }


def client_main(args: argparse.Namespace) -> None:
    import uvloop

    result = uvloop.run(run_client(args.url, args.client_streams, args.chunks, args.interval_ms, args.ramp_s))
    print(json.dumps(result), flush=True)


# ── one run, the rounds ──────────────────────────────────────────────────────


def one_run(
    name: str, process: subprocess.Popen[str], url: str, streams: int, args: argparse.Namespace
) -> dict[str, Any]:
    if name == "emulator":
        urllib.request.urlopen(
            urllib.request.Request(
                url + "/_emulator/reset", method="POST", data=b"{}", headers={"content-type": "application/json"}
            ),
            timeout=10,
        )
    command = [sys.executable, __file__, "--url", url, "--client-streams", str(streams), "--chunks", str(args.chunks)]
    command += ["--interval-ms", str(args.interval_ms), "--ramp-s", str(args.ramp_s)]
    cpu_before, wall_before = cpu_seconds(process.pid), time.monotonic()
    output = subprocess.run(command, capture_output=True, text=True, check=False)
    cpu = cpu_seconds(process.pid) - cpu_before
    wall = time.monotonic() - wall_before
    if output.returncode:
        raise SystemExit(f"the client failed against {name}: {output.stdout}{output.stderr}")
    result = json.loads(output.stdout.strip().splitlines()[-1])
    result |= {"server_cpu_s": round(cpu, 2), "cpu_us_per_chunk": round(cpu / (streams * args.chunks) * 1e6, 2)}
    result["server_cpu_share"] = round(cpu / wall, 2)
    if name == "emulator":
        late = journal_lateness(url, streams, args.chunks, args.interval_ms)
        result["journal_late"] = {"chunks": len(late), **percentiles([max(x, 0.0) for x in late])}
        result["metrics_within"] = {
            b: round(v, 4) for b, v in metrics_lateness(url).items() if b in ("0.005", "0.02", "0.05")
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="1000", help="concurrent streams, a comma-separated list (default 1000)")
    parser.add_argument("--chunks", type=int, default=100, help="text chunks per stream (default 100)")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="between chunks (default 20: 50 chunks/s)")
    parser.add_argument("--ramp-s", type=float, default=1.0, help="requests spread over this long (default 1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--aimock-dir", type=Path, default=Path.home() / ".cache" / "tokenhub-emulator" / "aimock")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--url", help=argparse.SUPPRESS)  # internal: run as the client of this server
    parser.add_argument("--client-streams", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.url:
        client_main(args)
        return 0
    binary = aimock_bin(args.aimock_dir)
    work = Path(tempfile.mkdtemp())
    servers: dict[str, tuple[subprocess.Popen[str], str]] = {}
    report = []
    try:
        servers["emulator"] = start_emulator(work, args.chunks)
        from bench.paths import free_port

        servers["aimock"] = start_aimock(binary, work, free_port(), args.chunks, args.interval_ms)
        for streams in [int(s) for s in args.streams.split(",")]:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, (process, url) in servers.items():
                    runs[name].append(one_run(name, process, url, streams, args))
                    print(json.dumps({"server": name, "streams": streams, **runs[name][-1]}), flush=True)
            summary = {
                name: {
                    key: statistics.median(run[key] for run in each)
                    for key in (
                        "p50_ms",
                        "p99_ms",
                        "max_ms",
                        "stretch_p50_ms",
                        "stretch_p99_ms",
                        "late_p50_ms",
                        "late_p99_ms",
                        "cpu_us_per_chunk",
                        "server_cpu_share",
                    )
                }
                | {"incomplete": sum(run["incomplete"] for run in each)}
                for name, each in runs.items()
            }
            report.append({"streams": streams, "runs": runs, "medians": summary})
            print(
                f"\n{streams} streams x {args.chunks} chunks, one every {args.interval_ms:g} ms "
                f"({streams * 1000 / args.interval_ms:,.0f} chunks/s at the top), median of {args.rounds} rounds:"
            )
            print(
                f"{'server':<10} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'late p50/p99 ms':>16} "
                f"{'stretch p50/p99 ms':>19} "
                f"{'CPU µs/chunk':>13} {'CPU share':>9} incomplete"
            )
            for name, figures in summary.items():
                stretch = f"{figures['stretch_p50_ms']:.0f} / {figures['stretch_p99_ms']:.0f}"
                late = f"{figures['late_p50_ms']:.1f} / {figures['late_p99_ms']:.1f}"
                print(
                    f"{name:<10} {figures['p50_ms']:>7.2f} {figures['p99_ms']:>7.2f} {figures['max_ms']:>7.1f} "
                    f"{late:>16} {stretch:>19} {figures['cpu_us_per_chunk']:>13.1f} {figures['server_cpu_share']:>9.2f} "
                    f"{figures['incomplete']:>10}"
                )
            journal = [run["journal_late"] for run in runs["emulator"]]
            print(
                "emulator's journal, lateness per chunk (ms): p50 "
                + " / ".join(f"{j['p50_ms']:.2f}" for j in journal)
                + ", p99 "
                + " / ".join(f"{j['p99_ms']:.2f}" for j in journal)
                + " (each round)"
            )
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=10)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
