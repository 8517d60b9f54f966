"""Faults: the ways a real gateway fails, how they are written, and when each one fires.

A fault is one kind — an HTTP error, a transport fault or a mid-stream fault — with its options, and a
pattern that says when it fires (a probability, the first N calls, every Nth call, a window of the run,
only some models, keys or test ids). The same mapping is written in a scenario (`fault:` on a rule or a
sequence step, `settings.faults`), sent to the control API as JSON, or given in one request's
`x-emulator-fault` header (`stall=2000; after=3`).

Counters (first N, every Nth) and the probability draws are kept per fault and per test id
(`x-emulator-test-id`), drawn from the server seed: the same calls in the same order fail the same way.
What a fault does to the answer is in emulator/faults/effects.py.
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from emulator.errors import ApiError
from emulator.exchange import Exchange
from emulator.specparse import INVALID, Collected, SpecReader, header_value, is_number, shown, suggestion, words


@dataclass(frozen=True)
class Kind:
    name: str
    value: str  # flag | status | ms | count | status_or_flag
    applies: str  # any | stream | json: which replies it can break
    needs_reply: bool  # it breaks a reply (so the scenario still answers), rather than replacing it
    options: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("error", "status", "any", False, ("retry_after", "retry_after_ms", "should_retry", "message")),
        Kind("latency", "ms", "any", True),
        Kind("hang", "flag", "any", False),
        Kind("reset", "flag", "any", False),
        Kind("empty", "flag", "any", False),
        Kind("truncate", "flag", "json", True, ("bytes",)),
        Kind("disconnect_after", "count", "stream", True),
        Kind("stall", "ms", "stream", True, ("after",)),
        Kind("malformed", "flag", "stream", True, ("after",)),
        Kind("error_event", "status_or_flag", "stream", True, ("after", "message")),
        Kind("no_terminator", "flag", "stream", True),
    )
}
FAULT_KINDS = tuple(KINDS)
FAULT_OPTIONS = ("after", "retry_after", "retry_after_ms", "should_retry", "message", "bytes")
FAULT_PATTERNS = ("probability", "first", "every", "window", "model", "key", "test_id")
FAULT_KEYS = FAULT_KINDS + FAULT_OPTIONS + FAULT_PATTERNS
FAULT_HEADER = "x-emulator-fault"
TEST_ID_HEADER = "x-emulator-test-id"
INJECTED_KEPT = 20_000  # the journal keeps 10,000 entries
MAX_SLOTS = 4096  # (fault, test id) counters and draws kept (~3 KB each); the least recently used go first


@dataclass(frozen=True)
class Fault:
    kind: str
    value: float | None = None  # status, milliseconds or a count, as the kind says
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
        if self.value is None or self.spec.value == "flag":
            text = self.kind
        elif self.spec.value == "ms":
            text = f"{self.kind} {self.value:g}ms"
        else:
            text = f"{self.kind} {self.value:g}"
        return f"{text} after {self.after}" if self.after is not None and self.kind != "disconnect_after" else text

    def strike_at(self) -> int:
        return self.after if self.after is not None else 1


@dataclass(frozen=True)
class Who:
    """What a pattern's filters look at."""

    model: str
    requested_model: str
    key: str
    test_id: str
    stream: bool

    @classmethod
    def of(cls, exchange: Exchange) -> Who:
        return cls(
            exchange.model,
            exchange.requested_model,
            exchange.api_key,
            exchange.headers.get(TEST_ID_HEADER, ""),
            exchange.stream,
        )


@dataclass(frozen=True)
class Pattern:
    probability: float | None = None
    first: int | None = None
    every: int | None = None
    window: tuple[float, float] | None = None  # seconds of the run
    model: tuple[str, ...] = ()
    key: str | None = None
    test_id: str | None = None

    def admits(self, who: Who) -> bool:
        if self.model and not any(
            fnmatch.fnmatchcase(who.model, m) or fnmatch.fnmatchcase(who.requested_model, m) for m in self.model
        ):
            return False
        if self.key is not None and who.key != self.key:
            return False
        return self.test_id is None or who.test_id == self.test_id

    def fires(self, count: int, rng: random.Random | None, elapsed: float) -> bool:
        """`count` is how many admitted calls came before this one; `rng` is needed when there is a probability."""
        hit = self.probability is None or (rng is not None and rng.random() < self.probability)  # drawn every call
        if self.first is not None and count >= self.first:
            hit = False
        if self.every is not None and (count + 1) % self.every:
            hit = False
        if self.window is not None and not self.window[0] <= elapsed < self.window[1]:
            hit = False
        return hit


