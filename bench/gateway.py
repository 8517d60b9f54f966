"""The emulator against the ceiling of its own stack, as ratios.

    python bench/gateway.py            # about 2 minutes; needs `wrk` (apt-get install wrk)

Measures, each beside bare Starlette + uvicorn serving the same bytes (bench/bare_app.py):
  - non-streaming chat completions: requests/s and p50/p99 latency at 1, 32 and 256 connections;
  - streaming with no delay: chunks/s;
and for the emulator alone:
  - server RSS with 1,000 and 10,000 concurrent open streams;
  - 1,000 concurrent streams of 100 chunks at 20 ms: streams that failed, p99 lateness, peak server RSS
    (the client of bench/stream_timing.py, in its own process);
  - matching cost: p50 latency with 10, 1,000 and 10,000 rules loaded;
  - start-up time to the first answered request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Calculate 1+1"
REQUEST = {"model": "glm-5", "messages": [{"role": "user", "content": PROMPT}]}
STREAM_TEXT = " ".join(["word"] * 100)  # one token per word: 100 content chunks
SCENARIO = (
    "rules:\n"
    f"  - when: {{last_user: {json.dumps(PROMPT)}}}\n    reply: {{content: '1+1=2'}}\n"
    f"  - when: {{last_user: stream me}}\n    reply: {{content: {json.dumps(STREAM_TEXT)}}}\n"
)


# ── servers ──────────────────────────────────────────────────────────────────


def start_emulator(scenario: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning"]
    process = subprocess.Popen(
        [*command, "--scenario", str(scenario), *extra], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    url = process.stdout.readline().split()[-1]
    return process, url


def start_bare(json_path: Path, sse_path: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "BARE_JSON": str(json_path), "BARE_SSE": str(sse_path), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen([*command, "--loop", "uvloop", "--http", "httptools"], cwd=ROOT, env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/v1/chat/completions", method="POST")
    return process, url


def post(url: str, body: dict, timeout: float = 10) -> bytes:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json", "authorization": "Bearer b"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def wait_until_up(url: str, method: str = "GET", limit_s: float = 20) -> float:
    """Seconds until `url` answers (any HTTP status)."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        try:
            if method == "POST":
                post(url, REQUEST, timeout=1)
            else:
                urllib.request.urlopen(urllib.request.Request(url, headers={"authorization": "Bearer b"}), timeout=1)
            return time.perf_counter() - start
        except urllib.error.HTTPError:
            return time.perf_counter() - start
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"{url} did not come up")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ── load ─────────────────────────────────────────────────────────────────────


