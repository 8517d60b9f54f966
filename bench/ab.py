"""Two checkouts of the emulator side by side on bench/gateway.py's non-streaming request, in one run.

    python bench/ab.py --before /path/to/other/checkout        # about 2 minutes; needs wrk
    python bench/ab.py --before DIR --rounds 5 --seconds 8 --connections 1,32

Each checkout serves the gateway bench's scenario (`Calculate 1+1` for glm-5, a rule answers `1+1=2`); wrk loads
them in turn, round after round (A B A B …), so that both see the same machine; the medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import REQUEST, SCENARIO, wrk  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def start(root: Path, scenario: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning"]
    process = subprocess.Popen(
        [*command, "--scenario", str(scenario)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert process.stdout is not None
    return process, process.stdout.readline().split()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="the other checkout (its repository root)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", default="1,32")
    args = parser.parse_args()
    scenario = Path(tempfile.mkdtemp()) / "bench.yaml"
    scenario.write_text(SCENARIO)
    sides = {"before": args.before.resolve(), "after": ROOT}
    servers = {name: start(root, scenario) for name, root in sides.items()}
    try:
        for connections in [int(c) for c in args.connections.split(",")]:
            figures: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
            for _ in range(args.rounds):
                for name, (_, url) in servers.items():
                    figures[name].append(wrk(url + "/v1/chat/completions", REQUEST, connections, args.seconds))
            for name, runs in figures.items():
                median = {key: statistics.median(run[key] for run in runs) for key in ("rps", "p50_ms", "p99_ms")}
                errors = sum(run["errors"] for run in runs)
                print(
                    json.dumps(
                        {"side": name, "connections": connections, **{k: round(v, 3) for k, v in median.items()}}
                        | {"errors": errors, "rps_each": [round(run["rps"]) for run in runs]}
                    ),
                    flush=True,
                )
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
