"""Fault rules: how a fault is written, and when it fires.

A fault is one kind (emulator/faults/kinds.py: an HTTP error, a transport fault or a mid-stream fault) with
its options, and a pattern that says when it fires (a probability, the first N calls, every Nth call, a window
of the run, only some models, keys or test ids). The same mapping is written in a scenario (`fault:` on a rule
or a sequence step, `settings.faults`), sent to the control API as JSON, or given in one request's
`x-emulator-fault` header (`stall=2000; after=3`). emulator/faults/book.py keeps the counters and draws.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from emulator.exchange import Exchange
from emulator.faults.kinds import FAULT_KINDS, KINDS, Fault, Kind
from emulator.names import TEST_ID_HEADER
from emulator.specparse import INVALID, Collected, SpecReader, header_value, is_number, shown, suggestion, words

FAULT_OPTIONS = ("after", "retry_after", "retry_after_ms", "should_retry", "message", "bytes")
FAULT_PATTERNS = ("probability", "first", "every", "window", "model", "key", "test_id")
FAULT_KEYS = FAULT_KINDS + FAULT_OPTIONS + FAULT_PATTERNS
WORD_VALUES = ("flag", "status_or_flag", "way_or_flag")  # the kinds a fault may be written as, by name alone


@dataclass(frozen=True)
class Who:
    """What a pattern's filters look at."""

    model: str
    requested_model: str
    key: str
    test_id: str
    stream: bool
    offers_tools: bool = False
    json_format: bool = False  # the request asks for JSON (`json_object` / `json_schema`)
    earlier_calls: bool = False  # the conversation holds an assistant tool call

    @classmethod
    def of(cls, exchange: Exchange) -> Who:
        return cls(
            exchange.model,
            exchange.requested_model,
            exchange.api_key,
            exchange.headers.get(TEST_ID_HEADER, ""),
            exchange.stream,
            bool(exchange.tools),
            exchange.response_format.type != "text",
            any(m.tool_calls for m in exchange.messages),
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
        if not self.fault.spec.fits(who.stream, who.offers_tools, who.json_format, who.earlier_calls):
            return False
        return self.pattern.admits(who)

    def as_dict(self) -> dict[str, Any]:
        fault = self.fault
        data: dict[str, Any] = {"id": self.id, "source": self.source, "label": fault.label}
        data[fault.kind] = fault.way or (True if fault.spec.value == "flag" or fault.value is None else fault.value)
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
        if kind is None or kind.value not in WORD_VALUES:
            flags = [k.name for k in KINDS.values() if k.value in WORD_VALUES]
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
    if isinstance(value, str):  # a behaviour kind's way
        return FaultRule(fault_id, Fault(kind.name, way=value, **options), pattern, source)
    return FaultRule(fault_id, Fault(kind.name, value, **options), pattern, source)


def _kind_value(reader: SpecReader, data: Mapping[str, Any], kind: Kind) -> Any:
    name, raw = kind.name, data[kind.name]
    if kind.value == "flag":
        if raw is True:
            return None
        return reader.error(data, name, f"'{name}' must be true, got {shown(raw)}")
    if kind.value in ("status_or_flag", "way_or_flag") and raw is True:
        return None
    if kind.value == "way_or_flag":
        ways: tuple[str, ...] = getattr(kind, "ways", ())
        if raw in ways:
            return raw
        hint = suggestion(raw, ways) if isinstance(raw, str) else ""
        return reader.error(data, name, f"'{name}' must be true or one of {words(ways)}, got {shown(raw)}{hint}")
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
