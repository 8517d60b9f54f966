"""Conditions on an Exchange: each says whether it holds (`matches`) and, when not, why (`explain`).

All of them are built once at load time; regexes and globs are compiled then.
"""

from __future__ import annotations

import fnmatch
import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from emulator.exchange import Exchange

TextKind = Literal["equals", "contains", "starts_with", "ends_with", "regex"]
_VERBS: dict[str, tuple[str, str]] = {  # kind → (describe verb, negated verb for explain)
    "equals": ("equals", "does not equal"),
    "contains": ("contains", "does not contain"),
    "starts_with": ("starts with", "does not start with"),
    "ends_with": ("ends with", "does not end with"),
    "regex": ("matches", "does not match"),
}
_MISSING: Any = object()
_INDEX = re.compile(r"-?[0-9]+")


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
        if isinstance(value, dict):
            value = value.get(segment, _MISSING)
        elif isinstance(value, list) and _INDEX.fullmatch(segment):
            index = int(segment)
            value = value[index] if -len(value) <= index < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


# ---------------------------------------------------------------- text matchers


@dataclass(frozen=True)
class TextMatcher:
    kind: TextKind
    values: tuple[str, ...]  # `contains` may list several that must all appear
    ignore_case: bool = False
    pattern: re.Pattern[str] | None = field(default=None, compare=False)
    folded: tuple[str, ...] = field(default=(), compare=False)  # values, case-folded when ignoring case

    @classmethod
    def build(cls, kind: TextKind, values: tuple[str, ...], ignore_case: bool = False) -> TextMatcher:
        """Raises re.error for an invalid regex."""
        pattern = re.compile(values[0], re.IGNORECASE if ignore_case else 0) if kind == "regex" else None
        folded = tuple(v.casefold() for v in values) if ignore_case else values
        return cls(kind, values, ignore_case, pattern, folded)

    def matches(self, text: str) -> bool:
        if self.pattern is not None:
            return self.pattern.search(text) is not None
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
        found = self.pattern.search(text) if self.pattern is not None else None
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
        if self.matches(text):
            return None
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
            return (value is not _MISSING) == self.exists
        if value is _MISSING:
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
        if value is _MISSING:
            return f"{subject} is missing"
        if self.text is not None:
            if not isinstance(value, str):
                return f"{subject} is {show(value)}, not text that {self.text.describe()}"
            return self.text.explain(subject, value)
        return f"{subject} is {show(value)}, expected {show(self.literal)}"


# ---------------------------------------------------------------- conditions


class Condition(ABC):
    @abstractmethod
    def matches(self, exchange: Exchange) -> bool: ...

    @abstractmethod
    def explain(self, exchange: Exchange) -> str | None:
        """Why the condition does not hold, or None when it does."""

    @abstractmethod
    def describe(self) -> str: ...

    def captures(self, exchange: Exchange) -> dict[str, str]:
        """Regex groups of the `last_user` condition, for `{{ match.N }}` templates."""
        return {}


@dataclass(frozen=True)
class ModelIs(Condition):
    """Exact ids or globs; matches the served model or the id the client sent."""

    patterns: tuple[str, ...]
    compiled: tuple[re.Pattern[str], ...] = field(default=(), compare=False)

    @classmethod
    def build(cls, patterns: tuple[str, ...]) -> ModelIs:
        return cls(patterns, tuple(re.compile(fnmatch.translate(p)) for p in patterns))

    def matches(self, exchange: Exchange) -> bool:
        names = {exchange.model, exchange.requested_model or exchange.model}
        return any(p.match(name) for p in self.compiled for name in names)

    def explain(self, exchange: Exchange) -> str | None:
        if self.matches(exchange):
            return None
        requested = exchange.requested_model
        also = f" (requested as {show(requested)})" if requested and requested != exchange.model else ""
        return f"model is {show(exchange.model)}{also}, expected {_one_of(self.patterns)}"

    def describe(self) -> str:
        return f"model is {_one_of(self.patterns)}"


@dataclass(frozen=True)
class EndpointIs(Condition):
    endpoints: tuple[str, ...]

    def matches(self, exchange: Exchange) -> bool:
        return exchange.protocol in self.endpoints

    def explain(self, exchange: Exchange) -> str | None:
        if self.matches(exchange):
            return None
        return f"endpoint is {show(exchange.protocol)}, expected {_one_of(self.endpoints)}"

    def describe(self) -> str:
        return f"endpoint is {_one_of(self.endpoints)}"


