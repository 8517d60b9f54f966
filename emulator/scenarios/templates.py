"""Safe text templates: `{{ path | filter | default: text }}`, parsed once at load time into a tiny AST.

Rendering only ever looks keys up in dicts and indexes lists: no eval, no attribute access, so
`{{ tool_result.__class__ }}` is just a key that is not there.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emulator.exchange import Exchange, cached
from emulator.scenarios.textmatch import segment_problem

# Template variables; True when the variable has fields (`body.metadata.user_id`), False for plain values.
ROOTS: dict[str, bool] = {
    "last_user": False,
    "system": False,
    "model": False,
    "turn": False,
    "tool_result": True,
    "body": True,
    "headers": True,
    "match": True,
}
FILTERS = ("upper", "lower", "title", "trim", "json", "length", "default")

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"-?[0-9]{1,18}")  # see textmatch.segment_problem
_JSON_SCALAR = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?|true|false")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class TemplateError(ValueError):
    """A malformed template; the loader adds the file position."""


class RenderTooLarge(Exception):
    """A reply's templates rendered to more than the budget allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the reply renders to more than {limit} characters")
        self.limit = limit


class RenderBudget:
    """How many characters the templates of one reply may still render to (`--max-rendered-chars`)."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.left = self.limit = limit

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise RenderTooLarge(self.limit)


BUDGET = "\x00budget"  # the template context key of the RenderBudget: no template path can name it


@dataclass(frozen=True)
class Filter:
    name: str
    argument: Any = None  # only `default` has one


@dataclass(frozen=True)
class Expr:
    path: tuple[str, ...] = ()  # empty for a quoted literal
    literal: str | None = None
    filters: tuple[Filter, ...] = ()

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        value: Any = self.literal if self.literal is not None else _lookup(context, self.path)
        for flt in self.filters:
            value = _apply(flt, value)
        return value


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[str | Expr, ...]

    @cached
    def is_static(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)

    def render(self, context: Mapping[str, Any]) -> str:
        """The text; RenderTooLarge as soon as it passes the context's budget (it is never built whole then)."""
        budget: RenderBudget | None = context.get(BUDGET)
        if budget is None:
            return "".join(part if isinstance(part, str) else to_text(part.evaluate(context)) for part in self.parts)
        pieces = []
        for part in self.parts:
            text = part if isinstance(part, str) else to_text(part.evaluate(context))
            budget.spend(len(text))
            pieces.append(text)
        return "".join(pieces)

    def render_value(self, context: Mapping[str, Any]) -> Any:
        """Like render, but a template that is exactly one `{{ }}` keeps the JSON type of its value."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Expr):
            value = self.parts[0].evaluate(context)
            budget: RenderBudget | None = context.get(BUDGET)
            if budget is not None:
                budget.spend(len(value) if isinstance(value, str) else len(to_text(value)))
            return "" if value is MISSING else value
        return self.render(context)


def compile_template(source: str) -> Template:
    parts: list[str | Expr] = []
    index = 0
    while True:
        start = source.find("{{", index)
        if start < 0:
            break
        if start > index:
            parts.append(source[index:start])
        end = _closing_braces(source, start + 2)
        parts.append(_parse_expr(source[start + 2 : end].strip()))
        index = end + 2
    if index < len(source):
        parts.append(source[index:])
    return Template(source, tuple(parts))


def to_text(value: Any) -> str:
    if value is MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def template_context(
    exchange: Exchange, captures: Mapping[str, str] | None = None, budget: RenderBudget | None = None
) -> dict[str, Any]:
    """The values templates can reach for one request (and the budget their rendering spends)."""
    return {
        BUDGET: budget,
        "last_user": exchange.last_user_text,
        "system": exchange.system,
        "model": exchange.model,
        "turn": exchange.turn,
        "tool_result": _last_tool_result(exchange),
        "body": exchange.body,
        "headers": {name.lower(): value for name, value in exchange.headers.items()},
        "match": dict(captures or {}),
    }


def _last_tool_result(exchange: Exchange) -> Any:
    results = exchange.tool_results
    if not results:
        return MISSING
    last = results[-1]
    fields: dict[str, Any] = {}
    try:
        parsed = json.loads(last.content)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        fields.update(parsed)
    fields.update(content=last.content, name=last.name, call_id=last.call_id)  # these names always win
    return fields


def _closing_braces(source: str, index: int) -> int:
    quote = ""
    while index < len(source) - 1:
        char = source[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif source.startswith("}}", index):
            return index
        index += 1
    raise TemplateError("'{{' is never closed with '}}'")


def _split_pipes(text: str) -> list[str]:
    pieces, current, quote = [], "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "|":
            pieces.append(current.strip())
            current = ""
            continue
        current += char
    pieces.append(current.strip())
    return pieces


def _unquote(text: str) -> str | None:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return None


def _parse_expr(text: str) -> Expr:
    if not text:
        raise TemplateError("'{{ }}' is empty; write a variable such as {{ last_user }}")
    head, *filter_texts = _split_pipes(text)
    filters = tuple(_parse_filter(f) for f in filter_texts)
    literal = _unquote(head)
    if literal is not None:
        return Expr(literal=literal, filters=filters)
    return Expr(path=_parse_path(head), filters=filters)


def _parse_path(text: str) -> tuple[str, ...]:
    segments = text.split(".")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise TemplateError(f"'{text[:60]}' is not a variable path (letters, digits, '_' or '-' joined by dots)")
        problem = segment_problem(segment)
        if problem is not None:
            raise TemplateError(problem)
    root = segments[0]
    if root not in ROOTS:
        raise TemplateError(f"unknown template variable '{root}'{_suggest(root, ROOTS)}")
    if len(segments) > 1 and not ROOTS[root]:
        raise TemplateError(f"'{root}' is a plain value and has no fields, so '{text}' cannot be looked up")
    if root == "match" and len(segments) == 1:
        raise TemplateError("'match' needs a group number or name, e.g. {{ match.1 }}")
    if root == "headers":
        segments = [segment.lower() for segment in segments]
    if segments == ["tool_result"]:
        segments.append("content")
    return tuple(segments)


def _parse_filter(text: str) -> Filter:
    name, colon, argument = text.partition(":")
    name = name.strip()
    if name not in FILTERS:
        shown = name or text
        hint = _suggest(shown, FILTERS) or f"; filters are {', '.join(FILTERS)}"
        raise TemplateError(f"unknown filter '{shown}'{hint}")
    if name != "default":
        if colon:
            raise TemplateError(f"filter '{name}' takes no argument")
        return Filter(name)
    argument = argument.strip()
    if not colon or not argument:
        raise TemplateError("filter 'default' needs a value, e.g. {{ last_user | default: hello }}")
    quoted = _unquote(argument)
    if quoted is not None:
        return Filter(name, quoted)
    if _JSON_SCALAR.fullmatch(argument):
        return Filter(name, json.loads(argument))  # keeps numbers and booleans typed in tool arguments
    return Filter(name, argument)


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _lookup(value: Any, path: tuple[str, ...]) -> Any:
    for segment in path:
        if isinstance(value, Mapping):
            value = value.get(segment, MISSING)
        elif isinstance(value, list | tuple) and _INDEX.fullmatch(segment):
            index = int(segment)
            value = value[index] if -len(value) <= index < len(value) else MISSING
        else:
            return MISSING
    return value


def _apply(flt: Filter, value: Any) -> Any:
    name = flt.name
    if name == "default":
        return flt.argument if value is MISSING or value is None or value == "" else value
    if name == "length":
        if value is MISSING or value is None:
            return 0
        return len(value) if isinstance(value, str | list | dict) else len(to_text(value))
    if name == "json":
        return json.dumps("" if value is MISSING else value, ensure_ascii=False)
    text = to_text(value)
    if name == "upper":
        return text.upper()
    if name == "lower":
        return text.lower()
    if name == "title":
        return text.title()
    return text.strip()  # trim
