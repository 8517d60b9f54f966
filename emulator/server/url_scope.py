"""Test ids carried in the URL, for code that builds its own clients and cannot add a header.

`/_emulator/t/<test id>/v1/chat/completions` is served as `/v1/chat/completions` with the header
`x-emulator-test-id: <test id>`, so a base URL alone (OPENAI_BASE_URL, ANTHROPIC_BASE_URL) isolates a test.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from starlette.types import Scope

from emulator.names import SCOPE_PREFIX, TEST_ID_HEADER


def scoped_root(url: str, test_id: str) -> str:
    """The root URL whose requests belong to `test_id`."""
    return f"{url.rstrip('/')}{SCOPE_PREFIX}{quote(test_id, safe='')}"


def unscoped(scope: Scope) -> Scope:
    """The scope as if the request had been sent to the unscoped path with the test id in its header."""
    raw = (scope.get("raw_path") or scope["path"].encode("utf-8")).decode("latin-1")
    if not raw.startswith(SCOPE_PREFIX):  # the raw path spells the prefix differently: leave it be
        return scope
    encoded, _, rest = raw[len(SCOPE_PREFIX) :].partition("/")
    test_id = unquote(encoded)
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != TEST_ID_HEADER.encode()]
    headers.append((TEST_ID_HEADER.encode(), test_id.encode("utf-8")))
    raw_path = "/" + rest
    return {**scope, "path": unquote(raw_path), "raw_path": raw_path.encode("latin-1"), "headers": headers}
