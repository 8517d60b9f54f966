"""How a command reaches a running emulator's control API: its flags (--url, --test-id, --control-token) and a
small client that reads JSON from it, saying in one line why it could not."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from emulator.cli.options import http_url, option, text
from emulator.names import CONTROL_PREFIX, CONTROL_TOKEN_HEADER

DEFAULT_URL = "http://127.0.0.1:8000"


class ControlApiError(Exception):
    pass


def add_client_flags(parser: argparse.ArgumentParser) -> None:
    """--url, --test-id and --control-token: how a command reaches a running emulator's control API."""
    option(parser, "--url", default=DEFAULT_URL, check=http_url, metavar="URL", help="the emulator's root URL")
    option(parser, "--test-id", check=test_id, metavar="ID", help="only the requests of this test id")
    option(
        parser,
        "--control-token",
        check=text("a token"),
        metavar="TOKEN",
        help="the control token, when the server needs one",
    )


def test_id(value: str) -> str:
    if not value or not value.isprintable():
        raise ValueError(f"expected a test id of printable characters, got {value!r}")
    return value


class Client:
    def __init__(self, url: str, token: str | None, test_id: str | None) -> None:
        self.root = url.rstrip("/") + CONTROL_PREFIX
        self.token = token
        self.test_id = test_id

    def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        if self.test_id is not None:
            query["test_id"] = self.test_id
        url = self.root + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(url, headers={"accept": "application/json"})
        if self.token:
            request.add_header(CONTROL_TOKEN_HEADER, self.token)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the user's own URL
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = error.reason
            raise ControlApiError(f"{url} answered {error.code}: {message}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise ControlApiError(f"cannot reach {url}: {reason}") from None
