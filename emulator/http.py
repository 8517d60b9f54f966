"""HTTP plumbing shared by the protocol routes: request ids, body reading, auth, error responses."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.errors import ApiError

REQUEST_ID_HEADERS = ("x-request-id", "request-id")  # OpenAI's SDK reads the first, Anthropic's the second
log = logging.getLogger("tokenhub_emulator")


class GatewayMiddleware:
    """Gives every response, errors included, a request id header, and turns a crash into a 500 in the envelope.

    `on_crash` builds that 500; the exception is logged, never sent to the client.
    """

    def __init__(self, app: ASGIApp, on_crash: Callable[[Scope], Response]) -> None:
        self.app = app
        self.on_crash = on_crash

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = request_id

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                ids = [(name.encode(), request_id.encode()) for name in REQUEST_ID_HEADERS]
                message["headers"] = [*message.get("headers", []), *ids]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unexpected error while answering %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await self.on_crash(scope)(scope, receive, send_with_id)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, headers=dict(headers or {}), media_type="application/json")


def bearer_key(request: Request, allowed: frozenset[str]) -> str:
    """The API key from `Authorization: Bearer …`; any non-empty key unless a key list is configured."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    if allowed and key not in allowed:
        raise ApiError(401, f"Incorrect API key provided: {mask_key(key)}.")
    return key


def mask_key(key: str) -> str:
    """Enough of a key to recognise it, never the whole of it."""
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:3]}…{key[-4:]}"


async def read_json(request: Request, max_bytes: int) -> Any:
    """The body as JSON; 415 unless it says it is JSON, 413 past `max_bytes`, 400 when it does not parse."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        shown = media_type or "none"
        raise ApiError(415, f"Unsupported Content-Type {shown!r}: the request body must be application/json.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    try:
        value = json.loads(body)
    except UnicodeDecodeError:
        raise ApiError.invalid("The request body is not valid UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise ApiError.invalid(
            f"We could not parse the JSON body of your request: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except RecursionError:
        raise ApiError.invalid("The JSON body of your request is nested too deeply.") from None
    if _SURROGATE_ESCAPE.search(body):
        _reject_unpaired_surrogates(value)
    return value


# A `\uD800`–`\uDFFF` escape: JSON allows it, but alone (not as half of a pair) it is no character and
# could not be written back out as UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _reject_unpaired_surrogates(value: Any) -> None:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError.invalid(
            "The request body contains an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF)."
        ) from None


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"The request body is larger than the {max_bytes} bytes this gateway accepts.")
