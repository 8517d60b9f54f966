"""A long run of mixed traffic: server memory must stay flat and nothing may fail but what was injected.

    python bench/soak.py                    # 10 minutes (about 100 requests a second); see bench/README.md
    python bench/soak.py --minutes 1 --rate 50 --json soak.json

Starts `tokenhub-emulator serve` (its own process, as a user does) with a scenario that has tool flows, a
scripted failing sequence and background faults (`settings.faults`: errors, resets, truncated bodies,
broken streams, each at a small probability). A client process sends a mix at a steady rate, bounded in
count and time, over loopback only:

- the three protocols, streamed and not; tool flows of two requests in each protocol; Responses chains
  (`previous_response_id`); `count_tokens`, `/v1/models`, stored responses (GET, `input_items`, DELETE);
- faults asked for by header (`x-emulator-fault`), and clients that leave mid-stream (bench/disconnects.py);
- control API calls: each worker has a test id and resets it from time to time, as a test suite does; the
  journal is read every second (which also tallies the faults the server says it injected).

Every answer is checked: a 2xx must be whole (its JSON parses, a stream ends with its terminator); an
error must be in the protocol's envelope and carry the injected or scripted marker in its message; a broken
connection or stream counts against the faults the server journaled. The server's RSS is read every few
seconds from /proc. Passes when RSS after the warm-up stays within 5% of its value at the end of the warm-up
and nothing failed that was not injected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import disconnects  # noqa: E402 - bench/disconnects.py, beside this file

INJECTED = "soak-injected"  # in the message of every error the scenario injects
SCRIPTED = "soak-scripted"
SCENARIO = f"""\
name: soak
settings:
  faults:
    - {{error: 503, probability: 0.01, message: "{INJECTED} 503"}}
    - {{error: 429, probability: 0.01, retry_after_ms: 5, message: "{INJECTED} 429"}}
    - {{reset: true, probability: 0.004}}
    - {{empty: true, probability: 0.003}}
    - {{truncate: true, probability: 0.01}}
    - {{disconnect_after: 3, probability: 0.01}}
    - {{malformed: true, probability: 0.01}}
    - {{error_event: true, probability: 0.01, message: "{INJECTED} event"}}
rules:
  - name: call get_weather
    when: {{tools: [get_weather], tool_result: absent}}
    reply:
      tool_calls: [{{name: get_weather, arguments: {{city: Paris}}}}]
  - name: answer from the tool result
    when: {{tool_result: {{name: get_weather}}}}
    reply: {{content: "It is {{{{ tool_result.weather }}}} in Paris."}}
  - name: flaky
    when: {{last_user: {{starts_with: "flaky:"}}}}
    sequence:
      - fail: {{status: 503, message: "{SCRIPTED} 503"}}
      - reply: {{content: Recovered.}}
    then: cycle
  - name: long
    when: {{last_user: {{starts_with: disconnect}}}}
    reply: {{content: "{" ".join(["word"] * 200)}"}}
"""
TERMINATORS = {"chat": b"data: [DONE]", "responses": b"event: response.completed", "messages": b"event: message_stop"}
PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "messages": "/v1/messages"}
WEATHER = {"weather": "sunny", "temperature": "21C"}
# What a broken connection or stream can be, client side, and the faults (journal labels) that explain it.
EXPLAINED_BY = {
    "connection": ("reset", "empty"),
    "truncated": ("truncate",),
    "cut": ("disconnect_after",),
    "malformed": ("malformed",),
    "error event": ("error_event",),
}


# The checks: what clients saw of each group ≤ what the server says it injected. A client that meant to leave
# mid-stream but found the connection closed first met a reset, an empty reply or a disconnect_after.
CHECKS = [
    (("connection", "cut", "closed before the client left"), ("reset", "empty", "disconnect_after")),
    (("truncated",), ("truncate",)),
    (("malformed",), ("malformed",)),
    (("error event",), ("error_event",)),
]


class Broken(Exception):
    """An answer that is not what it should be; `kind` classifies it."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)  # client side: ok, injected 503, cut, …
    unexpected: list[str] = field(default_factory=list)  # the first few, for the report
    server_faults: Counter[str] = field(default_factory=Counter)  # journal: fault kind → count
    seen_entries: set[int] = field(default_factory=set)
    requests: int = 0

    def note(self, outcome: str, detail: str = "") -> None:
        self.outcomes[outcome] += 1
        if outcome.startswith("unexpected") and len(self.unexpected) < 20:
            self.unexpected.append(f"{outcome}: {detail}"[:400])