def wrk(url: str, body: dict, connections: int, seconds: int) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Authorization"] = "Bearer sk-bench"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
    )
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    script.unlink()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "errors": int(errors.group(1)) if errors else 0,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def hold_streams(
    host: str, port: int, count: int, path: str = "/v1/chat/completions"
) -> tuple[int, list[asyncio.StreamWriter]]:
    """Open `count` streams that stay open (1 s between chunks); return how many got their headers."""
    body = json.dumps({**REQUEST, "stream": True, "messages": [{"role": "user", "content": "stream me"}]}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\nauthorization: Bearer b\r\n"
        f"x-emulator-chunk-delay-ms: 1000\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    writers: list[asyncio.StreamWriter] = []

    async def one() -> bool:
        reader, writer = await asyncio.open_connection(host, port)
        writers.append(writer)
        writer.write(head + body)
        line = await reader.readline()
        return line.startswith(b"HTTP/1.1 200")

    results = []
    for start in range(0, count, 500):  # open in waves, the listen backlog is finite
        results += await asyncio.gather(*(one() for _ in range(min(500, count - start))), return_exceptions=True)
    await asyncio.sleep(0.5)
    return sum(1 for r in results if r is True), writers


# ── the measurements ─────────────────────────────────────────────────────────


def throughput(emulator_url: str, bare_url: str, seconds: int) -> list[tuple[str, str, str, str]]:
    rows = []
    for connections in (1, 32, 256):
        ours = wrk(emulator_url + "/v1/chat/completions", REQUEST, connections, seconds)
        ceiling = wrk(bare_url + "/v1/chat/completions", REQUEST, connections, seconds)
        rows.append(
            (
                f"non-streaming, {connections} conn: req/s",
                f"{ours['rps']:,.0f}",
                f"{ceiling['rps']:,.0f}",
                f"{ours['rps'] / ceiling['rps']:.0%}",
            )
        )
        rows.append(
            (
                f"non-streaming, {connections} conn: p50 / p99 ms",
                f"{ours['p50_ms']:.2f} / {ours['p99_ms']:.2f}",
                f"{ceiling['p50_ms']:.2f} / {ceiling['p99_ms']:.2f}",
                f"{ceiling['p50_ms'] / ours['p50_ms']:.0%}",
            )
        )
    return rows


def streaming(emulator_url: str, bare_url: str, seconds: int, chunks: int) -> tuple[str, str, str, str]:
    body = {**REQUEST, "stream": True, "messages": [{"role": "user", "content": "stream me"}]}
    ours = wrk(emulator_url + "/v1/chat/completions", body, 32, seconds)
    ceiling = wrk(bare_url + "/v1/chat/completions", body, 32, seconds)
    return (
        f"streaming, no delay, 32 conn: chunks/s ({chunks} a stream)",
        f"{ours['rps'] * chunks:,.0f}",
        f"{ceiling['rps'] * chunks:,.0f}",
        f"{ours['rps'] / ceiling['rps']:.0%}",
    )


def memory(scenario: Path, counts: tuple[int, ...]) -> list[tuple[str, str, str, str]]:
    rows = []
    for count in counts:
        process, url = start_emulator(scenario)
        host, port = url.removeprefix("http://").split(":")
        idle = rss_mb(process.pid)

        opened, held = asyncio.run(_hold_and_measure(host, int(port), count, process.pid))
        stop(process)
        rows.append(
            (f"RSS with {count:,} open streams ({opened:,} opened)", f"{held:.0f} MB", "", f"idle {idle:.0f} MB")
        )
    return rows


async def _hold_and_measure(host: str, port: int, count: int, pid: int) -> tuple[int, float]:
    opened, writers = await hold_streams(host, port, count)
    held = rss_mb(pid)
    for writer in writers:
        writer.close()
    return opened, held


def paced_streams(streams: int = 1_000, tokens: int = 100, delay_ms: float = 20.0) -> tuple[str, str, str, str]:
    """`streams` streams of `tokens` chunks, one every `delay_ms` (the first after as long), requests spread over
    1 s; bench/stream_timing.py's client counts the streams that did not arrive whole and how late chunks were."""
    import stream_timing

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "paced.yaml"
        path.write_text(stream_timing.scenario(tokens))
        process, url = start_emulator(path)
        command = [sys.executable, str(ROOT / "bench" / "stream_timing.py"), "--url", url, "--streams", str(streams)]
        command += ["--tokens", str(tokens), "--ttft-ms", f"{delay_ms:g}", "--chunk-delay-ms", f"{delay_ms:g}"]
        client = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        peak = 0.0
        while client.poll() is None:
            peak = max(peak, rss_mb(process.pid))
            time.sleep(0.05)
        stop(process)
        assert client.stdout is not None
        lines = [line for line in client.stdout.read().splitlines() if line.startswith("{")]
    if client.returncode or not lines:
        return (f"{streams:,} streams x {tokens} chunks at {delay_ms:g} ms", "client failed", "", "")
    result = json.loads(lines[-1])
    return (
        f"{streams:,} streams x {tokens} chunks at {delay_ms:g} ms: failed streams / p99 late / peak RSS",
        f"{result['incomplete_streams']} / {result['p99_ms']:.1f} ms / {peak:.0f} MB",
        "",
        f"{result['events']:,} chunks",
    )


def matching(seconds: int) -> list[tuple[str, str, str, str]]:
    rows, base = [], None
    with tempfile.TemporaryDirectory() as folder:
        for count in (10, 1_000, 10_000):
            path = Path(folder) / f"rules-{count}.yaml"
            lines = ["rules:"]
            for i in range(count - 1):
                lines.append(f"  - {{when: {{last_user: 'question {i}'}}, reply: {{content: 'answer {i}'}}}}")
            lines.append("  - {when: {last_user: 'the last one'}, reply: {content: 'found'}}")
            path.write_text("\n".join(lines) + "\n")
            process, url = start_emulator(path)
            body = {**REQUEST, "messages": [{"role": "user", "content": "the last one"}]}
            result = wrk(url + "/v1/chat/completions", body, 1, seconds)
            stop(process)
            base = base or result["p50_ms"]
            rows.append(
                (
                    f"matching, {count:,} rules: p50 ms",
                    f"{result['p50_ms']:.3f}",
                    "",
                    f"{result['p50_ms'] / base:.2f}x of 10 rules",
                )
            )
    return rows


def startup(scenario: Path, runs: int = 5) -> tuple[str, str, str, str]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning"]
        process = subprocess.Popen([*command, "--scenario", str(scenario)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        url = process.stdout.readline().split()[-1]
        wait_until_up(url + "/v1/models")
        times.append(time.perf_counter() - start)
        stop(process)
    times.sort()
    return ("start-up to first answered request (median of 5)", f"{times[len(times) // 2] * 1000:.0f} ms", "", "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="each wrk run")
    parser.add_argument("--streams", default="1000,10000", help="open-stream counts for the memory figure")
    parser.add_argument("--bare-port", type=int, default=8799)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench/gateway.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    with tempfile.TemporaryDirectory() as folder:
        scenario = Path(folder) / "bench.yaml"
        scenario.write_text(SCENARIO)
        process, url = start_emulator(scenario)
        json_path, sse_path = Path(folder) / "reply.json", Path(folder) / "stream.sse"
        json_path.write_bytes(post(url + "/v1/chat/completions", REQUEST))
        stream = post(
            url + "/v1/chat/completions",
            {**REQUEST, "stream": True, "messages": [{"role": "user", "content": "stream me"}]},
        )
        sse_path.write_bytes(stream)
        chunks = stream.count(b"data: ")
        bare, bare_url = start_bare(json_path, sse_path, args.bare_port)
        try:
            rows = throughput(url, bare_url, args.seconds)
            rows.append(streaming(url, bare_url, args.seconds, chunks))
        finally:
            stop(bare)
            stop(process)
        rows += memory(scenario, tuple(int(n) for n in args.streams.split(",")))
        rows.append(paced_streams())
        rows += matching(args.seconds)
        rows.append(startup(scenario))

    print("| measurement | emulator | bare Starlette | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
