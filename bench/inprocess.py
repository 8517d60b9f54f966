"""What one non-streamed chat completion costs inside the app, with no server and no socket: µs per request.

    python bench/inprocess.py                      # the emulator (scenarios/) and bare Starlette, best of 3
    python bench/inprocess.py --scenario FILE      # another scenario file or folder
    python bench/inprocess.py --profile            # and the top of a cProfile of the emulator's requests
    python bench/inprocess.py --log text           # with the request log on, as `serve` sets it, to /dev/null

Calls the ASGI app directly (`await app(scope, receive, send)`), each time with a fresh scope, the body
`Calculate 1+1` for glm-5 in one `http.request` message. The server's own share of a request (HTTP parsing,
the socket writes) is not in these figures: bench/gateway.py measures the whole.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BODY = json.dumps({"model": "glm-5", "messages": [{"role": "user", "content": "Calculate 1+1"}]}).encode()
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer sk-bench"),
    (b"content-length", str(len(BODY)).encode()),
]


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": list(HEADERS),
        "state": {},
    }


async def one(app: Any, sent: list[dict[str, Any]]) -> None:
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.sleep(3600)  # a client that stays: a response never waits for this
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope(), receive, send)


async def measure(app: Any, requests: int) -> float:
    sent: list[dict[str, Any]] = []
    for _ in range(300):  # warm up
        await one(app, sent)
    assert sent[0]["status"] == 200, sent[:2]
    best = float("inf")
    for _ in range(3):
        sent.clear()
        start = time.perf_counter()
        for _ in range(requests):
            await one(app, sent)
            await asyncio.sleep(0)  # a turn of the loop between requests, as a server has: callbacks run
        best = min(best, (time.perf_counter() - start) / requests * 1e6)
    return best


async def main(args: argparse.Namespace) -> None:
    from emulator.config import Settings
    from emulator.server.app import build_app
    from emulator.server.listener import steady_gc

    if args.log:
        import logging.config
        import os

        from emulator.server.request_log import logging_config

        sink = open(os.devnull, "w")  # noqa: SIM115 - the log's stream for the whole run
        logging.config.dictConfig(logging_config("info", args.log, stream=sink))
    emulator = build_app(Settings(scenarios=[args.scenario]))
    steady_gc()  # as `serve` does
    shown = f"{args.scenario}, request log {args.log or 'off'}"
    print(f"emulator ({shown}): {await measure(emulator, args.requests):.1f} µs/request")
    from bench.bare_app import app as bare  # answers `{}` here (bench/gateway.py gives it the emulator's bytes)

    print(f"bare Starlette:  {await measure(bare, args.requests):.1f} µs/request")
    if args.profile:
        profile = cProfile.Profile()
        sent: list[dict[str, Any]] = []
        profile.enable()
        for _ in range(args.requests):
            await one(emulator, sent)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios")
    parser.add_argument("--requests", type=int, default=3000, help="per timed pass (three passes, best kept)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--log", choices=("text", "json"), help="write the request log (at info) to /dev/null")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args))
    else:
        uvloop.run(main(args))
