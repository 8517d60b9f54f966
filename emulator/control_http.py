"""What every control API handler shares: its error envelope, the access guard, the test id of a call."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emulator.http import json_response
from emulator.journal import TEST_ID_HEADER

TOKEN_HEADER = "x-emulator-control-token"
log = logging.getLogger("tokenhub_emulator.control")

Handler = Callable[[Request], Awaitable[Response]]


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


def check_access(request: Request) -> None:
    """Open on loopback; a configured token is always required; beyond loopback without one, refused."""
    settings = request.app.state.runtime.settings
    token: str | None = getattr(settings, "control_token", None)
    if token:
        presented = request.headers.get(TOKEN_HEADER) or _bearer(request)
        if not presented or not hmac.compare_digest(presented.encode(), token.encode()):
            raise ControlError(
                401,
                f"The control API needs the control token: send it in the {TOKEN_HEADER} header "
                "(or as Authorization: Bearer TOKEN).",
                code="control_token_required",
            )
        return
    if not is_loopback(settings.host):
        raise ControlError(
            403,
            f"The control API is disabled: the server listens on {settings.host}, beyond loopback, and no "
            "control token is set. Start it with --control-token TOKEN (or TOKENHUB_EMULATOR_CONTROL_TOKEN=TOKEN) "
            f"and send the token in the {TOKEN_HEADER} header.",
            code="control_api_disabled",
        )


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
                return await handler(request)
            except ControlError as error:
                return error.response()
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