@dataclass(frozen=True)
class FaultRule:
    id: str
    fault: Fault
    pattern: Pattern = field(default_factory=Pattern)
    source: str = "scenario"  # rule | scenario | runtime | header

    def applies_to(self, who: Who) -> bool:
        applies = self.fault.spec.applies
        if applies == "stream" and not who.stream or applies == "json" and who.stream:
            return False
        return self.pattern.admits(who)

    def as_dict(self) -> dict[str, Any]:
        fault = self.fault
        data: dict[str, Any] = {"id": self.id, "source": self.source, "label": fault.label}
        data[fault.kind] = True if fault.spec.value == "flag" or fault.value is None else fault.value
        for name in ("after", "should_retry", "message", "bytes"):
            if getattr(fault, name) is not None:
                data[name] = getattr(fault, name)
        if fault.retry_after_ms is not None:
            data["retry_after_ms"] = fault.retry_after_ms
        for f in fields(self.pattern):
            value = getattr(self.pattern, f.name)
            if value not in (None, ()):
                data[f.name] = list(value) if isinstance(value, tuple) else value
        return data


# ---------------------------------------------------------------- reading fault specs


def parse_fault(
    reader: SpecReader, container: Any, key: Any, *, fault_id: str, source: str, where: str = "in fault"
) -> Any:
    """A FaultRule from `container[key]`: a kind name (`reset`) or a mapping; INVALID when it is wrong."""
    value = container[key]
    if isinstance(value, str):
        kind = KINDS.get(value)
        if kind is None or kind.value not in ("flag", "status_or_flag"):
            flags = [k.name for k in KINDS.values() if k.value in ("flag", "status_or_flag")]
            hint = suggestion(value, FAULT_KINDS)
            return reader.error(
                container, key, f"a fault written as a word must be {words(flags)}, got {shown(value)}{hint}"
            )
        return FaultRule(fault_id, Fault(value), Pattern(), source)
    if not isinstance(value, Mapping):
        return reader.error(container, key, f"a fault must be a kind name or a mapping, got {shown(value)}")
    return parse_fault_mapping(reader, value, fault_id=fault_id, source=source, where=where, owner=(container, key))


def parse_fault_mapping(
    reader: SpecReader,
    data: Mapping[str, Any],
    *,
    fault_id: str,
    source: str,
    where: str = "in fault",
    owner: tuple[Any, Any] | None = None,
) -> Any:
    ok = reader.keys(data, FAULT_KEYS, where)
    kinds = [k for k in FAULT_KINDS if k in data]
    if not kinds and not ok:  # a misspelt kind: its "did you mean" says it all
        return INVALID
    if len(kinds) != 1:
        found = f", found {' and '.join(kinds)}" if kinds else ""
        container, key = owner or (data, None)
        return reader.error(container, key, f"a fault needs exactly one kind: {words(FAULT_KINDS)}{found}")
    kind = KINDS[kinds[0]]
    value = _kind_value(reader, data, kind)
    for option in FAULT_OPTIONS:
        if option in data and option not in kind.options:
            reader.error(data, option, f"'{option}' does not apply to a {kind.name} fault", on_key=True)
            ok = False
    options = _options(reader, data, kind)
    pattern = parse_pattern(reader, data)
    if not ok or INVALID in (value, options, pattern):
        return INVALID
    return FaultRule(fault_id, Fault(kind.name, value, **options), pattern, source)


