"""Timing plans: when each event of a stream is sent, and how long a non-streamed reply takes.

A TimingSpec is what one layer sets — flags, a scenario's `settings.timing`, a rule, a sequence step, the
request's `x-emulator-*` headers — and the most specific layer wins field by field. A Plan is the resolved
spec of one request: offsets from the stream start, with seeded jitter.

Offsets: events before the first one that carries tokens (a role chunk, `message_start`) go out at once;
the first token event waits the time to first token; each later token event waits the chunk delay (or its
tokens / tokens_per_second); events without tokens (a finish chunk, `[DONE]`) follow the one before at once.
Jitter is added to every wait (the time to first token included); a wait is never below 0.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from emulator.errors import ApiError
from emulator.specparse import INVALID, Collected, Invalid, SpecReader, is_number, shown
from emulator.sse import SseEvent
from emulator.tokens import split_tokens

TIMING_KEYS = (
    "ttft_ms",
    "chunk_delay_ms",
    "tokens_per_second",
    "jitter",
    "chunk",
    "latency_ms",
    "time_scale",
    "scale_retry_after",
)
MAX_TIME_SCALE = 1000.0
JITTER_PARAMS: dict[str, tuple[str, str]] = {
    "uniform": ("low", "high"),
    "normal": ("mean", "stddev"),
    "lognormal": ("mu", "sigma"),
}
JITTER_KINDS = tuple(JITTER_PARAMS)
CHUNK_UNITS = ("tokens", "chars")
MAX_WAIT_MS = 3_600_000.0  # one wait never exceeds an hour, whatever a distribution draws
LOGNORMAL_MU_MAX = 20.0  # e**20 ms is already about 5.6 days
LOGNORMAL_SIGMA_MAX = 10.0

HEADERS: dict[str, str] = {
    "x-emulator-ttft-ms": "ttft_ms",
    "x-emulator-chunk-delay-ms": "chunk_delay_ms",
    "x-emulator-tokens-per-second": "tokens_per_second",
    "x-emulator-jitter": "jitter",
    "x-emulator-chunk-size": "chunk",
    "x-emulator-latency-ms": "latency_ms",
    "x-emulator-time-scale": "time_scale",
    "x-emulator-scale-retry-after": "scale_retry_after",
}


@dataclass(frozen=True)
class Jitter:
    """Milliseconds added to each wait: uniform(low, high), normal(mean, stddev), lognormal(mu, sigma) or none."""

    kind: str  # uniform | normal | lognormal | none
    a: float = 0.0
    b: float = 0.0

    def sample(self, rng: random.Random) -> float:
        try:
            if self.kind == "uniform":
                return rng.uniform(self.a, self.b)
            if self.kind == "normal":
                return rng.gauss(self.a, self.b)
            if self.kind == "lognormal":
                return rng.lognormvariate(self.a, self.b)
        except OverflowError:
            return MAX_WAIT_MS
        return 0.0

    def __str__(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}({self.a:g}, {self.b:g})"


NO_JITTER = Jitter("none")


@dataclass(frozen=True)
class Chunking:
    """How streamed text is cut: `size` tokens or characters per chunk, or explicit `pieces`."""

    unit: str  # tokens | chars | pieces
    size: int = 1
    pieces: tuple[str, ...] = ()

    def split(self, text: str) -> list[str]:
        if not text:
            return []
        if self.unit == "tokens":
            tokens = split_tokens(text)
            return (
                tokens
                if self.size == 1
                else ["".join(tokens[i : i + self.size]) for i in range(0, len(tokens), self.size)]
            )
        if self.unit == "chars":
            return [text[i : i + self.size] for i in range(0, len(text), self.size)]
        if "".join(self.pieces) == text:
            return list(self.pieces)
        return _cut_by_lengths(text, [len(p) for p in self.pieces])


def _cut_by_lengths(text: str, lengths: list[int]) -> list[str]:
    """Text that is not the pieces' concatenation is cut at the pieces' lengths, over and over."""
    out, at, index = [], 0, 0
    while at < len(text):
        size = lengths[index % len(lengths)]
        out.append(text[at : at + size])
        at += size
        index += 1
    return out


@dataclass(frozen=True)
class TimingSpec:
    """One layer's timing; None means "not set here". `chunk_delay_ms` and `tokens_per_second` are one choice."""

    ttft_ms: float | None = None
    chunk_delay_ms: float | None = None
    tokens_per_second: float | None = None
    jitter: Jitter | None = None
    chunk: Chunking | None = None
    latency_ms: float | None = None
    time_scale: float | None = None  # every planned wait is multiplied by it when the plan is carried out
    scale_retry_after: bool | None = None  # the retry-after values an error fault sends are scaled too

    @property
    def retry_after_scale(self) -> float:
        """What an error fault's retry-after values are multiplied by: 1 unless the scale is asked for them."""
        return self.time_scale if self.scale_retry_after and self.time_scale is not None else 1.0

    def over(self, base: TimingSpec | None) -> TimingSpec:
        """This layer over a less specific one: what this layer sets wins."""
        if base is None or base.is_empty:
            return self
        if self.is_empty:
            return base
        merged = {
            name: getattr(self, name) if getattr(self, name) is not None else getattr(base, name) for name in _NAMES
        }
        if self.chunk_delay_ms is not None or self.tokens_per_second is not None:  # the pace is one setting
            merged["chunk_delay_ms"], merged["tokens_per_second"] = self.chunk_delay_ms, self.tokens_per_second
        return TimingSpec(**merged)

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in _NAMES)

    def plan(self, seed_material: Callable[[], str]) -> Plan:
        """The plan of one request; `seed_material` is only called when there is jitter to draw."""
        if self is NO_TIMING:
            return NO_PLAN  # nothing set anywhere: the plan every request without timing shares (never changed)
        jitter = self.jitter if self.jitter is not None and self.jitter.kind != "none" else None
        rng = random.Random(seed_material()) if jitter is not None else None
        return Plan(
            ttft_ms=self.ttft_ms or 0.0,
            chunk_delay_ms=self.chunk_delay_ms,
            tokens_per_second=self.tokens_per_second,
            jitter=jitter,
            rng=rng,
            chunk=self.chunk,
            latency_ms=self.latency_ms or 0.0,
            scale=self.time_scale if self.time_scale is not None else 1.0,
        )