@dataclass(frozen=True)
class TextIs(Condition):
    """`last_user` (text of the last user message) or `system` (the joined system prompt)."""

    subject: Literal["last_user", "system"]
    matcher: TextMatcher

    def _text(self, exchange: Exchange) -> str:
        return exchange.last_user_text if self.subject == "last_user" else exchange.system

    def matches(self, exchange: Exchange) -> bool:
        return self.matcher.matches(self._text(exchange))

    def explain(self, exchange: Exchange) -> str | None:
        return self.matcher.explain(self.subject, self._text(exchange))

    def describe(self) -> str:
        return f"{self.subject} {self.matcher.describe()}"

    def captures(self, exchange: Exchange) -> dict[str, str]:
        return self.matcher.captures(self._text(exchange)) if self.subject == "last_user" else {}


@dataclass(frozen=True)
class ToolsOffered(Condition):
    """All `names` are offered; or, with `none`, that no tool (True) or some tool (False) is offered."""

    names: tuple[str, ...] = ()
    none: bool | None = None

    def matches(self, exchange: Exchange) -> bool:
        offered = {tool.name for tool in exchange.tools}
        if self.none is not None:
            return (not offered) == self.none
        return all(name in offered for name in self.names)

    def explain(self, exchange: Exchange) -> str | None:
        if self.matches(exchange):
            return None
        offered_names = [tool.name for tool in exchange.tools]
        offered = ", ".join(offered_names) or "none"
        if self.none is True:
            return f"tools are offered ({offered}), expected none"
        if self.none is False:
            return "no tools are offered, expected some"
        missing = [name for name in self.names if name not in offered_names]
        noun = "tool" if len(missing) == 1 else "tools"
        verb = "is" if len(missing) == 1 else "are"
        return f"{noun} {', '.join(repr(n) for n in missing)} {verb} not offered (offered: {offered})"

    def describe(self) -> str:
        if self.none is not None:
            return "no tools are offered" if self.none else "some tools are offered"
        return f"tools {', '.join(repr(n) for n in self.names)} are offered"


@dataclass(frozen=True)
class JsonFields:
    """`{json: {field.path: value-or-matcher}}`: the text parses as JSON and every field test holds."""

    tests: tuple[tuple[tuple[str, ...], ValueTest], ...]

    def matches(self, text: str) -> bool:
        document = _parse_json(text)
        return document is not _MISSING and all(test.holds(dig(document, path)) for path, test in self.tests)

    def explain(self, subject: str, text: str) -> str | None:
        document = _parse_json(text)
        if document is _MISSING:
            return f"{subject} {show(text)} is not JSON"
        for path, test in self.tests:
            reason = test.explain(f"{subject} field {'.'.join(path)}", dig(document, path))
            if reason:
                return reason
        return None

    def describe(self) -> str:
        return "JSON with " + ", ".join(test.describe(".".join(path)) for path, test in self.tests)


@dataclass(frozen=True)
class ToolResultIs(Condition):
    """`absent`, `present`, or some tool result in the conversation with this name / call id / content."""

    present: bool = True
    name: str | None = None
    call_id: str | None = None
    content: TextMatcher | JsonFields | None = None

    @property
    def _has_details(self) -> bool:
        return self.name is not None or self.call_id is not None or self.content is not None

    def _result_matches(self, result: Any) -> bool:
        return (
            (self.name is None or result.name == self.name)
            and (self.call_id is None or result.call_id == self.call_id)
            and (self.content is None or self.content.matches(result.content))
        )

    def matches(self, exchange: Exchange) -> bool:
        results = exchange.tool_results
        if not self.present:
            return not results
        return any(self._result_matches(r) for r in results) if self._has_details else bool(results)

    def explain(self, exchange: Exchange) -> str | None:
        if self.matches(exchange):
            return None
        results = exchange.tool_results
        if not self.present:
            return f"the conversation has {_count(len(results), 'tool result')}, expected none"
        if not results:
            return "the conversation has no tool result"
        closest = results[-1]
        for result in results:
            if (self.name is None or result.name == self.name) and (
                self.call_id is None or result.call_id == self.call_id
            ):
                closest = result
        if self.name is not None and closest.name != self.name:
            names = ", ".join(show(r.name) for r in results)
            return f"no tool result is named {show(self.name)} (found {names})"
        if self.call_id is not None and closest.call_id != self.call_id:
            ids = ", ".join(show(r.call_id) for r in results)
            return f"no tool result answers call {show(self.call_id)} (found {ids})"
        assert self.content is not None
        return self.content.explain(f"tool result {show(closest.name or closest.call_id)}", closest.content)

    def describe(self) -> str:
        if not self.present:
            return "no tool result"
        details = [f"named {show(self.name)}"] if self.name is not None else []
        if self.call_id is not None:
            details.append(f"answering call {show(self.call_id)}")
        if self.content is not None:
            details.append(f"whose content {self.content.describe()}")
        return "a tool result " + " ".join(details) if details else "a tool result"


