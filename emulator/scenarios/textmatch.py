"""Tests on single values: text matchers (equals / contains / starts_with / ends_with / regex) and field tests."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from emulator.scenarios.regexes import MatchTimeout, Regex

TextKind = Literal["equals", "contains", "starts_with", "ends_with", "regex"]
_VERBS: dict[str, tuple[str, str]] = {  # kind → (describe verb, negated verb for explain)
    "equals": ("equals", "does not equal"),
    "contains": ("contains", "does not contain"),
    "starts_with": ("starts with", "does not start with"),
    "ends_with": ("ends with", "does not end with"),
    "regex": ("matches", "does not match"),
}
MISSING: Any = object()  # a path that leads nowhere
_INDEX = re.compile(r"-?[0-9]{1,18}")  # a longer run of digits indexes no list (and int() refuses 4,300 and more)
MAX_INDEX_DIGITS = 18


def segment_problem(segment: str) -> str | None:
    """Why a path segment can never lead anywhere: a number too long to index any list."""
    if len(segment.lstrip("-")) > MAX_INDEX_DIGITS and segment.lstrip("-").isdigit():
        return f"the list index {segment[:20]}… has more than {MAX_INDEX_DIGITS} digits and can never match"
    return None


def show(value: Any, limit: int = 60) -> str:
    """A short, quoted rendering of a value for explanations."""
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 1] + "…"
        return repr(text)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else repr(value)


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values where true ≠ 1 (Python says otherwise)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and left == right


def dig(value: Any, path: tuple[str, ...]) -> Any:
    """Follow a dotted path through dicts and lists (numeric segments index lists, -1 is the last)."""
    for segment in path:
        if isinstance(value, Mapping):
            value = value.get(segment, MISSING)
        elif isinstance(value, list) and _INDEX.fullmatch(segment):
            index = int(segment)
            value = value[index] if -len(value) <= index < len(value) else MISSING
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


# ---------------------------------------------------------------- text matchers


@dataclass(frozen=True)
class TextMatcher:
    kind: TextKind
    values: tuple[str, ...]  # `contains` may list several that must all appear
    ignore_case: bool = False
    pattern: Regex | None = field(default=None, compare=False)
    folded: tuple[str, ...] = field(default=(), compare=False)  # values, case-folded when ignoring case

    @classmethod
    def build(cls, kind: TextKind, values: tuple[str, ...], ignore_case: bool = False) -> TextMatcher:
        """Raises RegexError for a regex RE2 does not accept."""
        pattern = Regex(values[0], ignore_case) if kind == "regex" else None
        folded = tuple(v.casefold() for v in values) if ignore_case else values
        return cls(kind, values, ignore_case, pattern, folded)

    def matches(self, text: str) -> bool:
        if self.pattern is not None:
            return self.pattern.found(text)
        values = self.folded
        if self.ignore_case:
            text = text.casefold()
        if self.kind == "equals":
            return text == values[0]
        if self.kind == "contains":
            return all(v in text for v in values)
        if self.kind == "starts_with":
            return text.startswith(values[0])
        return text.endswith(values[0])

    def captures(self, text: str) -> dict[str, str]:
        """Regex groups by number (0 is the whole match) and by name."""
        try:
            found = self.pattern.search(text) if self.pattern is not None else None
        except MatchTimeout:
            return {}
        if found is None:
            return {}
        groups = {str(i): g or "" for i, g in enumerate([found.group(0), *found.groups()])}
        groups.update({name: g or "" for name, g in found.groupdict().items()})
        return groups

    def _operand(self) -> str:
        if self.kind == "regex":
            return f"/{self.values[0]}/"
        return " and ".join(repr(v) for v in self.values)

    def describe(self) -> str:
        suffix = " (ignoring case)" if self.ignore_case else ""
        return f"{_VERBS[self.kind][0]} {self._operand()}{suffix}"

    def explain(self, subject: str, text: str) -> str | None:
        try:
            if self.matches(text):
                return None
        except MatchTimeout as timeout:
            return f"{subject} was not tried against {self._operand()}: {timeout}"
        suffix = " (ignoring case)" if self.ignore_case else ""
        return f"{subject} {show(text)} {_VERBS[self.kind][1]} {self._operand()}{suffix}"


# ---------------------------------------------------------------- value tests (body, headers, JSON fields)


@dataclass(frozen=True)
class ValueTest:
    """A test on one value found by path: a literal to equal, a text matcher, or presence."""

    literal: Any = None
    text: TextMatcher | None = None
    exists: bool | None = None

    def holds(self, value: Any) -> bool:
        if self.exists is not None:
            return (value is not MISSING) == self.exists
        if value is MISSING:
            return False
        if self.text is not None:
            return isinstance(value, str) and self.text.matches(value)
        return json_equal(value, self.literal)

    def describe(self, subject: str) -> str:
        if self.exists is not None:
            return f"{subject} is {'present' if self.exists else 'absent'}"
        if self.text is not None:
            return f"{subject} {self.text.describe()}"
        return f"{subject} is {show(self.literal)}"

    def explain(self, subject: str, value: Any) -> str | None:
        if self.holds(value):
            return None
        if self.exists is not None:
            return f"{subject} is {'missing' if self.exists else 'present'}, expected it to be " + (
                "present" if self.exists else "absent"
            )
        if value is MISSING:
            return f"{subject} is missing"
        if self.text is not None:
            if not isinstance(value, str):
                return f"{subject} is {show(value)}, not text that {self.text.describe()}"
            return self.text.explain(subject, value)
        return f"{subject} is {show(value)}, expected {show(self.literal)}"


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return MISSING
