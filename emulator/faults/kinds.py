"""Fault kinds: one row each — its name, the value it takes, which replies it can break — and what it does.

A kind that replaces the answer (an HTTP error, a transport fault) says what goes instead; a kind that breaks
a reply says how: a wait before the headers (`latency`), a cut body (`truncate`), a broken stream (the
mid-stream kinds, emulator/faults/effects.py), or a model that misbehaves (the behaviour kinds,
emulator/faults/behaviour.py: the reply itself changed before it is rendered). The pipeline (emulator/server/pipeline.py) asks the kind; it
never names one. A new kind is one row in KINDS and, if no class here does what it does, one class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from emulator.exchange import Failure, Reply
from emulator.faults import behaviour, effects
from emulator.ratelimit import LimitHeaders, exhausted_headers, retry_headers
from emulator.sse import Ending, Part, SseEvent, encode

HANG_LIMIT_S = 600.0  # a hang ends (the connection is closed) if the client has not given up by then
DEFAULT_RETRY_AFTER_S = {429: 1.0}

Value = Literal["flag", "status", "ms", "count", "status_or_flag", "way_or_flag"]
Applies = Literal["any", "stream", "json"]
Needs = Literal["tools", "json_format", "earlier_calls"]  # what a request must have for a behaviour kind


@dataclass(frozen=True)
class Fault:
    kind: str
    value: float | None = None  # status, milliseconds or a count, as the kind says
    way: str | None = None  # how a behaviour fault misbehaves, for the kinds that can in several ways
    after: int | None = None  # events sent before a mid-stream fault strikes
    retry_after_ms: float | None = None
    should_retry: bool | None = None
    message: str | None = None
    bytes: int | None = None

    @property
    def spec(self) -> Kind:
        return KINDS[self.kind]

    @property
    def label(self) -> str:
        """Short and stable: `error 429`, `reset`, `stall 2000ms after 3`."""
        if self.way is not None:
            text = f"{self.kind} {self.way}"
        elif self.value is None or self.spec.value in ("flag", "way_or_flag"):
            text = self.kind
        elif self.spec.value == "ms":
            text = f"{self.kind} {self.value:g}ms"
        else:
            text = f"{self.kind} {self.value:g}"
        return f"{text} after {self.after}" if self.after is not None and self.kind != "disconnect_after" else text

    def strike_at(self) -> int:
        return self.after if self.after is not None else 1


@dataclass(frozen=True)
class Hangup:
    """A transport fault's answer: no status line, `wait_s` of silence, then the connection ends this way."""

    ending: Ending
    wait_s: float = 0.0


@dataclass(frozen=True)
class Kind:
    """A kind that breaks a reply and does nothing by itself; the subclasses say what each does."""

    name: str
    value: Value  # what `kind: …` takes: true, a status, milliseconds, a count
    applies: Applies  # which replies it can break
    options: tuple[str, ...] = ()

    @property
    def needs_reply(self) -> bool:
        """Whether it breaks a reply (so the scenario still answers), rather than replacing it."""
        return True

    @property
    def delays_errors(self) -> bool:
        """Whether it still applies when the scenario answers with an error (only a wait does)."""
        return False

    def fits(self, stream: bool, offers_tools: bool, json_format: bool, earlier_calls: bool) -> bool:
        """Whether it can break this request's reply: a stream, a JSON body, and what a behaviour kind needs."""
        return self.applies == "any" or (self.applies == "stream") == stream

    def misbehave(self, fault: Fault, reply: Reply, ask: behaviour.Ask) -> behaviour.Misbehaviour | None:
        """The reply as the misbehaving model gives it (behaviour kinds); None: the kind leaves replies be."""
        return None

    def replacement(self, fault: Fault, limit_headers: Mapping[str, str], family: LimitHeaders) -> Failure | Hangup:
        """What is sent instead of the answer (kinds that do not need a reply)."""
        raise NotImplementedError(f"a {self.name} fault breaks a reply; it does not replace one")

    def delay_s(self, fault: Fault) -> float:
        """The wait before the headers."""
        return 0.0

    def cut_at(self, fault: Fault, size: int) -> int | None:
        """How many bytes of a JSON body of `size` bytes are sent before the connection closes (None: all)."""
        return None

    def broken(
        self,
        fault: Fault,
        schedule: effects.Schedule,
        error_event: Callable[[Failure], SseEvent],
        overload_status: int,
    ) -> tuple[Iterator[Part], Ending]:
        """The stream's parts as this fault leaves them, and how the response ends."""
        return ((encode(event), at) for event, at in schedule), "complete"


@dataclass(frozen=True)
class ErrorKind(Kind):
    """An HTTP error in the protocol's envelope, with the headers the gateways send with it."""

    @property
    def needs_reply(self) -> bool:
        return False

    def replacement(self, fault: Fault, limit_headers: Mapping[str, str], family: LimitHeaders) -> Failure:
        """The profile's type and code for the status; a 429 carries the rate-limit headers (the limiter's when
        limits are configured, else a spent request budget in the protocol's `family`) and a retry-after (1 s
        unless the fault says otherwise)."""
        status = int(fault.value or 500)
        retry_ms = fault.retry_after_ms
        if retry_ms is None and status in DEFAULT_RETRY_AFTER_S:
            retry_ms = DEFAULT_RETRY_AFTER_S[status] * 1000
        headers = dict(limit_headers)
        if status == 429 and not headers:
            headers.update(exhausted_headers(family, (retry_ms or 0) / 1000))
        if retry_ms is not None:
            headers.update(retry_headers(retry_ms / 1000))
        if fault.should_retry is not None:
            headers["x-should-retry"] = "true" if fault.should_retry else "false"
        return Failure(status=status, message=fault.message or "", headers=headers)


