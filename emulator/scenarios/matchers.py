"""Conditions on an Exchange: each says whether it holds (`matches`) and, when not, why (`explain`).

All of them are built once at load time; regexes and globs are compiled then.
"""

from __future__ import annotations

import fnmatch
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from emulator.exchange import Exchange
from emulator.scenarios.textmatch import MISSING, TextMatcher, ValueTest, dig, parse_json, show

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
        document = parse_json(text)
        return document is not MISSING and all(test.holds(dig(document, path)) for path, test in self.tests)

    def explain(self, subject: str, text: str) -> str | None:
        document = parse_json(text)
        if document is MISSING:
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
        return MISSING

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
        return all(test.holds(dig(exchange.body, path)) for path, test in self.tests)

    def explain(self, exchange: Exchange) -> str | None:
        reasons = [test.explain("body." + ".".join(path), dig(exchange.body, path)) for path, test in self.tests]
        return "; ".join(r for r in reasons if r) or None

    def describe(self) -> str:
        return "; ".join(test.describe("body." + ".".join(path)) for path, test in self.tests)


@dataclass(frozen=True)
class AllOf(Condition):
    """Every child holds; with no children it matches every request."""

    children: tuple[Condition, ...] = ()

    def matches(self, exchange: Exchange) -> bool:
        for child in self.children:  # noqa: SIM110 - a plain loop: this runs for every rule of every request
            if not child.matches(exchange):
                return False
        return True

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