def _kind_value(reader: SpecReader, data: Mapping[str, Any], kind: Kind) -> Any:
    name, raw = kind.name, data[kind.name]
    if kind.value == "flag":
        if raw is True:
            return None
        return reader.error(data, name, f"'{name}' must be true, got {shown(raw)}")
    if kind.value == "status_or_flag" and raw is True:
        return None
    if kind.value in ("status", "status_or_flag"):
        status = reader.integer(data, name, 400, 599)
        return INVALID if status is INVALID else float(status)
    if kind.value == "count":
        count = reader.integer(data, name, low=0)
        return INVALID if count is INVALID else float(count)
    ms = reader.number(data, name, low=0, unit=" (milliseconds)")
    return INVALID if ms is INVALID else float(ms)


def _options(reader: SpecReader, data: Mapping[str, Any], kind: Kind) -> Any:
    out: dict[str, Any] = {}
    if "after" in data and "after" in kind.options:
        out["after"] = reader.integer(data, "after", low=0)
    if "retry_after" in data and "retry_after_ms" in data:
        return reader.error(data, "retry_after_ms", "give either 'retry_after' or 'retry_after_ms', not both")
    if "retry_after" in data and "retry_after" in kind.options:
        seconds = reader.number(data, "retry_after", low=0, unit=" (seconds)")
        out["retry_after_ms"] = INVALID if seconds is INVALID else seconds * 1000.0
    if "retry_after_ms" in data and "retry_after_ms" in kind.options:
        ms = reader.number(data, "retry_after_ms", low=0, unit=" (milliseconds)")
        out["retry_after_ms"] = INVALID if ms is INVALID else float(ms)
    if "should_retry" in data and "should_retry" in kind.options:
        out["should_retry"] = reader.boolean(data, "should_retry")
    if "message" in data and "message" in kind.options:
        out["message"] = reader.text(data, "message")
    if "bytes" in data and "bytes" in kind.options:
        out["bytes"] = reader.integer(data, "bytes", low=0)
    return INVALID if INVALID in out.values() else out


def parse_pattern(reader: SpecReader, data: Mapping[str, Any]) -> Any:
    out: dict[str, Any] = {}
    if "probability" in data:
        out["probability"] = reader.number(data, "probability", low=0, high=1)
    for name in ("first", "every"):
        if name in data:
            out[name] = reader.integer(data, name, low=1)
    if "window" in data:
        out["window"] = _window(reader, data)
    if "model" in data:
        out["model"] = reader.texts(data, "model")
    for name in ("key", "test_id"):
        if name in data:
            out[name] = reader.text(data, name)
    return INVALID if INVALID in out.values() else Pattern(**out)


def _window(reader: SpecReader, data: Mapping[str, Any]) -> Any:
    value = data["window"]
    what = "'window' must be [from, to]: seconds of the run, from < to"
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(is_number(v) and v >= 0 for v in value)):
        return reader.error(data, "window", f"{what}, got {shown(value)}")
    if value[0] >= value[1]:
        return reader.error(data, "window", f"{what}, got [{value[0]:g}, {value[1]:g}]")
    return (float(value[0]), float(value[1]))


def header_to_mapping(text: str) -> dict[str, Any]:
    """`stall=2000; after=3` → {"stall": 2000, "after": 3}; a bare word is true; `window=5-10` is a list."""
    data: dict[str, Any] = {}
    for part in text.split(";"):
        name, equals, raw = part.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if not equals:
            data[name] = True
        elif name == "window" and "-" in raw.strip()[1:]:
            low, _, high = raw.strip().partition("-")
            data[name] = [header_value(low), header_value(high)]
        elif name == "model":
            data[name] = [m.strip() for m in raw.split(",") if m.strip()]
        else:
            data[name] = header_value(raw)
    return data


def parse_fault_json(body: Any, *, fault_id: str, source: str = "runtime") -> tuple[FaultRule | None, list[str]]:
    """A fault from a JSON body (the control API): the rule, or the problems with it."""
    collected = Collected()
    if not isinstance(body, Mapping):
        return None, [f"the body must be a JSON object describing a fault, got {shown(body)}"]
    rule = parse_fault_mapping(SpecReader(collected), body, fault_id=fault_id, source=source)
    return (None, collected.messages) if rule is INVALID else (rule, [])


