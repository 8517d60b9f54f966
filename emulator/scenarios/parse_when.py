"""`when:` mappings → Condition objects (regexes and globs compiled here, once)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.scenarios.checks import INVALID, Checker, shown, suggestion, words
from emulator.scenarios.matchers import (
    ALWAYS,
    AllOf,
    AnyOf,
    BodyFields,
    Condition,
    CountIs,
    EndpointIs,
    HeadersAre,
    JsonFields,
    ModelIs,
    Not,
    TextIs,
    ToolResultIs,
    ToolsOffered,
)
from emulator.scenarios.problems import Pos
from emulator.scenarios.regexes import RE2_HINT, RegexError
from emulator.scenarios.schema import ENDPOINTS, KEYS, PRESENCE, TEXT_KINDS
from emulator.scenarios.textmatch import TextMatcher, ValueTest, segment_problem
from emulator.scenarios.yamlpos import YList, YMap, to_plain

_MATCHER_HINT = f"text or a text matcher mapping ({words(TEXT_KINDS)})"


def parse_when(check: Checker, value: Any, pos: Pos) -> Condition:
    """All listed conditions must hold; an invalid `when` yields ALWAYS (its problems are logged)."""
    hint = " of conditions" + (" (use 'all' or 'any' for a list of conditions)" if isinstance(value, list) else "")
    data = check.mapping(value, pos, "'when'", hint)
    if data is None:
        return ALWAYS
    check.keys(data, KEYS["when"], "in when")
    conditions = []
    for key, item in data.items():
        parser = _PARSERS.get(key)
        if parser is not None:
            condition = parser(check, item, data.at(key))
            if isinstance(condition, Condition):
                conditions.append(condition)
    return AllOf(tuple(conditions))


# ---------------------------------------------------------------- text matchers and value tests


def text_matcher(check: Checker, value: Any, pos: Pos, subject: str) -> Any:
    """A plain string (equals) or a mapping with one of equals/contains/starts_with/ends_with/regex."""
    if isinstance(value, str):
        return TextMatcher.build("equals", (value,))
    if isinstance(value, YMap):
        known = check.keys(value, KEYS["textMatcher"], f"in {subject}")
        return _matcher_mapping(check, value, subject, known)
    hint = " (put it in quotes to use it as text)" if isinstance(value, bool | int | float) else ""
    return check.error(pos, f"{subject} must be {_MATCHER_HINT}, got {shown(value)}{hint}")


def _matcher_mapping(check: Checker, data: YMap, subject: str, known_keys: bool = True) -> Any:
    kinds = [kind for kind in TEXT_KINDS if kind in data]
    if not kinds and not known_keys:
        return INVALID  # the unknown key (likely a misspelt kind) is already reported
    if len(kinds) != 1:
        found = f", found {words(kinds, 'and')}" if kinds else ""
        return check.error(data.pos, f"{subject} needs exactly one of {words(TEXT_KINDS)}{found}")
    kind = kinds[0]
    ignore_case = (
        check.boolean(data["ignore_case"], data.at("ignore_case"), f"'ignore_case' in {subject}")
        if ("ignore_case" in data)
        else False
    )
    if kind == "contains":
        values = check.texts(data[kind], data.at(kind), f"'contains' in {subject}")
    else:
        single = check.text(data[kind], data.at(kind), f"'{kind}' in {subject}")
        values = INVALID if single is INVALID else (single,)
    if values is INVALID or ignore_case is INVALID:
        return INVALID
    try:
        return TextMatcher.build(kind, values, ignore_case)
    except RegexError as error:
        return check.error(data.at(kind), regex_problem(values[0], subject, error))


def regex_problem(pattern: str, subject: str, error: RegexError) -> str:
    """The pattern as written (not Python's repr, which doubles every backslash) with a caret under the
    part RE2 objects to."""
    if error.position is None or "\n" in pattern:
        return f"invalid regex in {subject}: {error}: {pattern}"
    caret = " " * error.position + "^"
    where = f"{error.reason} at position {error.position} ({RE2_HINT})"
    return f"invalid regex in {subject}: {where}\n    {pattern}\n    {caret}"


def value_test(check: Checker, value: Any, pos: Pos, subject: str) -> Any:
    """For body and JSON fields: a literal to equal, a text matcher mapping, or {exists: bool}."""
    if not isinstance(value, YMap):
        return ValueTest(literal=to_plain(value))
    known = check.keys(value, KEYS["valueMatcher"], f"in {subject}")
    if "exists" in value:
        if len(value) > 1:
            return check.error(value.key_at("exists"), f"'exists' cannot be combined with other keys in {subject}")
        exists = check.boolean(value["exists"], value.at("exists"), f"'exists' in {subject}")
        return INVALID if exists is INVALID else ValueTest(exists=exists)
    if "equals" in value and not isinstance(value["equals"], str):
        if len(value) > 1:
            return check.error(value.pos, f"{subject}: 'equals' with a value that is not text stands alone")
        return ValueTest(literal=to_plain(value["equals"]))
    matcher = _matcher_mapping(check, value, subject, known)
    return INVALID if matcher is INVALID else ValueTest(text=matcher)


def _path(check: Checker, key: Any, pos: Pos, what: str) -> Any:
    if not isinstance(key, str) or not key:
        return check.error(pos, f"{what} must be a non-empty text like 'metadata.user_id', got {shown(key)}")
    segments = tuple(key.split("."))
    if "" in segments:
        return check.error(pos, f"{what} {key!r} has an empty part between dots")
    for segment in segments:
        problem = segment_problem(segment)
        if problem is not None:
            return check.error(pos, f"{what}: {problem}")
    return segments


def _field_tests(check: Checker, data: YMap, subject: str) -> list[tuple[tuple[str, ...], ValueTest]]:
    tests = []
    for key, item in data.items():
        path = _path(check, key, data.key_at(key), f"{subject} path")
        test = value_test(check, item, data.at(key), f"{subject} field {key!r}")
        if path is not INVALID and test is not INVALID:
            tests.append((path, test))
    return tests


# ---------------------------------------------------------------- one parser per `when` key


def _model(check: Checker, value: Any, pos: Pos) -> Any:
    patterns = check.texts(value, pos, "'model'")
    return INVALID if patterns is INVALID else ModelIs.build(patterns)


def _endpoint(check: Checker, value: Any, pos: Pos) -> Any:
    if isinstance(value, YList):
        if not value:
            return check.error(pos, "'endpoint' must not be an empty list")
        found = [check.choice(v, value.at(i), "'endpoint'", ENDPOINTS) for i, v in enumerate(value)]
    else:
        found = [check.choice(value, pos, "'endpoint'", ENDPOINTS)]
    return INVALID if INVALID in found else EndpointIs(tuple(found))


def _last_user(check: Checker, value: Any, pos: Pos) -> Any:
    matcher = text_matcher(check, value, pos, "last_user")
    return INVALID if matcher is INVALID else TextIs("last_user", matcher)


def _system(check: Checker, value: Any, pos: Pos) -> Any:
    matcher = text_matcher(check, value, pos, "system")
    return INVALID if matcher is INVALID else TextIs("system", matcher)


def _tools(check: Checker, value: Any, pos: Pos) -> Any:
    if isinstance(value, str | YList):
        names = check.texts(value, pos, "'tools'")
        return INVALID if names is INVALID else ToolsOffered(names=names)
    if not isinstance(value, YMap):
        return check.error(
            pos, f"'tools' must be a list of tool names, {{includes: [...]}} or {{none: true}}, got {shown(value)}"
        )
    check.keys(value, KEYS["toolsMatcher"], "in tools")
    given = [key for key in KEYS["toolsMatcher"] if key in value]
    if len(given) != 1:
        return check.error(value.pos, "'tools' needs exactly one of includes or none")
    if given[0] == "none":
        none = check.boolean(value["none"], value.at("none"), "'none' in tools")
        return INVALID if none is INVALID else ToolsOffered(none=none)
    names = check.texts(value["includes"], value.at("includes"), "'includes' in tools")
    return INVALID if names is INVALID else ToolsOffered(names=names)


def _tool_result(check: Checker, value: Any, pos: Pos) -> Any:
    if isinstance(value, str) and value in PRESENCE:
        return ToolResultIs(present=value == "present")
    if not isinstance(value, YMap):
        hint = suggestion(value, PRESENCE) if isinstance(value, str) else ""
        expected = "absent, present or a mapping with name, call_id and/or content"
        return check.error(pos, f"'tool_result' must be {expected}, got {shown(value)}{hint}")
    check.keys(value, KEYS["toolResultMatcher"], "in tool_result")
    name = check.text(value["name"], value.at("name"), "'name' in tool_result") if "name" in value else None
    call_id = (
        check.text(value["call_id"], value.at("call_id"), "'call_id' in tool_result") if "call_id" in value else None
    )
    content = _content(check, value["content"], value.at("content")) if "content" in value else None
    if INVALID in (name, call_id, content):
        return INVALID
    return ToolResultIs(present=True, name=name, call_id=call_id, content=content)


def _content(check: Checker, value: Any, pos: Pos) -> Any:
    if isinstance(value, YMap) and "json" in value:
        check.keys(value, KEYS["jsonContent"], "in tool_result content when 'json' is used")
        fields = check.mapping(value["json"], value.at("json"), "'json' in tool_result content", " of field paths")
        if fields is None:
            return INVALID
        if not fields:
            return check.error(value.at("json"), "'json' in tool_result content needs at least one field")
        return JsonFields(tuple(_field_tests(check, fields, "JSON")))
    return text_matcher(check, value, pos, "tool_result content")


def _count_range(check: Checker, value: Any, pos: Pos, what: str, where: str) -> Any:
    """An integer, or {min, max} (either may be left out); returns (low, high)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = check.integer(value, pos, what, low=0)
        return INVALID if number is INVALID else (number, number)
    if not isinstance(value, YMap):
        return check.error(pos, f"{what} must be an integer or a mapping with min and/or max, got {shown(value)}")
    if not check.keys(value, KEYS["range"], f"in {where}"):
        return INVALID
    if "min" not in value and "max" not in value:
        return check.error(value.pos, f"{what} needs min, max or both")
    low = check.integer(value["min"], value.at("min"), f"'min' in {where}", low=0) if "min" in value else None
    high = check.integer(value["max"], value.at("max"), f"'max' in {where}", low=0) if "max" in value else None
    if INVALID in (low, high):
        return INVALID
    if low is not None and high is not None and low > high:
        return check.error(value.pos, f"'min' ({low}) is greater than 'max' ({high}) in {where}")
    return low, high


def _turn(check: Checker, value: Any, pos: Pos) -> Any:
    found = _count_range(check, value, pos, "'turn'", "turn")
    return INVALID if found is INVALID else CountIs("turn", *found)


def _messages(check: Checker, value: Any, pos: Pos) -> Any:
    data = check.mapping(value, pos, "'messages'", " like {count: 3}")
    if data is None:
        return INVALID
    check.keys(data, KEYS["messagesMatcher"], "in messages")
    if "count" not in data:
        return check.error(data.pos, "'messages' needs 'count'")
    found = _count_range(check, data["count"], data.at("count"), "'count' in messages", "messages count")
    return INVALID if found is INVALID else CountIs("messages", *found)


def _headers(check: Checker, value: Any, pos: Pos) -> Any:
    data = check.mapping(value, pos, "'headers'", " of header names")
    if data is None:
        return INVALID
    tests = []
    for name, item in data.items():
        if not isinstance(name, str) or not name:
            check.error(data.key_at(name), f"a header name must be text, got {shown(name)}")
            continue
        subject = f"header {name.lower()!r}"
        if isinstance(item, str) and item in PRESENCE:
            tests.append((name.lower(), ValueTest(exists=item == "present")))
            continue
        matcher = text_matcher(check, item, data.at(name), subject)
        if matcher is not INVALID:
            tests.append((name.lower(), ValueTest(text=matcher)))
    return HeadersAre(tuple(tests))


def _body(check: Checker, value: Any, pos: Pos) -> Any:
    data = check.mapping(value, pos, "'body'", " of field paths like metadata.user_id")
    return INVALID if data is None else BodyFields(tuple(_field_tests(check, data, "body")))


def _sub_conditions(check: Checker, value: Any, pos: Pos, key: str) -> list[Condition]:
    items = check.items(value, pos, f"'{key}'")
    return [parse_when(check, item, items.at(i)) for i, item in enumerate(items)] if items is not None else []


def _all(check: Checker, value: Any, pos: Pos) -> Any:
    return AllOf(tuple(_sub_conditions(check, value, pos, "all")))


def _any(check: Checker, value: Any, pos: Pos) -> Any:
    children = _sub_conditions(check, value, pos, "any")
    return AnyOf(tuple(children)) if children else INVALID


def _not(check: Checker, value: Any, pos: Pos) -> Any:
    return Not(parse_when(check, value, pos))


_PARSERS: dict[str, Callable[[Checker, Any, Pos], Any]] = {
    "model": _model,
    "endpoint": _endpoint,
    "last_user": _last_user,
    "system": _system,
    "tools": _tools,
    "tool_result": _tool_result,
    "turn": _turn,
    "headers": _headers,
    "body": _body,
    "messages": _messages,
    "all": _all,
    "any": _any,
    "not": _not,
}
assert set(_PARSERS) == set(KEYS["when"]), "every `when` key needs a parser"
