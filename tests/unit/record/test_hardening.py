"""`record` against hostile upstreams (issue 11): endless, slow, compressed, oddly shaped, key-echoing answers.

In-process: the Recorder ASGI app with an httpx MockTransport as the upstream. The long forms (a 300 MB
answer, an endless stream for minutes) are in bench/hostile.py.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
from typing import Any

import httpx
import pytest

from emulator.config import Settings
from emulator.record.cassette import Cassette
from emulator.record.proxy import Recorder
from emulator.server.app import build_app
from emulator.server.runtime import Runtime

KEY = "sk-live-supersecret-0123456789"
CHAT = {"model": "glm-5", "messages": [{"role": "user", "content": "hello"}]}
UPSTREAM = "https://user:hunter2pw@gateway.example/v1?api_key=query-secret-123"


def recorder(tmp_path, handler, **limits: Any) -> Recorder:
    settings = Settings(fallback="error")
    runtime = Runtime.from_settings(settings, scenarios=[])
    cassette = Cassette.open(tmp_path / "recorded.yaml", "https://gateway.example")
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Recorder(runtime, build_app(settings, runtime), cassette, UPSTREAM, record_all=True, client=client, **limits)


async def call(app: Recorder, body: dict, *, leave_after: int | None = None) -> tuple[int, bytes]:
    """One request through the recorder; the client leaves after `leave_after` body chunks, if given."""
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {KEY}".encode()), (b"content-type", b"application/json")],
    }
    sent = False
    status, received, chunks = 0, b"", 0

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()
        return {}

    async def send(message: dict) -> None:
        nonlocal status, received, chunks
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            if leave_after is not None and chunks >= leave_after:
                raise OSError("the client went away")
            chunks += 1
            received += message.get("body", b"")

    await app(scope, receive, send)
    await asyncio.gather(*app.pending)  # the recording, done
    return status, received


def sse_forever() -> httpx.Response:
    async def events():
        frame = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n' * 1000
        while True:
            yield frame
            await asyncio.sleep(0)

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Stream(events()))


class _Stream(httpx.AsyncByteStream):
    def __init__(self, chunks: Any) -> None:
        self.chunks = chunks

    async def __aiter__(self):
        async for chunk in self.chunks:
            yield chunk


def answer(status: int, body: Any = None, *, raw: bytes | None = None, headers: dict | None = None) -> httpx.Response:
    """An upstream answer streamed as a real one is (a Response made with content= counts as read already)."""
    data = raw if raw is not None else json.dumps(body).encode()

    async def once():
        yield data

    headers = headers or {"content-type": "application/json"}
    return httpx.Response(status, headers=headers, stream=_Stream(once()))


def test_an_endless_stream_is_cut_off_at_the_size_limit_and_not_recorded(tmp_path, caplog):
    app = recorder(tmp_path, lambda request: sse_forever(), max_bytes=2_000_000)
    status, received = asyncio.run(call(app, {**CHAT, "stream": True}))
    assert status == 200 and 1_000_000 < len(received) <= 2_100_000
    assert not app.cassette.rules and "larger than 2000000 bytes" in caplog.text


def test_an_endless_stream_stops_after_the_client_left_too(tmp_path, caplog):
    app = recorder(tmp_path, lambda request: sse_forever(), max_bytes=5_000_000)
    status, received = asyncio.run(call(app, {**CHAT, "stream": True}, leave_after=3))
    assert status == 200 and not app.cassette.rules and "cut off" in caplog.text  # it ended: the run returned


def test_an_answer_that_takes_too_long_is_cut_off(tmp_path, caplog):
    async def stalled():
        yield b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
        await asyncio.Event().wait()

    def handler(request):
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Stream(stalled()))

    app = recorder(tmp_path, handler, max_s=0.3)
    started = time.monotonic()
    asyncio.run(call(app, {**CHAT, "stream": True}))
    assert time.monotonic() - started < 5 and not app.cassette.rules and "longer than 0.3 s" in caplog.text


def test_a_compressed_bomb_is_refused_not_inflated(tmp_path, caplog):
    bomb = gzip.compress(b'{"choices": "' + b"0" * 50_000_000 + b'"}')  # 50 MB inflated, 50 KB sent

    def handler(request):
        headers = {"content-type": "application/json", "content-encoding": "gzip"}
        return answer(200, raw=bomb, headers=headers)

    app = recorder(tmp_path, handler, max_bytes=1_000_000)
    status, received = asyncio.run(call(app, CHAT))
    assert status == 200 and received == bomb  # passed on as it came
    assert not app.cassette.rules and "inflates to more than 1000000 bytes" in caplog.text


@pytest.mark.parametrize("body", [[1, 2, 3], {"choices": "x"}, {"choices": [None]}, "text"])
def test_an_answer_of_the_wrong_shape_is_one_log_line_not_a_traceback(tmp_path, caplog, body):
    app = recorder(tmp_path, lambda request: answer(200, body))
    with caplog.at_level(logging.INFO):
        status, _ = asyncio.run(call(app, CHAT))
    assert status == 200 and not app.cassette.rules
    (record,) = [r for r in caplog.records if "could not record" in r.getMessage()]
    assert record.exc_info is None and "not recorded" in record.getMessage()


def test_keys_echoed_by_the_upstream_never_reach_the_recording(tmp_path):
    def handler(request):
        if json.loads(request.content)["messages"][0]["content"] == "hello":
            return answer(401, {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "x"}})
        reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"your key is {KEY}"}}]}
        return answer(200, reply)

    app = recorder(tmp_path, handler)
    asyncio.run(call(app, CHAT))
    asyncio.run(call(app, {**CHAT, "messages": [{"role": "user", "content": "echo"}]}))
    text = (tmp_path / "recorded.yaml").read_text()
    assert len(app.cassette.rules) == 2 and "supersecret" not in text and "sk-…6789" in text


def test_url_credentials_stay_out_of_the_log_and_the_answer(tmp_path, caplog):
    def handler(request):
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    app = recorder(tmp_path, handler)
    status, received = asyncio.run(call(app, CHAT))
    assert status == 502
    for secret in ("hunter2pw", "query-secret-123", "user:"):
        assert secret not in caplog.text and secret not in received.decode(), secret
    assert "https://gateway.example" in caplog.text


def test_a_large_answer_is_recorded_without_stalling_the_loop(tmp_path):
    text = "word " * 400_000  # 2 MB of content to turn into a rule and write (about 2 s of work)
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    app = recorder(tmp_path, lambda request: answer(200, reply))

    async def measured() -> float:
        worst, running = 0.0, True

        async def ticker():
            nonlocal worst
            last = time.monotonic()
            while running:
                await asyncio.sleep(0.005)
                now = time.monotonic()
                worst, last = max(worst, now - last), now

        task = asyncio.create_task(ticker())
        await call(app, CHAT)
        running = False
        await task
        return worst

    worst = asyncio.run(measured())
    assert len(app.cassette.rules) == 1 and worst < 0.5, worst  # the rule is made in a worker thread