@dataclass(frozen=True)
class CountIs(Condition):
    """`turn` (number of user messages) or `messages.count` (number of messages) within [low, high]."""

    subject: Literal["turn", "messages"]
    low: int | None = None
    high: int | None = None

    def _value(self, exchange: Exchange) -> int:
        return exchange.turn if self.subject == "turn" else len(exchange.messages)

    def matches(self, exchange: Exchange) -> bool:
        value = self._value(exchange)
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def _range(self) -> str:
        if self.low is not None and self.low == self.high:
            return str(self.low)
        if self.high is None:
            return f"at least {self.low}"
        if self.low is None:
            return f"at most {self.high}"
        return f"between {self.low} and {self.high}"

    def explain(self, exchange: Exchange) -> str | None:
        if self.matches(exchange):
            return None
        label = "turn" if self.subject == "turn" else "message count"
        return f"{label} is {self._value(exchange)}, expected {self._range()}"

    def describe(self) -> str:
        return f"{'turn' if self.subject == 'turn' else 'message count'} is {self._range()}"


@dataclass(frozen=True)
class HeadersAre(Condition):
    tests: tuple[tuple[str, ValueTest], ...]  # lower-cased header name → test

    def _value(self, exchange: Exchange, name: str) -> Any:
        for key, value in exchange.headers.items():
            if key.lower() == name:
                return value
        return _MISSING

    def matches(self, exchange: Exchange) -> bool:
        return all(test.holds(self._value(exchange, name)) for name, test in self.tests)

    def explain(self, exchange: Exchange) -> str | None:
        reasons = [test.explain(f"header {name!r}", self._value(exchange, name)) for name, test in self.tests]
        return "; ".join(r for r in reasons if r) or None

    def describe(self) -> str:
        return "; ".join(test.describe(f"header {name!r}") for name, test in self.tests)


@dataclass(frozen=True)
class BodyFields(Condition):
    tests: tuple[tuple[tuple[str, ...], ValueTest], ...]  # dotted path → test

    def matches(self, exchange: Exchange) -> bool:
        body = dict(exchange.body)
        return all(test.holds(dig(body, path)) for path, test in self.tests)

    def explain(self, exchange: Exchange) -> str | None:
        body = dict(exchange.body)
        reasons = [test.explain("body." + ".".join(path), dig(body, path)) for path, test in self.tests]
        return "; ".join(r for r in reasons if r) or None

    def describe(self) -> str:
        return "; ".join(test.describe("body." + ".".join(path)) for path, test in self.tests)


@dataclass(frozen=True)
class AllOf(Condition):
    """Every child holds; with no children it matches every request."""

    children: tuple[Condition, ...] = ()

    def matches(self, exchange: Exchange) -> bool:
        return all(child.matches(exchange) for child in self.children)

    def explain(self, exchange: Exchange) -> str | None:
        reasons = [child.explain(exchange) for child in self.children]
        return "; ".join(r for r in reasons if r) or None

    def describe(self) -> str:
        return " and ".join(child.describe() for child in self.children) or "every request"

    def captures(self, exchange: Exchange) -> dict[str, str]:
        found: dict[str, str] = {}
        for child in self.children:
            found.update(child.captures(exchange))
        return found


@dataclass(frozen=True)
class AnyOf(Condition):
    children: tuple[Condition, ...]

    def matches(self, exchange: Exchange) -> bool:
        return any(child.matches(exchange) for child in self.children)

    def explain(self, exchange: Exchange) -> str | None:
        if self.matches(exchange):
            return None
        reasons = [f"({child.explain(exchange)})" for child in self.children]
        return "none of the alternatives matched: " + " or ".join(reasons)

    def describe(self) -> str:
        return "(" + " or ".join(child.describe() for child in self.children) + ")"

    def captures(self, exchange: Exchange) -> dict[str, str]:
        for child in self.children:
            if child.matches(exchange):
                return child.captures(exchange)
        return {}


@dataclass(frozen=True)
class Not(Condition):
    child: Condition

    def matches(self, exchange: Exchange) -> bool:
        return not self.child.matches(exchange)

    def explain(self, exchange: Exchange) -> str | None:
        return f"expected not: {self.child.describe()}" if self.child.matches(exchange) else None

    def describe(self) -> str:
        return f"not ({self.child.describe()})"


ALWAYS = AllOf(())


def _one_of(values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return repr(values[0])
    return "one of " + ", ".join(repr(v) for v in values)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _MISSING
