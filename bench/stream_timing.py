"""How closely streamed chunks arrive to their planned times, at 1, 100 and 1,000 concurrent streams.

    python bench/stream_timing.py                 # the three levels; see bench/README.md

Starts `tokenhub-emulator serve` (as a user would) with a scenario that answers a fixed text, opens every
connection first, then sends the streaming requests — spread evenly over `--ramp-s` seconds — asking by
header for a time to first token and a chunk delay. A lean asyncio client (its own process, uvloop when
installed) timestamps each SSE event as it is read off the socket. Per event:

    error = (arrival - arrival of the response headers) - planned offset from the stream start

The response headers go out when the server starts the stream clock, so the network delay cancels out;
what remains is how late (or early) the server wrote the event. The table gives p50 / p99 / max of |error|.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "bench"


def scenario(tokens: int) -> str:
    content = "".join(" Hello" for _ in range(tokens)).strip()  # one token per word
    return f"rules:\n  - when: {{last_user: {PROMPT}}}\n    reply: {{content: {json.dumps(content)}}}\n"


def start_server(scenario_path: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning"]
    command += ["--scenario", str(scenario_path)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"the emulator did not start: {line!r} {process.stderr.read() if process.stderr else ''}")
    return process, line.rsplit(" ", 1)[-1].strip()


def request_bytes(host: str, port: int, ttft_ms: float, delay_ms: float) -> bytes:
    body = json.dumps({"model": "glm-5", "stream": True, "messages": [{"role": "user", "content": PROMPT}]})
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\nauthorization: Bearer sk-bench\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-emulator-ttft-ms: {ttft_ms:g}\r\nx-emulator-chunk-delay-ms: {delay_ms:g}\r\n\r\n"
    )
    return head.encode() + body.encode()


class Stream(asyncio.Protocol):
    """One streaming request on its own connection: when the headers and each event arrived."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.connected = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.headers_at: float | None = None
        self.sent_at = 0.0
        self.arrivals: list[float] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.connected.set_result(None)

    def send(self) -> None:
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        if self.headers_at is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.headers_at = now
            self.buffer = self.buffer[end + 4 :]
        count = self.buffer.count(b"\n\n")  # one per SSE event; chunk framing is \r\n, never \n\n
        if count:
            self.arrivals.extend([now] * count)
            finished = b"data: [DONE]\n\n" in self.buffer
            self.buffer = self.buffer[self.buffer.rfind(b"\n\n") + 2 :]
            if finished and not self.done.done():
                self.done.set_result(None)
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def run_level(
    host: str, port: int, streams: int, tokens: int, ttft_ms: float, delay_ms: float, ramp_s: float
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    request = request_bytes(host, port, ttft_ms, delay_ms)
    clients = [Stream(request) for _ in range(streams)]
    for start in range(0, streams, 100):  # connect first, in batches, outside the measured part
        await asyncio.gather(*(loop.create_connection(lambda c=c: c, host, port) for c in clients[start : start + 100]))
    began = loop.time()
    for index, client in enumerate(clients):
        due = began + (ramp_s * index / streams if streams > 1 else 0.0)
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        client.send()
    await asyncio.wait_for(asyncio.gather(*(c.done for c in clients)), timeout=120 + ramp_s)
    errors: list[float] = []
    header_latency: list[float] = []
    incomplete = 0
    expected = tokens + 3  # role chunk, one per token, finish chunk, [DONE]
    for client in clients:
        if client.headers_at is None or len(client.arrivals) != expected:
            incomplete += 1
            continue
        header_latency.append((client.headers_at - client.sent_at) * 1000)
        for index, arrival in enumerate(client.arrivals):
            token = min(index, tokens)
            planned = 0.0 if token == 0 else ttft_ms + (token - 1) * delay_ms
            errors.append(abs((arrival - client.headers_at) * 1000 - planned))
    errors.sort()
    return {
        "streams": streams,
        "events": len(errors),
        "incomplete_streams": incomplete,
        "p50_ms": round(statistics.median(errors), 3) if errors else float("nan"),
        "p99_ms": round(errors[int(0.99 * (len(errors) - 1))], 3) if errors else float("nan"),
        "max_ms": round(errors[-1], 3) if errors else float("nan"),
        "headers_p50_ms": round(statistics.median(header_latency), 3) if header_latency else float("nan"),
    }


def client_main(args: argparse.Namespace) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    host, _, port = args.url.removeprefix("http://").partition(":")
    results = []
    for streams in args.streams:
        result = asyncio.run(
            run_level(host, int(port), streams, args.tokens, args.ttft_ms, args.chunk_delay_ms, args.ramp_s)
        )
        results.append(result)
        print(json.dumps(result), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="1,100,1000", help="concurrency levels (default 1,100,1000)")
    parser.add_argument("--tokens", type=int, default=100, help="tokens per reply, one per chunk (default 100)")
    parser.add_argument("--ttft-ms", type=float, default=200.0, help="time to first token (default 200)")
    parser.add_argument("--chunk-delay-ms", type=float, default=50.0, help="delay between chunks (default 50)")
    parser.add_argument("--ramp-s", type=float, default=1.0, help="requests are spread over this long (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--url", help=argparse.SUPPRESS)  # internal: run as the client of this server
    args = parser.parse_args()
    args.streams = [int(s) for s in str(args.streams).split(",")]
    if args.url:
        client_main(args)
        return 0

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(scenario(args.tokens))
        server, url = start_server(path)
        try:
            command = [sys.executable, __file__, "--url", url, "--streams", ",".join(map(str, args.streams))]
            command += ["--tokens", str(args.tokens), "--ttft-ms", str(args.ttft_ms)]
            command += ["--chunk-delay-ms", str(args.chunk_delay_ms), "--ramp-s", str(args.ramp_s)]
            output = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ)
            if output.returncode:
                print(output.stdout, output.stderr, file=sys.stderr)
                return 1
            results = [json.loads(line) for line in output.stdout.splitlines() if line.startswith("{")]
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(
        f"{args.tokens} chunks per stream, ttft {args.ttft_ms:g} ms, chunk delay {args.chunk_delay_ms:g} ms, "
        f"requests spread over {args.ramp_s:g} s; |arrival - plan| per event, in ms"
    )
    print(f"{'streams':>8} {'events':>8} {'p50':>8} {'p99':>8} {'max':>8} {'incomplete':>11}")
    for r in results:
        print(
            f"{r['streams']:>8} {r['events']:>8} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} "
            f"{r['incomplete_streams']:>11}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
