"""Names written once: the emulator's own headers and URL prefixes, and the request-id headers it sends."""

from __future__ import annotations

CONTROL_PREFIX = "/_emulator"  # the control API; never journaled
SCOPE_PREFIX = CONTROL_PREFIX + "/t/"  # /_emulator/t/<test id>/v1/… is /v1/… for that test id (server/url_scope.py)
OWN_HEADERS = "x-emulator-"  # the prefix of every header the emulator reads; never sent upstream by `record`
TEST_ID_HEADER = "x-emulator-test-id"  # which test a request belongs to: its overlay, counters, journal entries
CONTROL_TOKEN_HEADER = "x-emulator-control-token"  # the control API's token (--control-token)
FAULT_HEADER = "x-emulator-fault"  # one request's own fault: `stall=2000; after=3`
REQUEST_ID_HEADERS = ("x-request-id", "request-id")  # OpenAI's SDK reads the first, Anthropic's the second
