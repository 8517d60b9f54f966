"""HTTP plumbing shared by the protocol routes: body reading, auth, JSON responses."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from emulator import json_steps
from emulator.errors import ApiError


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return json_text_response(dumps(payload), status, headers)


def json_text_response(text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A response with `text` (JSON already written) as its body."""
    body = text.encode()
    if headers or status < 200 or status in (204, 304):
        return Response(body, status_code=status, headers=dict(headers or {}), media_type="application/json")
    return JsonBody(body, status)


# fast path: mirrors starlette.responses.JSONResponse; pinned by tests/unit/server/test_fastpaths.py::test_json_responses_carry_what_starlette_would
class JsonBody(Response):
    """A JSON body with no headers of its own: the same response Starlette's `Response` builds (the same headers
    in the same order), without working them out for each one."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        size = len(body)
        length = _LENGTHS.get(size)
        if length is None:
            length = (b"content-length", b"%d" % size)
            if len(_LENGTHS) < LENGTHS_KEPT:
                _LENGTHS[size] = length
        self.raw_headers = [length, (b"content-type", b"application/json")]


LENGTHS_KEPT = 4096
_LENGTHS: dict[int, tuple[bytes, bytes]] = {}  # the content-length header of each body size seen: the journal holds
# 10,000 responses' headers, as shared tuples rather than copies


# fast path: mirrors json.dumps; pinned by tests/unit/server/test_fastpaths.py::test_dumps_is_json_dumps
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)  # the C encoder (not in the stubs)
_c_encode = (
    _c_make_encoder(None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    if _c_make_encoder is not None
    else None
)


def dumps(payload: Any) -> str:
    """`json.dumps(payload, ensure_ascii=False, separators=(",", ":"))`, with the encoder made once.

    (No check for circular references: a circular payload is a bug that fails with RecursionError instead.)
    """
    if _c_encode is None or isinstance(payload, str):
        return _ENCODER.encode(payload)
    return "".join(_c_encode(payload, 0))


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


MASK_SHOWN_FROM = 20  # a key this long shows its first 3 and last 4 characters; a shorter one nothing


def mask_key(key: str) -> str:
    """Enough of a long key to recognise it, never the whole of it; nothing of a short one."""
    if len(key) < MASK_SHOWN_FROM:
        return "****"
    return f"{key[:3]}…{key[-4:]}"


async def read_json(
    request: Request, max_bytes: int, keep: Callable[[bytes | bytearray, Any, bool], None] | None = None
) -> Any:
    """The body as JSON; 415 unless it says it is JSON, 413 past `max_bytes`, 400 when it does not parse.

    `keep(raw, value, is_json)` is given the body as read, parsed or not (the journal keeps it).
    """
    content_type = request.headers.get("content-type", "")
    media_type = content_type if content_type == "application/json" else content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        shown = media_type or "none"
        raise ApiError(415, f"Unsupported Content-Type {shown!r}: the request body must be application/json.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = await read_body(request, max_bytes)
    large = len(body) > json_steps.LARGE  # each step below takes milliseconds: the loop runs between them
    try:
        if large and json_steps.dense(body):
            await asyncio.sleep(0)
            value = await parse_json_in_slices(body)
        else:
            value = parse_json(body)
    except ApiError:
        if keep is not None:
            keep(body, None, False)
        raise
    if keep is not None:
        if large:
            await asyncio.sleep(0)
        keep(body, value, True)
    return value


def parse_json(body: bytes | bytearray) -> Any:
    """A request body as JSON; ApiError 400 naming what is wrong when it is not."""
    try:
        if len(body) >= 4 and body[0] == 0x7B and body[1]:  # "{" then not NUL: what json.loads reads as UTF-8
            text = body.decode("utf-8", "surrogatepass")  # json.loads, minus its checks on the way:
            try:
                value, end = _scan(text, 0)  # the object that starts at 0
            except StopIteration:
                end = -1
            if end != len(text):
                value = _decode(text)  # trailing whitespace, or the error json.loads raises
        else:
            value = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise _not_json(error) from None
    if _SURROGATE_ESCAPE.search(body):
        _reject_unpaired_surrogates(value)
    return value


async def parse_json_in_slices(body: bytes | bytearray) -> Any:
    """`parse_json`, for a body too dense to decode without letting the event loop run (emulator/json_steps.py)."""
    try:
        value = await json_steps.loads(body.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError) as error:
        raise _not_json(error) from None
    await asyncio.sleep(0)
    if _SURROGATE_ESCAPE.search(body):
        _reject_unpaired_surrogates(value)
    return value


def _not_json(error: Exception) -> ApiError:
    if isinstance(error, UnicodeDecodeError):
        return ApiError.invalid("The request body is not valid UTF-8.")
    if isinstance(error, json.JSONDecodeError):
        return ApiError.invalid(
            f"We could not parse the JSON body of your request: {error.msg} at line {error.lineno} column {error.colno}."
        )
    if isinstance(error, RecursionError):
        return ApiError.invalid("The JSON body of your request is nested too deeply.")
    # an integer of more digits than int() converts (sys.get_int_max_str_digits)
    return ApiError.invalid("The JSON body of your request holds a number too large to read.")


async def read_body(request: Request, max_bytes: int) -> bytes | bytearray:
    """The whole body, as `request.stream()` would give it (ClientDisconnect if the client leaves), read from
    `receive` directly: a body in one message is not copied. 413 past `max_bytes`."""
    if hasattr(request, "_body") or request._stream_consumed:
        whole = bytearray()
        async for chunk in request.stream():
            whole += chunk
            if len(whole) > max_bytes:
                raise _too_large(max_bytes)
        return whole
    receive = request.receive
    body: bytes | bytearray = b""
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                if not body:
                    body = chunk
                else:
                    if type(body) is not bytearray:
                        body = bytearray(body)
                    body += chunk
                if len(body) > max_bytes:
                    raise _too_large(max_bytes)
            if not message.get("more_body", False):
                request._stream_consumed = True
                return body
        elif kind == "http.disconnect":
            request._is_disconnected = True
            raise ClientDisconnect()


_DECODER = json.JSONDecoder()  # what json.loads uses with no options
_decode, _scan = _DECODER.decode, _DECODER.scan_once  # type: ignore[attr-defined]  # scan_once: not in the stubs


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
