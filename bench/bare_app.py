"""The ceiling of this stack: bare Starlette on uvicorn serving the emulator's own bytes with no logic.

    uvicorn bench.bare_app:app --loop uvloop --http httptools

`bench/gateway.py` captures one chat completion and one 100-chunk stream from the emulator and passes them
in BARE_JSON / BARE_SSE (file paths) so both servers send the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

JSON_BODY = Path(os.environ["BARE_JSON"]).read_bytes() if "BARE_JSON" in os.environ else b"{}"
SSE_EVENTS = Path(os.environ["BARE_SSE"]).read_bytes().split(b"\n\n") if "BARE_SSE" in os.environ else []
SSE_CHUNKS = [event + b"\n\n" for event in SSE_EVENTS if event]


async def chat(request: Request) -> Response:
    body = await request.body()
    if b'"stream":true' in body or b'"stream": true' in body:
        return StreamingResponse(_events(), media_type="text/event-stream")
    return Response(JSON_BODY, media_type="application/json")


async def _events():
    for chunk in SSE_CHUNKS:
        yield chunk


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