@dataclass(frozen=True)
class TransportKind(Kind):
    """The connection breaks instead of answering: `wait_s` of silence (a hang), then closed or reset."""

    ending: Ending = "close"
    wait_s: float = 0.0

    @property
    def needs_reply(self) -> bool:
        return False

    def replacement(self, fault: Fault, limit_headers: Mapping[str, str], family: LimitHeaders) -> Hangup:
        return Hangup(self.ending, self.wait_s)


@dataclass(frozen=True)
class LatencyKind(Kind):
    """The headers wait `value` milliseconds, whatever the answer (an error too)."""

    @property
    def delays_errors(self) -> bool:
        return True

    def delay_s(self, fault: Fault) -> float:
        return (fault.value or 0) / 1000


@dataclass(frozen=True)
class TruncateKind(Kind):
    """A JSON body cut after `bytes` (half of it by default, never all of it), then the connection closed."""

    def cut_at(self, fault: Fault, size: int) -> int:
        return min(fault.bytes if fault.bytes is not None else size // 2, max(size - 1, 0))


@dataclass(frozen=True)
class StreamKind(Kind):
    """A stream broken mid-way: `breaks` turns the schedule into what is sent; then the response ends so."""

    breaks: Callable[[Fault, effects.Schedule, Callable[[], SseEvent]], Iterator[Part]] | None = None
    ending: Ending = "complete"

    def broken(
        self,
        fault: Fault,
        schedule: effects.Schedule,
        error_event: Callable[[Failure], SseEvent],
        overload_status: int,
    ) -> tuple[Iterator[Part], Ending]:
        assert self.breaks is not None

        def event() -> SseEvent:  # the failure a mid-stream error event reports: its status, else the overload
            status = int(fault.value) if fault.value is not None else overload_status
            return error_event(Failure(status=status, message=fault.message or ""))

        return self.breaks(fault, schedule, event), self.ending


@dataclass(frozen=True)
class BehaviourKind(Kind):
    """The model misbehaves: the reply the rule or the generator produced is changed before it is rendered, in
    every protocol's own shape. `ways` are the values the kind takes besides `true`; `needs` what the request
    must have (tools offered, JSON asked, an earlier tool call) for the kind to apply."""

    ways: tuple[str, ...] = ()
    needs: Needs | None = None

    def fits(self, stream: bool, offers_tools: bool, json_format: bool, earlier_calls: bool) -> bool:
        return {None: True, "tools": offers_tools, "json_format": json_format, "earlier_calls": earlier_calls}[
            self.needs
        ]

    def misbehave(self, fault: Fault, reply: Reply, ask: behaviour.Ask) -> behaviour.Misbehaviour:
        act = behaviour.BEHAVIOURS[self.name][0]
        return act(reply, replace(ask, way=fault.way, message=fault.message))


def _behaviour(name: str, needs: Needs | None = None, options: tuple[str, ...] = ()) -> BehaviourKind:
    ways = tuple(behaviour.BEHAVIOURS[name][1])
    return BehaviourKind(name, "way_or_flag" if ways else "flag", "any", options, ways=ways, needs=needs)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        ErrorKind("error", "status", "any", ("retry_after", "retry_after_ms", "should_retry", "message")),
        LatencyKind("latency", "ms", "any"),
        TransportKind("hang", "flag", "any", ending="close", wait_s=HANG_LIMIT_S),
        TransportKind("reset", "flag", "any", ending="reset"),
        TransportKind("empty", "flag", "any", ending="close"),
        TruncateKind("truncate", "flag", "json", ("bytes",)),
        StreamKind(
            "disconnect_after",
            "count",
            "stream",
            breaks=lambda fault, schedule, _: effects.first(schedule, int(fault.value or 0)),
            ending="close",
        ),
        StreamKind(
            "stall",
            "ms",
            "stream",
            ("after",),
            breaks=lambda fault, schedule, _: effects.stalled(schedule, fault.strike_at(), (fault.value or 0) / 1000),
        ),
        StreamKind(
            "malformed",
            "flag",
            "stream",
            ("after",),
            breaks=lambda fault, schedule, _: effects.malformed(schedule, fault.strike_at()),
        ),
        StreamKind(
            "error_event",
            "status_or_flag",
            "stream",
            ("after", "message"),
            breaks=lambda fault, schedule, event: effects.erroring(schedule, fault.strike_at(), event),
        ),
        StreamKind(
            "no_terminator", "flag", "stream", breaks=lambda fault, schedule, _: effects.without_last(schedule)
        ),
        _behaviour("invalid_tool_args", "tools"),
        _behaviour("unknown_tool"),
        _behaviour("wrong_format", "json_format"),
        _behaviour("refusal", options=("message",)),
        _behaviour("content_filter"),
        _behaviour("truncated"),
        _behaviour("repeat_tool_call", "earlier_calls"),
        _behaviour("empty_reply"),
        _behaviour("reasoning_only"),
    )
}
BEHAVIOUR_KINDS = tuple(name for name, kind in KINDS.items() if isinstance(kind, BehaviourKind))
FAULT_KINDS = tuple(KINDS)
