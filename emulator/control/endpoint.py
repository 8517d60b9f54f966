"""What every control API handler shares: its error envelope, the access guards, its body, the test id of a call.

Two guards. Access: open on loopback, a configured token always required, refused beyond loopback without
one. Browsers: a web page the user visits can send requests to loopback too, so the control API refuses
what only a browser sends — a cross-origin `Origin` or `Sec-Fetch-Site`, a `Host` that is not a loopback
name (DNS rebinding: a page whose own name points at 127.0.0.1), and a POST with neither a JSON or YAML content type nor an `x-emulator-*` header
(the two things a page cannot send without the browser asking the server first, which it never agrees to;
the other changing methods, PUT, PATCH and DELETE, are never sent across origins without asking).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emulator.errors import ApiError
from emulator.http import json_response, read_body
from emulator.names import CONTROL_TOKEN_HEADER as TOKEN_HEADER
from emulator.names import OWN_HEADERS, TEST_ID_HEADER
from emulator.server.runtime import Runtime
from emulator.state.redis_state import StateUnavailable

log = logging.getLogger("tokenhub_emulator.control")

Handler = Callable[[Request], Awaitable[Response]]


def runtime_of(request: Request) -> Runtime:
    """The server's runtime (the app's `state.runtime`): what every control call reads or changes."""
    runtime: Runtime = request.app.state.runtime
    return runtime


class ControlError(Exception):
    """A control API call that cannot be done; answered as `{"error": {message, type, param, code, …}}`."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.extra = status, message, code, param, extra

    def response(self) -> Response:
        error = {"message": self.message, "type": _type_for(self.status), "param": self.param, "code": self.code}
        return json_response({"error": {**error, **self.extra}}, self.status)


def _type_for(status: int) -> str:
    if status in (401, 403):
        return "permission_error"
    if status == 404:
        return "not_found_error"
    return "invalid_request_error" if status < 500 else "server_error"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_access(request: Request, what: str = "The control API", instead: str = "") -> None:
    """Open on loopback; a configured token is always required; beyond loopback without one, refused.

    `what` names what is guarded in the messages; `instead` is another way out, added to the refusal."""
    settings = runtime_of(request).settings
    token = settings.control_token
    if token:
        presented = request.headers.get(TOKEN_HEADER) or _bearer(request)
        if not presented or not hmac.compare_digest(presented.encode(), token.encode()):
            raise ControlError(
                401,
                f"{what} needs the control token: send it in the {TOKEN_HEADER} header "
                "(or as Authorization: Bearer TOKEN).",
                code="control_token_required",
            )
        return
    if not is_loopback(settings.host):
        raise ControlError(
            403,
            f"{what} is disabled: the server listens on {settings.host}, beyond loopback, and no "
            "control token is set. Start it with --control-token TOKEN (or TOKENHUB_EMULATOR_CONTROL_TOKEN=TOKEN) "
            f"and send the token in the {TOKEN_HEADER} header{instead}.",
            code="control_api_disabled",
        )


PREFLIGHTED_TYPES = frozenset(
    {"application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
)  # content types a browser will not send across origins without asking first
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values a browser sends for our own pages,
# or for what the user typed or bookmarked


def check_browser(request: Request, what: str = "The control API") -> None:
    """Refuse what a web page could make a browser send; see the module docstring."""
    headers = request.headers
    settings = runtime_of(request).settings
    host = headers.get("host", "")
    if is_loopback(settings.host) and not settings.control_token and not _loopback_name(host):
        raise ControlError(
            403,
            f"{what} answers only to a loopback host name (localhost, 127.0.0.1, [::1]), not {host!r}.",
            code="host_not_allowed",
        )
    origin = headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{host}":
        raise ControlError(
            403, f"{what} refuses requests from other origins ({origin!r}).", code="cross_origin_refused"
        )
    fetched_from = headers.get("sec-fetch-site")
    if fetched_from is not None and fetched_from.lower() not in SAME_SITE_FETCHES:
        raise ControlError(
            403,
            f"{what} refuses requests from other sites (Sec-Fetch-Site: {fetched_from}).",
            code="cross_origin_refused",
        )
    if request.method == "POST" and not _preflighted(request):
        raise ControlError(
            415,
            "A control API POST needs Content-Type: application/json or application/yaml, or an x-emulator-* "
            "header (such as x-emulator-test-id).",
            code="unsupported_media_type",
        )


def _preflighted(request: Request) -> bool:
    """Whether a browser would have had to ask before sending this: a JSON or YAML body, or our own header."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in PREFLIGHTED_TYPES or media_type.endswith("+json"):
        return True
    return any(name.startswith(OWN_HEADERS) for name in request.headers)


def _loopback_name(host: str) -> bool:
    """`host[:port]` names this machine: localhost (or a name under .localhost) or a loopback address."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]").lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost") or is_loopback(name)


async def control_body(request: Request, limit: int | None = None) -> bytes:
    """The body of a control call; 413 past `limit` (default: the server's control_body_bytes)."""
    limit = limit or runtime_of(request).settings.control_body_bytes
    try:
        return bytes(await read_body(request, limit))
    except ApiError:
        raise ControlError(
            413, f"The body is larger than the {limit} bytes the control API reads.", code="request_too_large"
        ) from None


def _bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def test_id_of(request: Request) -> str | None:
    """The test id a call is scoped to: the `x-emulator-test-id` header, else the `test_id` query parameter."""
    value = request.headers.get(TEST_ID_HEADER)
    if value is None:
        value = request.query_params.get("test_id")
    return value


def control_endpoint(guarded: bool = True) -> Callable[[Handler], Handler]:
    """Wraps a handler: the access guard, and ControlError (or any slip) as a JSON error, never a traceback."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                if guarded:
                    check_access(request)
                    check_browser(request)
                shared = runtime_of(request).shared
                if shared is not None:  # what other workers changed, before it is read or changed here
                    await shared.refresh(runtime_of(request))
                return await handler(request)
            except ControlError as error:
                return error.response()
            except StateUnavailable as error:
                return ControlError(503, f"{error}.", code="shared_state_unavailable").response()
            except Exception:
                log.exception("control API failed on %s %s", request.method, request.url.path)
                failure = ControlError(500, "The control API failed unexpectedly; see the server log.", code="internal")
                return failure.response()

        return endpoint

    return wrap


def by_method(**handlers: Handler) -> Handler:
    """One endpoint for every method a control path serves, so that a 405 lists them all in its `allow` header.

    (One Starlette route per method would answer a wrong method with only the first route's methods.)
    """

    async def endpoint(request: Request) -> Response:
        return await handlers[request.method if request.method in handlers else "GET"](request)  # HEAD: as GET

    return endpoint


def int_param(request: Request, name: str, *, low: int | None = None, high: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ControlError(
            400, f"'{name}' must be an integer, got {raw!r}.", code="invalid_parameter", param=name
        ) from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ControlError(
            400, f"'{name}' must be between {low} and {high}, got {value}.", code="invalid_parameter", param=name
        )
    return value


def float_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ControlError(
            400, f"'{name}' must be a number, got {raw!r}.", code="invalid_parameter", param=name
        ) from None