NO_TIMING = TimingSpec()
_NAMES = tuple(f.name for f in fields(TimingSpec))
NO_PLAN: Plan  # set below Plan


@dataclass
class Plan:
    ttft_ms: float = 0.0
    chunk_delay_ms: float | None = None
    tokens_per_second: float | None = None
    jitter: Jitter | None = None
    rng: random.Random | None = None
    chunk: Chunking | None = None
    latency_ms: float = 0.0
    scale: float = 1.0  # the time scale: waits are planned as the scenario says and carried out this much longer

    @property
    def instant(self) -> bool:
        """Nothing to wait for: the stream can be written straight through."""
        return not (self.ttft_ms or self.chunk_delay_ms or self.tokens_per_second or self.jitter)

    def chunker(self) -> Callable[[str], list[str]] | None:
        return self.chunk.split if self.chunk is not None else None

    def _wait_ms(self, base: float) -> float:
        if self.jitter is not None and self.rng is not None:
            base += self.jitter.sample(self.rng)
        return min(max(base, 0.0), MAX_WAIT_MS)

    def _pace_ms(self, tokens: int) -> float:
        if self.chunk_delay_ms is not None:
            return self.chunk_delay_ms
        if self.tokens_per_second:
            return tokens * 1000.0 / self.tokens_per_second
        return 0.0

    def schedule(self, events: Iterable[SseEvent]) -> Iterator[tuple[SseEvent, float]]:
        """Each event with its offset from the stream start, in seconds."""
        if self.instant:
            for event in events:
                yield event, 0.0
            return
        at_ms = 0.0
        started = False
        for event in events:
            if event.tokens > 0:
                at_ms += self._wait_ms(self._pace_ms(event.tokens) if started else self.ttft_ms)
                started = True
            yield event, at_ms / 1000.0


NO_PLAN = Plan()