# ---------------------------------------------------------------- the book of faults


class FaultBook:
    """Run-time faults (control API); the counters and draws of every fault; what each request was given."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.runtime: dict[str, FaultRule] = {}
        self.started = time.monotonic()
        self.injected: dict[int, str] = {}  # journal entry id → label of the fault it got
        self._counts: dict[tuple[str, str], int] = {}
        self._rngs: dict[tuple[str, str], random.Random] = {}
        self._headers: dict[str, FaultRule] = {}
        self._next_id = 1
        self._lock = threading.Lock()

    # run-time faults
    def new_id(self) -> str:
        with self._lock:
            fault_id = f"fault_{self._next_id}"
            self._next_id += 1
            return fault_id

    def add(self, rule: FaultRule) -> None:
        self.runtime[rule.id] = rule

    def remove(self, fault_id: str) -> bool:
        return self.runtime.pop(fault_id, None) is not None

    def clear(self) -> None:
        self.runtime.clear()

    def listed(self) -> list[FaultRule]:
        return list(self.runtime.values())

    # choosing
    def from_header(self, headers: Mapping[str, str]) -> FaultRule | None:
        """The request's own fault; ApiError 400 naming the header when it is wrong."""
        text = headers.get(FAULT_HEADER)
        if text is None:
            return None
        text = text.strip()
        rule = self._headers.get(text)
        if rule is None:
            collected = Collected()
            data = header_to_mapping(text)
            rule = parse_fault_mapping(SpecReader(collected), data, fault_id=f"header:{text}", source="header")
            if rule is INVALID:
                problem = collected.messages[0] if collected.messages else "it is empty"
                problem += "" if problem.endswith((".", "?")) else "."
                raise ApiError(400, f"Invalid header '{FAULT_HEADER}': {problem}", param=FAULT_HEADER)
            if len(self._headers) > 1000:
                self._headers.clear()
            self._headers[text] = rule
        return rule

    def pick(self, candidates: Iterable[FaultRule | None], who: Who) -> FaultRule | None:
        """The first candidate that fires; every candidate that applies counts this call."""
        chosen = None
        elapsed = time.monotonic() - self.started
        with self._lock:
            for rule in candidates:
                if rule is None or not rule.applies_to(who):
                    continue
                slot = (rule.id, who.test_id)
                count = self._counts.pop(slot, 0)  # popped and put back: the least recently used come first
                self._counts[slot] = count + 1
                rng = self._rngs.pop(slot, None)
                if rng is None and rule.pattern.probability is not None:  # ~3 KB each: only when a draw is needed
                    rng = random.Random(f"{self.seed}|{rule.id}|{who.test_id}")
                if rng is not None:
                    self._rngs[slot] = rng
                if rule.pattern.fires(count, rng, elapsed) and chosen is None:
                    chosen = rule
            while len(self._counts) > MAX_SLOTS:  # test ids and header texts without end: forget the oldest
                oldest = next(iter(self._counts))
                del self._counts[oldest]
                self._rngs.pop(oldest, None)
        return chosen

    def before_reply(
        self, header: FaultRule | None, who: Who, background: Iterable[FaultRule] = ()
    ) -> FaultRule | None:
        """Most specific first: the request's header, then run-time faults, then the scenarios' background."""
        return self.pick([header, *self.runtime.values(), *background], who)

    def record(self, entry_id: int | None, label: str) -> None:
        """Note what was injected into a journaled request, for the resilience report (as long as the journal)."""
        if entry_id is None:
            return
        self.injected[entry_id] = label
        if len(self.injected) > INJECTED_KEPT:
            del self.injected[next(iter(self.injected))]

    def reset(self, test_id: str | None = None) -> None:
        with self._lock:
            if test_id is None:
                self._counts.clear()
                self._rngs.clear()
                self.injected.clear()
                self.started = time.monotonic()
            else:
                for slot in [s for s in self._counts if s[1] == test_id]:
                    self._counts.pop(slot, None)
                    self._rngs.pop(slot, None)
