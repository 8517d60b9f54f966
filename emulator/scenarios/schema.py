"""The scenario file format: its key tables (also checked against the JSON Schema) and the typed rule objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from emulator.faults.rules import FAULT_KEYS, FaultRule
from emulator.loop_guard import LOOP_GUARD_KEYS, LoopGuard
from emulator.protocols.registry import PROTOCOLS
from emulator.ratelimit import RATE_LIMIT_KEYS, RateLimits
from emulator.scenarios.actions import Action
from emulator.scenarios.matchers import Condition
from emulator.scenarios.problems import Pos
from emulator.scenarios.textmatch import TextKind
from emulator.timing import CHUNK_UNITS, JITTER_KINDS, JITTER_PARAMS, TIMING_KEYS, TimingSpec

# Allowed keys per kind of mapping. The names are the `$defs` of emulator/data/scenario.schema.json.
KEYS: dict[str, tuple[str, ...]] = {
    "scenario": ("name", "description", "models", "settings", "rules"),
    "model": ("id", "serves", "reasoning", "owned_by"),
    "settings": (
        "fallback",
        "locale",
        "sentences",
        "generate",
        "timing",
        "time_scale",
        "faults",
        "rate_limits",
        "loop_guard",
        "profile",
        "api_keys",
    ),
    "generate": ("tool_calls",),
    "rule": ("name", "when", "reply", "fail", "sequence", "then", "fault", "timing"),
    "when": (
        "model",
        "endpoint",
        "last_user",
        "system",
        "tools",
        "tool_result",
        "turn",
        "headers",
        "body",
        "messages",
        "all",
        "any",
        "not",
    ),
    "textMatcher": ("equals", "contains", "starts_with", "ends_with", "regex", "ignore_case"),
    "valueMatcher": ("equals", "contains", "starts_with", "ends_with", "regex", "ignore_case", "exists"),
    "toolsMatcher": ("includes", "none"),
    "toolResultMatcher": ("name", "call_id", "content"),
    "jsonContent": ("json",),
    "range": ("min", "max"),
    "messagesMatcher": ("count",),
    "reply": ("content", "reasoning", "tool_calls", "refusal", "finish_reason", "usage", "choices"),
    "choice": ("content", "reasoning", "tool_calls", "refusal", "finish_reason"),
    "toolCall": ("name", "arguments", "id"),
    "usage": ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens"),
    "fail": ("status", "message", "type", "code", "param", "headers"),
    "step": ("reply", "fail", "fault", "timing"),
    "timing": TIMING_KEYS,
    "jitter": JITTER_KINDS,
    **{kind: params for kind, params in JITTER_PARAMS.items()},  # uniform, normal, lognormal
    "chunk": CHUNK_UNITS,
    "fault": FAULT_KEYS,
    "rateLimits": RATE_LIMIT_KEYS,
    "loopGuard": LOOP_GUARD_KEYS,
}
TEXT_KINDS: tuple[TextKind, ...] = ("equals", "contains", "starts_with", "ends_with", "regex")
ANSWERS = ("reply", "fail", "sequence")  # a rule has one of these …
ACTIONS = (*ANSWERS, "fault")  # … or only a fault (its reply is then generated)

# Allowed words per enumerated value.
FALLBACKS = ("generate", "error")
GENERATED_TOOL_CALLS = ("forced", "auto")  # settings.generate.tool_calls: only when the request forces one, or also
# the tools the user's words mention under tool_choice auto
ENDPOINTS = PROTOCOLS  # `endpoint:` names a protocol (emulator/protocols/registry.py)
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")
THEN_MODES = ("repeat_last", "cycle")
PRESENCE = ("absent", "present")  # tool_result and header values

DEFAULT_SENTENCES = (1, 3)
MAX_SENTENCES = 100


@dataclass(frozen=True)
class DeclaredModel:
    id: str
    serves: str | None = None
    reasoning: bool = False
    owned_by: str | None = None


@dataclass(frozen=True)
class ScenarioSettings:
    """None means "not set here": the first scenario that sets a value wins."""

    fallback: str | None = None
    locale: str | None = None
    sentences: tuple[int, int] | None = None
    tool_calls: str | None = None  # settings.generate.tool_calls: when a generated reply calls tools
    timing: TimingSpec | None = None
    faults: tuple[FaultRule, ...] = ()  # background faults: every scenario's apply
    rate_limits: RateLimits | None = None
    loop_guard: LoopGuard | None = None
    profile: str | None = None  # the gateway to be, read when the server starts (a --profile flag wins)
    api_keys: tuple[str, ...] = ()  # keys accepted; every scenario's and the --api-key flags' together


@dataclass(frozen=True)
class Rule:
    name: str
    key: str  # unique per file and position: "<file path>#<n>"; keys the sequence counters
    when: Condition
    action: Action
    file: str = "<string>"
    pos: Pos = Pos()
    unconditional: bool = False  # no `when`, or an empty one
    when_signature: str = ""  # canonical form of `when`, to spot exact duplicates
    seed: str = ""  # "<file stem>#<n>": seeds call ids and generated text, whatever folder the file is in


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path | None
    description: str = ""
    models: tuple[DeclaredModel, ...] = ()
    settings: ScenarioSettings = field(default_factory=ScenarioSettings)
    rules: tuple[Rule, ...] = ()
    source: Mapping[str, str] | None = field(default=None, compare=False, repr=False)  # a control API load's
    # YAML and the names it was read under: what replicas sharing state rebuild it from (emulator/state/)
