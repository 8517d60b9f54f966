"""The non-streaming request's paths side by side in one run: bare Starlette, a scenario rule, the generated reply.

    python bench/paths.py                       # about 2 minutes; needs wrk
    python bench/paths.py --before DIR          # and another checkout's scripted and generated paths beside them
    python bench/paths.py --rounds 7 --seconds 5 --connections 32

The request is bench/gateway.py's (`Calculate 1+1` for glm-5). Servers, all started as a user would:
  - bare: bench/bare_app.py serving the emulator's own bytes (the ceiling of the stack);
  - scripted: `serve --scenario` with the gateway bench's scenario (a rule answers `1+1=2`);
  - generated: `serve` with no scenario — the default reply a new user gets first;
  - metrics off: the scripted server with `--metrics off` (what `/metrics` costs on the hot path);
  - with --before DIR: that checkout's scripted and generated servers.
wrk (one thread) loads each in turn, round after round (A B C … C B A …) so that all see the same machine; the
medians are printed with the ratios the issue asks for: generated / scripted and scripted / bare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import REQUEST, SCENARIO, post, start_bare, wrk  # noqa: E402

Server = tuple[subprocess.Popen[str], str]


def start_serve(root: Path, *args: str) -> Server:
    command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning", *args]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    return process, process.stdout.readline().split()[-1]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="another checkout (its repository root) to run beside this one")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", default="32")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--no-metrics-row", action="store_true", help="leave out the metrics-off server")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    scenario = work / "bench.yaml"
    scenario.write_text(SCENARIO)
    servers: dict[str, Server] = {}
    try:
        servers["scripted"] = start_serve(ROOT, "--scenario", str(scenario))
        servers["generated"] = start_serve(ROOT)
        if not args.no_metrics_row:
            servers["metrics off"] = start_serve(ROOT, "--scenario", str(scenario), "--metrics", "off")
        if args.before:
            before = args.before.resolve()
            servers["before: scripted"] = start_serve(before, "--scenario", str(scenario))
            servers["before: generated"] = start_serve(before)
        time.sleep(0.5)
        (work / "reply.json").write_bytes(post(servers["scripted"][1] + "/v1/chat/completions", REQUEST))
        (work / "empty.sse").write_bytes(b"")
        servers = {"bare": start_bare(work / "reply.json", work / "empty.sse", free_port()), **servers}
        results = []
        for connections in [int(c) for c in args.connections.split(",")]:
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            order = list(servers.items())
            for round_number in range(args.rounds):  # every other round in reverse: no server always goes first
                for name, (_, url) in order if round_number % 2 == 0 else order[::-1]:
                    runs[name].append(wrk(url + "/v1/chat/completions", REQUEST, connections, args.seconds))
            medians = {
                name: {key: statistics.median(run[key] for run in each) for key in ("rps", "p50_ms", "p99_ms")}
                | {"errors": sum(run["errors"] for run in each), "rps_each": [round(run["rps"]) for run in each]}
                for name, each in runs.items()
            }
            results.append({"connections": connections, "servers": medians})
            print(f"\n{connections} connections, median of {args.rounds} rounds of {args.seconds} s:")
            print(f"{'server':<20} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}  errors  each round")
            for name, figures in medians.items():
                print(
                    f"{name:<20} {figures['rps']:>8.0f} {figures['p50_ms']:>7.2f} {figures['p99_ms']:>7.2f}"
                    f"  {figures['errors']:>6}  {figures['rps_each']}"
                )
            rps = {name: figures["rps"] for name, figures in medians.items()}
            print(f"generated / scripted: {rps['generated'] / rps['scripted']:.2f}   (target ≥ 0.90)")
            print(f"scripted / bare:      {rps['scripted'] / rps['bare']:.2f}   (target 0.80)")
            if "metrics off" in rps:
                print(f"metrics on / off:     {rps['scripted'] / rps['metrics off']:.2f}")
            if args.before:
                print(f"generated, after / before: {rps['generated'] / rps['before: generated']:.2f}")
                print(f"scripted, after / before:  {rps['scripted'] / rps['before: scripted']:.2f}")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
