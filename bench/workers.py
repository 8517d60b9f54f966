"""One process against `--workers N` sharing state through Redis, in one run, on this machine.

    python bench/workers.py                          # about 2 minutes; needs wrk and redis-server
    python bench/workers.py --workers 1,2,4 --seconds 8 --streams 1000

Starts a redis-server of its own (unix socket) and, in turn: one process with its state in memory (today's
default), one process with `--state`, and `--workers N` with `--state` for each N given. Each serves
bench/gateway.py's scenario; wrk sends the non-streaming request (32 connections) and bench/stream_timing.py's
client opens `--streams` paced streams (`--tokens` chunks, one every `--chunk-delay-ms`). Printed per setup:
requests/s and p99 latency, the commands the emulator sent Redis per request (counted by MONITOR over a second,
3-second wrk run: one script per request before its answer, the journal's batched writes after), and
for the streams the chunks/s they were planned at, p99 lateness and incomplete streams.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import stream_timing  # noqa: E402

from bench.gateway import REQUEST, SCENARIO, stop, wrk  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], Path]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("bench/workers.py needs redis-server on the PATH (sh tools/install-redis.sh)")
    sock = folder / "redis.sock"
    process = subprocess.Popen(
        [executable, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(500):
        if redis_cli(sock, "PING").strip() == "PONG":
            return process, sock
        time.sleep(0.01)
    raise SystemExit("redis-server did not start")


def redis_cli(sock: Path, *command: str) -> str:
    return subprocess.run(["redis-cli", "-s", str(sock), *command], capture_output=True, text=True).stdout


def round_trips_per_request(sock: Path, url: str, seconds: int) -> float:
    """Commands the emulator sent Redis per request, over a wrk run watched by MONITOR (which lists the commands
    a script runs apart, marked `lua`: those are not round trips). A pipeline's commands count one each."""
    monitor = subprocess.Popen(
        ["stdbuf", "-oL", "redis-cli", "-s", str(sock), "MONITOR"], stdout=subprocess.PIPE, text=True
    )
    assert monitor.stdout is not None
    monitor.stdout.readline()  # OK
    sent = [0]

    def count() -> None:  # read as it comes: MONITOR writes far more than a pipe holds
        for line in monitor.stdout:  # type: ignore[union-attr]
            if line[:1].isdigit() and " lua]" not in line:
                sent[0] += 1

    reader = threading.Thread(target=count)
    reader.start()
    load = wrk(url + "/v1/chat/completions", REQUEST, 32, seconds)
    time.sleep(0.5)  # the journal's last batched writes
    monitor.terminate()
    reader.join()
    sent = sent[0]
    return sent / (load["rps"] * seconds)


def start(scenario: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning"]
    process = subprocess.Popen(
        [*command, "--scenario", str(scenario), *extra], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        raise SystemExit(f"the emulator did not start: {line!r}")
    return process, line.split()[-1]


def streams(url: str, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, str(ROOT / "bench" / "stream_timing.py"), "--url", url, "--streams", str(args.streams)]
    command += ["--tokens", str(args.tokens), "--ttft-ms", f"{args.chunk_delay_ms:g}"]
    command += ["--chunk-delay-ms", f"{args.chunk_delay_ms:g}", "--ramp-s", "1"]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in output.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"p99_ms": float("nan"), "incomplete_streams": -1, "events": 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="2", help="worker counts to run with --state (default 2)")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--chunk-delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    (folder / "bench.yaml").write_text(SCENARIO)
    (folder / "stream.yaml").write_text(stream_timing.scenario(args.tokens))
    redis, sock = start_redis(folder)
    state = f"unix://{sock}?db=0"
    setups = [("1 process, memory", []), ("1 process, --state", ["--state", state])]
    setups += [(f"--workers {n}, --state", ["--workers", n, "--state", state]) for n in args.workers.split(",")]
    rows = []
    try:
        for name, extra in setups:
            redis_cli(sock, "FLUSHALL")
            server, url = start(folder / "bench.yaml", *extra)
            wrk(url + "/v1/chat/completions", REQUEST, 32, 2)  # warm: connections, scripts, pools
            load = wrk(url + "/v1/chat/completions", REQUEST, 32, args.seconds)
            per_request = round_trips_per_request(sock, url, 3) if "--state" in extra else 0.0
            stop(server)
            server, url = start(folder / "stream.yaml", *extra)
            paced = streams(url, args)
            stop(server)
            rows.append((name, load, per_request, paced))
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(folder, ignore_errors=True)
    planned = args.streams * 1000 / args.chunk_delay_ms
    print(
        f"non-streaming: wrk, 32 connections, {args.seconds} s; streams: {args.streams} x {args.tokens} chunks, "
        f"one every {args.chunk_delay_ms:g} ms ({planned:,.0f} chunks/s planned), requests spread over 1 s"
    )
    print(
        f"{'setup':<24} {'req/s':>8} {'p99 ms':>8} {'errors':>7} {'redis calls/req':>15} {'chunks':>8} "
        f"{'p99 late ms':>12} {'incomplete':>11}"
    )
    for name, load, per_request, paced in rows:
        print(
            f"{name:<24} {load['rps']:>8.0f} {load['p99_ms']:>8.1f} {load['errors']:>7} {per_request:>15.2f} "
            f"{paced['events']:>8} {paced['p99_ms']:>12.1f} {paced['incomplete_streams']:>11}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