def seed_material(seed: int, test_id: str, body: Any) -> str:
    """The same request (body and test id) under the same seed draws the same jitter."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()
    return f"{seed}|{test_id}|{digest[:32]}"


# ---------------------------------------------------------------- reading specs


def parse_timing(reader: SpecReader, data: Mapping[str, Any], where: str = "in timing") -> Any:
    """A TimingSpec from a mapping (scenario `timing:`, a header set, a JSON body); INVALID when it is wrong."""
    reader.keys(data, TIMING_KEYS, where)
    values: dict[str, Any] = {}
    for key in ("ttft_ms", "chunk_delay_ms", "latency_ms"):
        if key in data:
            values[key] = reader.number(data, key, low=0, unit=" (milliseconds)")
    if "tokens_per_second" in data:
        values["tokens_per_second"] = reader.number(data, "tokens_per_second", low=0, above=True)
    if "time_scale" in data:
        values["time_scale"] = reader.number(data, "time_scale", low=0, high=MAX_TIME_SCALE, above=True)
    if "scale_retry_after" in data:
        values["scale_retry_after"] = reader.boolean(data, "scale_retry_after")
    if "chunk_delay_ms" in data and "tokens_per_second" in data:
        reader.error(data, "tokens_per_second", "give either 'chunk_delay_ms' or 'tokens_per_second', not both")
        values["tokens_per_second"] = INVALID
    if "jitter" in data:
        values["jitter"] = parse_jitter(reader, data, "jitter")
    if "chunk" in data:
        values["chunk"] = parse_chunk(reader, data, "chunk")
    if INVALID in values.values() or any(key not in TIMING_KEYS for key in data):
        return INVALID
    fields: dict[str, Any] = {key: float(v) if is_number(v) else v for key, v in values.items()}
    return TimingSpec(**fields)


def parse_jitter(reader: SpecReader, container: Mapping[str, Any], key: str) -> Any:
    value = container[key]
    if value == "none":
        return NO_JITTER
    hint = " with one of uniform, normal or lognormal (or the word none)"
    if not isinstance(value, Mapping):
        return reader.error(container, key, f"'{key}' must be a mapping{hint}, got {shown(value)}")
    known = reader.keys(value, JITTER_KINDS, "in jitter")
    given = [kind for kind in JITTER_KINDS if kind in value]
    if not given and not known:
        return INVALID
    if len(given) != 1:
        found = f", found {' and '.join(given)}" if given else ""
        return reader.error(container, key, f"'{key}' needs exactly one of uniform, normal or lognormal{found}")
    kind = given[0]
    params = reader.mapping(value, kind, f"'{kind}'", f" with {' and '.join(JITTER_PARAMS[kind])}")
    if params is None:
        return INVALID
    reader.keys(params, JITTER_PARAMS[kind], f"in {kind}")
    first, second = JITTER_PARAMS[kind]
    missing = [name for name in (first, second) if name not in params]
    if missing:
        return reader.error(value, kind, f"'{kind}' needs {' and '.join(repr(m) for m in missing)}")
    if kind == "uniform":
        a, b = reader.number(params, first, low=None), reader.number(params, second, low=None)
        if not isinstance(a, Invalid) and not isinstance(b, Invalid) and a > b:
            return reader.error(params, second, f"'high' ({b:g}) must not be below 'low' ({a:g})")
    elif kind == "normal":
        a, b = reader.number(params, first, low=None), reader.number(params, second, low=0)
    else:
        a = reader.number(params, first, low=None, high=LOGNORMAL_MU_MAX)
        b = reader.number(params, second, low=0, high=LOGNORMAL_SIGMA_MAX)
    if isinstance(a, Invalid) or isinstance(b, Invalid) or any(name not in JITTER_PARAMS[kind] for name in params):
        return INVALID
    return Jitter(kind, float(a), float(b))


def parse_chunk(reader: SpecReader, container: Mapping[str, Any], key: str) -> Any:
    value = container[key]
    if isinstance(value, list | tuple):
        if value and all(isinstance(piece, str) and piece for piece in value):
            return Chunking("pieces", pieces=tuple(value))
        return reader.error(container, key, f"'{key}' as a list must hold non-empty strings, got {shown(value)}")
    if not isinstance(value, Mapping):
        return reader.error(
            container, key, f"'{key}' must be {{tokens: N}}, {{chars: N}} or a list of strings, got {shown(value)}"
        )
    known = reader.keys(value, CHUNK_UNITS, "in chunk")
    given = [unit for unit in CHUNK_UNITS if unit in value]
    if not given and not known:
        return INVALID
    if len(given) != 1:
        return reader.error(container, key, f"'{key}' needs exactly one of tokens or chars")
    size = reader.integer(value, given[0], low=1)
    if size is INVALID or len(value) != 1:
        return INVALID
    return Chunking(given[0], size=size)


# ---------------------------------------------------------------- request headers

_JITTER_HEADER = re.compile(r"^\s*(uniform|normal|lognormal)\s*\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)\s*$", re.I)
_CHUNK_HEADER = re.compile(r"^\s*(\d+)\s*(tokens?|chars?|characters?)?\s*$", re.I)
HEADER_FORMS = {
    "ttft_ms": "a number of milliseconds ≥ 0",
    "chunk_delay_ms": "a number of milliseconds ≥ 0",
    "tokens_per_second": "a number > 0",
    "latency_ms": "a number of milliseconds ≥ 0",
    "time_scale": f"a number > 0 and ≤ {MAX_TIME_SCALE:g}",
    "scale_retry_after": "true or false",
    "jitter": "uniform(low, high), normal(mean, stddev), lognormal(mu, sigma) or none",
    "chunk": "N (tokens), 'N tokens', 'N chars' or a JSON list of strings",
}


class TimingValueError(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def timing_from_headers(headers: Mapping[str, str]) -> TimingSpec | None:
    """The request's own timing from its x-emulator-* headers; ApiError 400 naming the header when one is wrong."""
    given = {name: headers[name] for name in HEADERS if name in headers}
    if not given:
        return None
    try:
        return timing_from_strings({HEADERS[name]: (name, raw) for name, raw in given.items()})
    except TimingValueError as error:
        message = error.message if error.message.endswith((".", "?")) else error.message + "."
        raise ApiError(400, f"Invalid header '{error.name}': {message}", param=error.name) from None


