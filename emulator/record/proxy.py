"""The recording proxy: an ASGI app in front of the emulator that sends unknown requests upstream and records them.

A request the recording can answer is replayed by the emulator; any other goes to the upstream gateway,
its answer streams back to the client as it arrives, and is recorded once it is complete. The upstream
answer is read to its end in a task of its own, so a client that disconnects loses nothing.

Within limits: an answer larger than `max_bytes` (inflated, if it came compressed) or longer than `max_s`
is cut off and not recorded; the bytes wait in a temporary file, not in memory; an answer is turned into a
rule in a worker thread, one at a time, so a large one stalls no other request. Keys never reach the file
or the log: the client's and the upstream's keys are masked wherever the answer repeats them, and the log
names the upstream by scheme, host and port only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.types import Message, Receive, Send

from emulator.errors import ApiError
from emulator.exchange import Exchange, Failure
from emulator.http import json_response, mask_key
from emulator.names import OWN_HEADERS
from emulator.profiles import Catalog, CatalogModel
from emulator.protocols.base import Adapter, Context
from emulator.record import DEFAULT_MAX_BYTES, DEFAULT_MAX_S
from emulator.record.capture import Capture, TooLarge
from emulator.record.cassette import Cassette
from emulator.record.convert import outcome_for, when_for

if TYPE_CHECKING:
    from emulator.server.runtime import Runtime

log = logging.getLogger("uvicorn.error.record")  # printed by uvicorn's handler, at --log-level

QUEUED_CHUNKS = 256  # chunks read ahead of a slow client (the upstream waits for it beyond that)
SECRET_REQUEST_HEADERS = ("authorization", "x-api-key", "api-key", "proxy-authorization")
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
     "proxy-authenticate", "content-length", "host", "date", "server"}
)  # fmt: skip


def shown_upstream(url: str) -> str:
    """Scheme, host and port only: credentials and query strings stay out of files and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class Recorder:
    def __init__(
        self,
        runtime: Runtime,
        app: Any,
        cassette: Cassette,
        upstream: str,
        *,
        record_all: bool,
        replay_only: bool = False,
        upstream_key: str | None = None,
        client: httpx.AsyncClient | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_s: float = DEFAULT_MAX_S,
    ) -> None:
        self.runtime = runtime
        self.app = app
        self.cassette = cassette
        self.upstream = upstream.rstrip("/")
        self.record_all = record_all  # mode once, no recording yet: everything goes upstream
        self.replay_only = replay_only
        self.upstream_key = upstream_key
        self.client = client or httpx.AsyncClient(timeout=httpx.Timeout(max_s, connect=30))
        self.max_bytes = max_bytes
        self.max_s = max_s
        self.pending: set[asyncio.Task[None]] = set()
        self._recording = asyncio.Lock()  # one answer turned into a rule at a time (the cassette is one file)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or self._protocol(scope) is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        exchange = self._exchange(scope, body)
        if self.replay_only or not (self.record_all or exchange is None or self.runtime.engine.match(exchange) is None):
            await self.app(scope, _replaying(body, receive), send)
            return
        await self._proxy(scope, body, exchange, send)

    def _protocol(self, scope: dict[str, Any]) -> str | None:
        return self.runtime.protocol_for(scope["path"])

    def _adapter(self, protocol: str | None) -> Adapter:
        return next(a for a in self.runtime.adapters if a.protocol == protocol)

    def _exchange(self, scope: dict[str, Any], body: bytes) -> Exchange | None:
        """The request as the engine sees it; None when it does not parse (it is proxied, not recorded)."""
        adapter = self._adapter(self._protocol(scope))
        try:
            data = json.loads(body)
        except ValueError:
            return None
        catalog = self.runtime.catalog
        model = data.get("model") if isinstance(data, dict) else None
        if isinstance(model, str) and model not in catalog.models:
            catalog = Catalog({**catalog.models, model: CatalogModel(model, "upstream", 0)})
        try:
            exchange, _ = adapter.parse(data, Request(scope), "", Context(self.runtime.profile, catalog))
        except (ApiError, NotImplementedError):
            return None
        return exchange

    # ------------------------------------------------------------ upstream

    async def _proxy(self, scope: dict[str, Any], body: bytes, exchange: Exchange | None, send: Send) -> None:
        started = time.monotonic()
        request = self.client.build_request("POST", self._url(scope), headers=self._headers(scope), content=body)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as error:
            await self._unreachable(scope, error, send)
            return
        capture = Capture(response.status_code, {k.lower(): v for k, v in response.headers.items()}, self.max_bytes)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUED_CHUNKS)
        secrets = self._secrets(scope)
        task = asyncio.get_running_loop().create_task(self._pump(response, capture, started, queue, exchange, secrets))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        connected = await _try_send(send, _start(capture))
        while (chunk := await queue.get()) is not None:
            if connected:
                connected = await _try_send(send, {"type": "http.response.body", "body": chunk, "more_body": True})
        if connected:
            await _try_send(send, {"type": "http.response.body", "body": b"", "more_body": False})
        await asyncio.shield(task)

    async def _pump(
        self,
        response: httpx.Response,
        capture: Capture,
        started: float,
        queue: asyncio.Queue[bytes | None],
        exchange: Exchange | None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        """Reads the upstream answer to its end (or its limits), whatever the client does, then records it."""
        try:
            async with asyncio.timeout(self.max_s):
                async for chunk in response.aiter_raw():
                    capture.add((time.monotonic() - started) * 1000, chunk)
                    await queue.put(chunk)
            capture.complete = True
        except TooLarge as error:
            log.warning("record: %s; cut off, not recorded (--max-record-bytes)", error)
        except TimeoutError:
            log.warning("record: the upstream answer took longer than %g s; cut off, not recorded", self.max_s)
        except httpx.HTTPError as error:
            log.warning("record: the upstream answer broke off (%s); not recorded", self._scrubbed(str(error)))
        finally:
            await response.aclose()
            await queue.put(None)
        try:
            if exchange is None:
                log.warning("record: a request the emulator cannot read was proxied, not recorded")
            elif capture.complete:
                async with self._recording:
                    scenario = await asyncio.to_thread(self._record, exchange, capture, secrets)
                if scenario is not None:
                    self.runtime.replace_scenarios([scenario], from_files=1)
        finally:
            capture.close()

    def _record(self, exchange: Exchange, capture: Capture, secrets: tuple[str, ...]) -> Any:
        """Turn the answer into a rule and write the file (in a worker thread); the scenario, or None."""
        try:
            events = [event for _, event in capture.events()] if capture.streamed else []
            body = None if capture.streamed and capture.status < 400 else capture.json()
            adapter = self._adapter(exchange.protocol)
            outcome = masked(outcome_for(adapter, capture.status, capture.headers, body, events), secrets)
            name = self.cassette.add(when_for(exchange), outcome, capture.timing())
            scenario = self.cassette.save()
        except TooLarge as error:
            log.warning("record: %s; not recorded (--max-record-bytes)", error)
            return None
        except Exception as error:  # an answer of a shape no gateway sends: said in one line, never a traceback
            log.error(
                "record: could not record %s %s (%s: %s); the answer was passed on, not recorded",
                exchange.protocol,
                exchange.requested_model,
                type(error).__name__,
                self._scrubbed(str(error))[:200],
            )
            return None
        log.info("record: %s → %s (%s)", name, capture.status, self.cassette.path)
        return scenario

    def _secrets(self, scope: dict[str, Any]) -> tuple[str, ...]:
        """The keys this request carried (and the upstream key): masked wherever the answer repeats them."""
        found = [self.upstream_key] if self.upstream_key else []
        for name, value in scope.get("headers", []):
            if name.decode("latin-1").lower() in SECRET_REQUEST_HEADERS:
                text = value.decode("latin-1").strip()
                found += [text, text.partition(" ")[2].strip()]
        return tuple(secret for secret in found if len(secret) >= MIN_SECRET)

    def _scrubbed(self, text: str) -> str:
        """`text` without the upstream URL's credentials or query (an error message may quote the URL)."""
        parts = urlsplit(self.upstream)
        for secret in (self.upstream, parts.password, parts.username, parts.query):
            if secret:
                text = text.replace(secret, shown_upstream(self.upstream) if secret == self.upstream else "****")
        return text

    def _url(self, scope: dict[str, Any]) -> str:
        path = scope["path"]
        if self.upstream.endswith("/v1") and path.startswith("/v1/"):
            path = path[3:]
        query = scope.get("query_string", b"").decode("latin-1")
        return self.upstream + path + (f"?{query}" if query else "")

    def _headers(self, scope: dict[str, Any]) -> dict[str, str]:
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope.get("headers", [])
            if k.decode("latin-1").lower() not in HOP_BY_HOP and not k.lower().startswith(OWN_HEADERS.encode())
        }
        headers["accept-encoding"] = "identity"  # the answer is read as it streams
        if self.upstream_key:
            if "x-api-key" in headers:
                headers["x-api-key"] = self.upstream_key
            else:
                headers["authorization"] = f"Bearer {self.upstream_key}"
        return headers

    async def _unreachable(self, scope: dict[str, Any], error: Exception, send: Send) -> None:
        log.error("record: upstream %s unreachable: %s", shown_upstream(self.upstream), self._scrubbed(str(error)))
        runtime = self.runtime
        adapter = runtime.adapter_for(scope["path"])
        failure = Failure(
            status=502, message=f"The upstream gateway could not be reached: {self._scrubbed(str(error))}."
        )
        response = json_response(adapter.error_body(failure, runtime.context), 502)
        await response(scope, _no_body, send)

    async def aclose(self) -> None:
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
        await self.client.aclose()


MIN_SECRET = 8  # shorter values are not looked for in answers (they would match ordinary text)


def masked(value: Any, secrets: tuple[str, ...]) -> Any:
    """`value` (a recorded outcome) with every secret in its strings masked."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, mask_key(secret))
        return value
    if isinstance(value, dict):
        return {key: masked(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item, secrets) for item in value]
    return value


def _start(capture: Capture) -> dict[str, Any]:
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in capture.headers.items()
        if name not in HOP_BY_HOP
    ]
    return {"type": "http.response.start", "status": capture.status, "headers": headers}


async def _try_send(send: Send, message: dict[str, Any]) -> bool:
    """Send to the client; False once it has gone away (what is left is still read and recorded)."""
    try:
        await send(message)
    except Exception:  # the server's own "client disconnected" errors differ between its protocols
        return False
    return True


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return bytes(body)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive callable that gives the already read body once, then waits on the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}
