"""What the pytest plugin costs: server start-up, and the per-test overhead of the `tokenhub_emulator` fixture.

    python bench/plugin_overhead.py [--tests 300]

Two measurements:
- direct: start the server, then time what the fixture does per test (a handle, a client, the reset at
  teardown) over many tests;
- through pytest: run a generated suite of N tests that use the fixture, and the same N tests without it,
  each in a fresh `python -m pytest`; (with - without) / N is the per-test overhead, the 1-test runs give
  the start-up cost.
The target is under 5 ms per test after the first.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WITH_FIXTURE = (
    "import pytest\n\n@pytest.mark.parametrize('n', range({n}))\ndef test_x(tokenhub_emulator, n):\n    pass\n"
)
WITHOUT = "import pytest\n\n@pytest.mark.parametrize('n', range({n}))\ndef test_x(n):\n    pass\n"


def direct(tests: int) -> dict[str, float]:
    from emulator.testing import EmulatorServer

    started = time.perf_counter()
    server = EmulatorServer().start()
    startup_ms = (time.perf_counter() - started) * 1000
    times = []
    for index in range(tests):
        begin = time.perf_counter()
        handle = server.handle(f"bench-{index}")
        handle.openai()
        handle.close()
        times.append((time.perf_counter() - begin) * 1000)
    server.stop()
    return {"startup_ms": startup_ms, "per_test_ms": statistics.median(times), "p95_ms": _p95(times)}


def _p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95) - 1]


def pytest_run(folder: Path, source: str, tests: int) -> float:
    (folder / "test_bench.py").write_text(source.format(n=tests))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)]
    begin = time.perf_counter()
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
    elapsed = (time.perf_counter() - begin) * 1000
    if result.returncode != 0:
        raise SystemExit(result.stdout + result.stderr)
    return elapsed


def through_pytest(tests: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        one_with, one_without = (pytest_run(folder, WITH_FIXTURE, 1), pytest_run(folder, WITHOUT, 1))
        many_with, many_without = (pytest_run(folder, WITH_FIXTURE, tests), pytest_run(folder, WITHOUT, tests))
    return {
        "startup_ms": one_with - one_without,
        "per_test_ms": ((many_with - one_with) - (many_without - one_without)) / (tests - 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", type=int, default=300)
    args = parser.parse_args()
    for label, figures in (("direct", direct(args.tests)), ("through pytest", through_pytest(args.tests))):
        shown = ", ".join(f"{key} {value:.2f}" for key, value in figures.items())
        print(f"{label:15} ({args.tests} tests): {shown}")


if __name__ == "__main__":
    main()