def timing_from_strings(given: Mapping[str, tuple[str, str]]) -> TimingSpec:
    """A TimingSpec from text values (headers, flags): {timing key: (name shown in errors, text)}."""
    if "chunk_delay_ms" in given and "tokens_per_second" in given:
        delay, rate = given["chunk_delay_ms"][0], given["tokens_per_second"][0]
        raise TimingValueError(rate, f"give either {delay} or {rate}, not both")
    spec = NO_TIMING
    for key, (name, raw) in given.items():
        value = _header_to_value(key, raw)
        if value is INVALID:
            raise TimingValueError(name, f"expected {HEADER_FORMS[key]}, got {raw!r}")
        collected = Collected()
        part = parse_timing(SpecReader(collected), {key: value})
        if part is INVALID:
            raise TimingValueError(name, collected.messages[0])
        spec = part.over(spec)
    return spec


def _header_to_value(key: str, raw: str) -> Any:
    text = raw.strip()
    if key == "scale_retry_after":
        return {"true": True, "false": False}.get(text.lower(), INVALID)
    if key == "jitter":
        if text.lower() == "none":
            return "none"
        match = _JITTER_HEADER.match(text)
        if not match:
            return INVALID
        kind = match.group(1).lower()
        numbers = [_number(match.group(2)), _number(match.group(3))]
        if None in numbers:
            return INVALID
        first, second = JITTER_PARAMS[kind]
        return {kind: {first: numbers[0], second: numbers[1]}}
    if key == "chunk":
        if text.startswith("["):
            try:
                pieces = json.loads(text)
            except ValueError:
                return INVALID
            return pieces if isinstance(pieces, list) else INVALID
        match = _CHUNK_HEADER.match(text)
        if not match:
            return INVALID
        unit = "chars" if (match.group(2) or "t").lower().startswith("c") else "tokens"
        return {unit: int(match.group(1))}
    number = _number(text)
    return INVALID if number is None else number


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
