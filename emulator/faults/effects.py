"""What a fault does: the HTTP error it answers with, the connection it breaks, the stream it spoils.

(emulator/faults/rules.py says what a fault is and when it fires.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from emulator.exchange import Failure
from emulator.faults.rules import Fault
from emulator.ratelimit import exhausted_headers, retry_headers
from emulator.server.delivery import Delivery, Ending, Part, SseEvent, encode

HANG_LIMIT_S = 600.0  # a hang ends (the connection is closed) if the client has not given up by then
DEFAULT_RETRY_AFTER_S = {429: 1.0}


def error_failure(fault: Fault, protocol: str, limit_headers: Mapping[str, str]) -> Failure:
    """The HTTP error of an `error` fault: the profile's type and code, with the headers the gateways send.

    A 429 carries the rate-limit headers (the limiter's when limits are configured, else a spent request
    budget) and a retry-after (1 s unless the fault says otherwise).
    """
    status = int(fault.value or 500)
    retry_ms = fault.retry_after_ms
    if retry_ms is None and status in DEFAULT_RETRY_AFTER_S:
        retry_ms = DEFAULT_RETRY_AFTER_S[status] * 1000
    headers = dict(limit_headers)
    if status == 429 and not headers:
        headers.update(exhausted_headers(protocol, (retry_ms or 0) / 1000))
    if retry_ms is not None:
        headers.update(retry_headers(retry_ms / 1000))
    if fault.should_retry is not None:
        headers["x-should-retry"] = "true" if fault.should_retry else "false"
    return Failure(status=status, message=fault.message or "", headers=headers)


def event_failure(fault: Fault, protocol: str) -> Failure:
    """The failure a mid-stream error event reports: overloaded (529) on the Anthropic route, else a 500."""
    status = int(fault.value) if fault.value is not None else (529 if protocol == "messages" else 500)
    return Failure(status=status, message=fault.message or "")


def transport_fault(fault: Fault, on_done: Callable[[bool], None] | None = None, drained: Any = None) -> Delivery:
    """hang: nothing until the client gives up (or, if the server stops first, `drained`: an error response);
    reset: an RST; empty: the connection closed without a byte."""
    if fault.kind == "hang":
        return Delivery(
            0, {}, (), delay=HANG_LIMIT_S, send_headers=False, ending="close", on_done=on_done, drained=drained
        )
    ending = "reset" if fault.kind == "reset" else "close"
    return Delivery(0, {}, (), send_headers=False, ending=ending, on_done=on_done)


def break_stream(
    fault: Fault, schedule: Iterator[tuple[SseEvent, float]], error_event: Callable[[], SseEvent]
) -> tuple[Iterator[Part], Ending]:
    """The scheduled events as a mid-stream fault leaves them, and how the response ends."""
    kind = fault.kind
    if kind == "disconnect_after":
        return _first(schedule, int(fault.value or 0)), "close"
    if kind == "no_terminator":
        return _without_last(schedule), "complete"
    if kind == "stall":
        return _stalled(schedule, fault.strike_at(), (fault.value or 0) / 1000), "complete"
    if kind == "malformed":
        return _malformed(schedule, fault.strike_at()), "complete"
    if kind == "error_event":
        return _erroring(schedule, fault.strike_at(), error_event), "complete"
    return ((encode(e), at) for e, at in schedule), "complete"


def _first(schedule: Iterator[tuple[SseEvent, float]], count: int) -> Iterator[Part]:
    for index, (event, at) in enumerate(schedule):
        if index >= count:
            return
        yield encode(event), at


def _without_last(schedule: Iterator[tuple[SseEvent, float]]) -> Iterator[Part]:
    previous = None
    for item in schedule:
        if previous is not None:
            yield encode(previous[0]), previous[1]
        previous = item


def _stalled(schedule: Iterator[tuple[SseEvent, float]], after: int, seconds: float) -> Iterator[Part]:
    for index, (event, at) in enumerate(schedule):
        yield encode(event), at + seconds if index >= after else at


def _malformed(schedule: Iterator[tuple[SseEvent, float]], after: int) -> Iterator[Part]:
    """The first delta from `after` on (an event carrying tokens, or named `*delta`) is cut in the middle:
    invalid JSON in a data line. A delta, because SDKs skip some framing events unread (Anthropic's `ping`).
    """
    done = False
    for index, (event, at) in enumerate(schedule):
        delta = event.tokens > 0 or "delta" in (event.event or "")
        if not done and index >= after and delta and event.data.startswith("{"):
            done = True
            yield encode(SseEvent(event.data[: max(1, len(event.data) // 2)], event.event)), at
        else:
            yield encode(event), at


def _erroring(
    schedule: Iterator[tuple[SseEvent, float]], after: int, error_event: Callable[[], SseEvent]
) -> Iterator[Part]:
    last = 0.0
    for index, (event, at) in enumerate(schedule):
        if index >= after:
            yield encode(error_event()), at
            return
        last = at
        yield encode(event), at
    yield encode(error_event()), last