# ---------------------------------------------------------------- requests and their checks


def headers_for(protocol: str, test_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"authorization": "Bearer sk-soak", "content-type": "application/json", "x-emulator-test-id": test_id}
    if protocol == "messages":
        headers["anthropic-version"] = "2023-06-01"
    return {**headers, **(extra or {})}


def check_error(protocol: str, status: int, raw: bytes) -> str:
    """The outcome of an error answer: injected / scripted when its message says so; else Broken."""
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise Broken("unexpected body", f"{status} not JSON: {raw[:200]!r}") from error
    if protocol == "messages":
        ok = body.get("type") == "error" and {"type", "message"} <= set(body.get("error", {}))
    else:
        ok = set(body.get("error", {})) >= {"message", "type", "param", "code"}
    if not ok:
        raise Broken("unexpected envelope", f"{status} {raw[:300]!r}")
    message = body["error"]["message"]
    if INJECTED in message:
        return f"injected {status}"
    if SCRIPTED in message:
        return f"scripted {status}"
    raise Broken("unexpected error", f"{status} {raw[:300]!r}")


def stream_events(raw: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = None, []
        for line in block.decode("utf-8", "replace").split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            events.append((name, "\n".join(data)))
    return events


def check_stream(protocol: str, raw: bytes) -> tuple[str, list[dict[str, Any]]]:
    """('ok', payloads) for a whole stream; raises Broken (malformed, error event, cut) otherwise."""
    payloads = []
    for name, data in stream_events(raw):
        if data == "[DONE]":
            continue
        try:
            payload = json.loads(data)
        except ValueError:
            raise Broken("malformed", data[:120]) from None
        if name == "error" or (protocol == "chat" and "error" in payload):
            text = json.dumps(payload)
            if INJECTED in text or "Overloaded" in text or "overloaded" in text:
                raise Broken("error event", text[:200])
            raise Broken("unexpected error event", text[:300])
        payloads.append(payload)
    if TERMINATORS[protocol] not in raw:
        raise Broken("cut", f"{len(raw)} bytes, no terminator")
    return "ok", payloads


async def call(
    client: httpx.AsyncClient, tally: Tally, protocol: str, body: dict[str, Any], test_id: str, **extra: str
) -> Any:
    """One API request, checked and counted; the parsed JSON body (or the stream's payloads) when it was whole."""
    tally.requests += 1
    stream = bool(body.get("stream"))
    headers = headers_for(protocol, test_id, extra)
    try:
        async with client.stream("POST", PATHS[protocol], json=body, headers=headers) as response:
            try:
                raw = await response.aread()
            except httpx.TransportError as error:
                raise Broken("cut" if stream else "truncated", repr(error)) from None
            if response.status_code >= 400:
                tally.note(check_error(protocol, response.status_code, raw))
                return None
            if response.status_code != 200:
                raise Broken("unexpected status", str(response.status_code))
            if stream:
                outcome, payloads = check_stream(protocol, raw)
                tally.note(outcome)
                return payloads
            try:
                value = json.loads(raw)
            except ValueError:
                raise Broken("truncated", f"{len(raw)} bytes") from None
            tally.note("ok")
            return value
    except Broken as broken:
        tally.note(broken.kind if broken.kind in EXPLAINED_BY else "unexpected " + broken.kind, broken.detail)
    except httpx.TimeoutException as error:
        tally.note("unexpected timeout", repr(error))
    except httpx.TransportError as error:
        tally.note("connection", repr(error))
    return None


def chat_body(text: str, stream: bool, **more: Any) -> dict[str, Any]:
    return {"model": "glm-5", "stream": stream, "messages": [{"role": "user", "content": text}], **more}


def messages_body(text: str, stream: bool, **more: Any) -> dict[str, Any]:
    return {
        "model": "glm-5",
        "max_tokens": 512,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
        **more,
    }


def tool_call_of(protocol: str, answer: Any, stream: bool) -> dict[str, Any] | None:
    """The get_weather call in a first answer (JSON or stream payloads), or None."""
    if answer is None:
        return None
    if not stream:
        answer = [answer]
    text = json.dumps(answer)
    if "get_weather" not in text:
        return None
    if protocol == "chat":
        for chunk in answer:
            for choice in chunk.get("choices", []):
                part = choice.get("message") or choice.get("delta") or {}
                for call_ in part.get("tool_calls") or []:
                    if call_.get("id"):
                        return {"id": call_["id"]}
    elif protocol == "responses":
        for payload in answer:
            body = payload.get("response", payload)
            for item in body.get("output") or []:
                if item.get("type") == "function_call":
                    return {"id": item["call_id"], "response_id": body["id"]}
    else:
        for payload in answer:
            body = payload.get("message", payload) if payload.get("type") == "message_start" else payload
            for block in body.get("content") or [payload.get("content_block") or {}]:
                if block.get("type") == "tool_use":
                    return {"id": block["id"]}
    return None


async def tool_flow(client: httpx.AsyncClient, tally: Tally, protocol: str, test_id: str, stream: bool) -> None:
    result = json.dumps(WEATHER)
    if protocol == "chat":
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        first = chat_body("weather in Paris?", stream, tools=tools)
        found = tool_call_of(protocol, await call(client, tally, protocol, first, test_id), stream)
        if found is None:
            return
        calls = [{"id": found["id"], "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]
        messages = [
            *first["messages"],
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": found["id"], "content": result},
        ]
        await call(client, tally, protocol, {**first, "messages": messages}, test_id)
    elif protocol == "responses":
        tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
        first = {"model": "glm-5", "stream": stream, "input": "weather in Paris?", "tools": tools}
        found = tool_call_of(protocol, await call(client, tally, protocol, first, test_id), stream)
        if found is None:
            return
        follow = {
            "model": "glm-5",
            "stream": stream,
            "tools": tools,
            "previous_response_id": found["response_id"],
            "input": [{"type": "function_call_output", "call_id": found["id"], "output": result}],
        }
        await call(client, tally, protocol, follow, test_id)
    else:
        tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
        first = messages_body("weather in Paris?", stream, tools=tools)
        found = tool_call_of(protocol, await call(client, tally, protocol, first, test_id), stream)
        if found is None:
            return
        use = {"type": "tool_use", "id": found["id"], "name": "get_weather", "input": {}}
        answer = {"type": "tool_result", "tool_use_id": found["id"], "content": result}
        messages = [*first["messages"], {"role": "assistant", "content": [use]}, {"role": "user", "content": [answer]}]
        await call(client, tally, protocol, {**first, "messages": messages}, test_id)


async def responses_chain(client: httpx.AsyncClient, tally: Tally, test_id: str, stream: bool) -> None:
    first = await call(client, tally, "responses", {"model": "glm-5", "input": "Tell me a story."}, test_id)
    if not first:
        return
    follow = {"model": "glm-5", "stream": stream, "input": "And then?", "previous_response_id": first["id"]}
    await call(client, tally, "responses", follow, test_id)
    response_id = first["id"]
    for method, path in (("GET", ""), ("GET", "/input_items?limit=5"), ("DELETE", "")):
        tally.requests += 1
        answer = await client.request(method, f"/v1/responses/{response_id}{path}", headers=headers_for("x", test_id))
        tally.note("ok" if answer.status_code == 200 else "unexpected stored response", answer.text[:200])


async def simple_get(client: httpx.AsyncClient, tally: Tally, method: str, path: str, test_id: str, **kw: Any) -> None:
    tally.requests += 1
    try:
        answer = await client.request(method, path, headers=headers_for("messages", test_id), **kw)
    except httpx.TransportError as error:
        tally.note("unexpected connection (control or models)", repr(error))
        return
    if answer.status_code >= 400:
        tally.note(f"unexpected {answer.status_code} on {path}", answer.text[:200])
    else:
        tally.note("ok")


async def one_job(client: httpx.AsyncClient, tally: Tally, rng: random.Random, test_id: str, url: str) -> None:
    """One unit of traffic, drawn from the mix."""
    protocol = rng.choice(("chat", "responses", "messages"))
    stream = rng.random() < 0.5
    pick = rng.random()
    if pick < 0.30:
        if protocol == "chat":
            body = chat_body("Hello there", stream)
        elif protocol == "responses":
            body = {"model": "glm-5", "stream": stream, "input": "Hello there", "store": False}
        else:
            body = messages_body("Hello there", stream)
        await call(client, tally, protocol, body, test_id)
    elif pick < 0.55:
        await tool_flow(client, tally, protocol, test_id, stream)
    elif pick < 0.65:
        await responses_chain(client, tally, test_id, stream)
    elif pick < 0.72:
        body = messages_body("flaky: go", stream) if protocol == "messages" else chat_body("flaky: go", stream)
        await call(client, tally, "messages" if protocol == "messages" else "chat", body, test_id)
    elif pick < 0.80:
        kind = rng.choice(
            ["error=500; message=soak-injected 500", "error=429; retry_after_ms=1; message=soak-injected 429"]
        )
        kind = kind if not stream else rng.choice([kind, "error_event; message=soak-injected ev", "disconnect_after=2"])
        body = messages_body("Hi", stream) if protocol == "messages" else chat_body("Hi", stream)
        await call(
            client, tally, "messages" if protocol == "messages" else "chat", body, test_id, **{"x-emulator-fault": kind}
        )
    elif pick < 0.86:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        case = disconnects.Case(
            protocol, rng.choice(["close", "reset", "headers", "stall"]), rng.choice([None, 5]), rng.randint(1, 4)
        )
        tally.requests += 1
        seen = await disconnects.run_case(host, int(port), case, test_id)
        if seen == "left":
            tally.note("client left")
        elif seen in ("status 429", "status 503"):  # a background fault answered first
            tally.note(f"injected {seen.split()[1]} (then left)")
        elif seen in ("ConnectionResetError", "ConnectionError"):  # a reset, empty or disconnect_after came first
            tally.note("closed before the client left")
        else:
            tally.note(f"unexpected disconnect case: {seen}")
    elif pick < 0.92:
        await simple_get(
            client,
            tally,
            "POST",
            "/v1/messages/count_tokens",
            test_id,
            json={"model": "glm-5", "messages": [{"role": "user", "content": "count me"}]},
        )
    elif pick < 0.97:
        await simple_get(client, tally, "GET", rng.choice(["/v1/models", "/v1/models/glm-5"]), test_id)
    else:
        await simple_get(client, tally, "GET", "/_emulator/report", test_id, params={"test_id": test_id})


# ---------------------------------------------------------------- the run


async def poll_journal(url: str, tally: Tally, stop: asyncio.Event, test_id: str | None = None) -> None:
    """Tally the faults the server journaled (each entry once), every second, as a test suite's report would."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as control:
        since = time.time() - 5
        while True:
            params: dict[str, Any] = {"since": since - 5}
            if test_id is not None:
                params["test_id"] = test_id
            with contextlib.suppress(httpx.HTTPError):
                answer = await control.get("/_emulator/journal", params=params)
                for entry in answer.json()["data"]:
                    if entry["id"] not in tally.seen_entries and entry["duration_ms"] is not None:
                        tally.seen_entries.add(entry["id"])
                        if entry.get("fault"):
                            tally.server_faults[entry["fault"].split(" ")[0]] += 1
                since = time.time()
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def worker(index: int, url: str, tally: Tally, deadline: float, budget: list[int], interval: float) -> None:
    rng = random.Random(index)
    test_id = f"soak-{index}"
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=url, timeout=20, limits=limits) as client:
        jobs = 0
        next_at = time.monotonic() + rng.random() * interval
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            await one_job(client, tally, rng, test_id, url)
            jobs += 1
            if jobs % 150 == 0:  # as a test suite's teardown does: read what the test needs, then reset it
                await poll_once(client, tally, test_id)
                await client.post("/_emulator/reset", headers={"x-emulator-test-id": test_id})


async def poll_once(client: httpx.AsyncClient, tally: Tally, test_id: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        answer = await client.get("/_emulator/journal", headers={"x-emulator-test-id": test_id})
        for entry in answer.json()["data"]:
            if entry["id"] not in tally.seen_entries:
                tally.seen_entries.add(entry["id"])
                if entry.get("fault"):
                    tally.server_faults[entry["fault"].split(" ")[0]] += 1


async def sample_rss(pid: int, samples: list[tuple[float, float]], stop: asyncio.Event, every: float) -> None:
    started = time.monotonic()
    while not stop.is_set():
        samples.append((round(time.monotonic() - started, 1), round(disconnects.rss_mb(pid), 1)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    samples.append((round(time.monotonic() - started, 1), round(disconnects.rss_mb(pid), 1)))


async def soak(url: str, pid: int, minutes: float, rate: float, workers: int, every: float) -> dict[str, Any]:
    tally = Tally()
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    started = time.monotonic()
    deadline = started + minutes * 60
    budget = [int(rate * minutes * 60)]  # jobs, all workers together: the run is bounded in count and time
    sampler = asyncio.create_task(sample_rss(pid, samples, stop, every))
    poller = asyncio.create_task(poll_journal(url, tally, stop))
    jobs = [worker(i, url, tally, deadline, budget, workers / rate) for i in range(workers)]
    await asyncio.gather(*jobs)
    await asyncio.sleep(1.5)  # let the last entries close
    stop.set()
    await asyncio.gather(sampler, poller)
    for i in range(workers):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await poll_once(client, tally, f"soak-{i}")
    return {"tally": tally, "samples": samples, "seconds": time.monotonic() - started}


def verdict(result: dict[str, Any], warmup_s: float, tolerance: float) -> tuple[bool, list[str]]:
    tally: Tally = result["tally"]
    samples = result["samples"]
    after = [rss for t, rss in samples if t >= warmup_s]
    lines = []
    ok = True
    if not after:
        return False, ["no RSS sample after the warm-up: run longer"]
    base = after[0]
    top = max(after)
    growth = (top - base) / base
    lines.append(
        f"RSS MB: first {samples[0][1]}, at end of warm-up ({warmup_s:g} s) {base}, last {samples[-1][1]}, "
        f"max {max(rss for _, rss in samples)}, max after warm-up {top} ({growth:+.1%} of the warm-up value)"
    )
    if growth > tolerance:
        ok = False
        lines.append(f"FAIL: RSS grew more than {tolerance:.0%} after the warm-up")
    unexpected = {k: v for k, v in tally.outcomes.items() if k.startswith("unexpected")}
    if unexpected:
        ok = False
        lines.append(f"FAIL: unexpected outcomes {unexpected}; first: {tally.unexpected[:5]}")
    for kinds, faults in CHECKS:
        seen = sum(tally.outcomes.get(kind, 0) for kind in kinds)
        injected = sum(tally.server_faults.get(f, 0) for f in faults)
        lines.append(f"{' + '.join(kinds)}: {seen} seen by clients; {' + '.join(faults)}: {injected} injected")
        if seen > injected:
            ok = False
            lines.append(f"FAIL: more {' + '.join(kinds)} than faults that explain them")
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=60.0, help="jobs a second, all workers together (default 60)")
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    parser.add_argument("--warmup-s", type=float, help="default: a fifth of the run, at least 30 s and at most 120 s")
    parser.add_argument("--tolerance", type=float, default=0.05, help="allowed RSS growth after warm-up (0.05)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    warmup = args.warmup_s if args.warmup_s is not None else min(120.0, max(30.0, args.minutes * 60 / 5))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "soak.yaml"
        path.write_text(SCENARIO, encoding="utf-8")
        server = disconnects.CliServer(path, "--seed", "1")
        print(f"soak: {args.minutes:g} min at {args.rate:g} jobs/s against {server.url} (pid {server.pid})", flush=True)
        try:
            result = asyncio.run(soak(server.url, server.pid, args.minutes, args.rate, args.workers, args.sample_s))
            alive = httpx.get(server.url + "/_emulator/health", timeout=10).json()["status"] == "ok"
        finally:
            log = server.stop()
    tally: Tally = result["tally"]
    ok, lines = verdict(result, warmup, args.tolerance)
    if not alive:
        ok = False
        lines.append("FAIL: the server did not answer /_emulator/health at the end")
    tracebacks = log.count("Traceback")
    print(f"requests: {tally.requests} in {result['seconds']:.0f} s ({tally.requests / result['seconds']:.0f}/s)")
    print("client outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items(), key=lambda kv: -kv[1])))
    print("faults the server journaled: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.server_faults.items())))
    print(f"server log: {tracebacks} tracebacks")
    for line in lines:
        print(line)
    print("RSS samples (s, MB): " + " ".join(f"{t:g}:{rss:g}" for t, rss in result["samples"]))
    print("PASS" if ok else "FAIL")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "ok": ok,
                    "requests": tally.requests,
                    "seconds": result["seconds"],
                    "outcomes": dict(tally.outcomes),
                    "server_faults": dict(tally.server_faults),
                    "unexpected": tally.unexpected,
                    "rss_samples": result["samples"],
                    "tracebacks": tracebacks,
                    "verdict": lines,
                },
                indent=1,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
