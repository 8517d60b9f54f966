"""What the mid-stream faults do to a scheduled stream: each takes the events with their offsets and yields the
parts a broken gateway would send.

(emulator/faults/kinds.py says which kind does which; the pipeline hands them the stream.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from emulator.sse import Part, SseEvent, encode

Schedule = Iterator[tuple[SseEvent, float]]  # the stream's events, each with its offset from the start (s)


def first(schedule: Schedule, count: int) -> Iterator[Part]:
    """The first `count` events, then nothing (the connection closes)."""
    for index, (event, at) in enumerate(schedule):
        if index >= count:
            return
        yield encode(event), at


def without_last(schedule: Schedule) -> Iterator[Part]:
    """Every event but the terminator."""
    previous = None
    for item in schedule:
        if previous is not None:
            yield encode(previous[0]), previous[1]
        previous = item


def stalled(schedule: Schedule, after: int, seconds: float) -> Iterator[Part]:
    """The events from `after` on, each `seconds` later."""
    for index, (event, at) in enumerate(schedule):
        yield encode(event), at + seconds if index >= after else at


def malformed(schedule: Schedule, after: int) -> Iterator[Part]:
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


def erroring(schedule: Schedule, after: int, error_event: Callable[[], SseEvent]) -> Iterator[Part]:
    """The first `after` events, then the protocol's error event in place of the rest."""
    last = 0.0
    for index, (event, at) in enumerate(schedule):
        if index >= after:
            yield encode(error_event()), at
            return
        last = at
        yield encode(event), at
    yield encode(error_event()), last
