"""Turn pydantic validation errors into the OpenAI-style 400 a gateway sends, naming the field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic.types import FailFast
from pydantic_core import ErrorDetails

from emulator.errors import ApiError


class _FailFast(FailFast):
    """pydantic's FailFast, hashable, so that it can annotate a list inside a union (`str | list[…]`)."""

    def __hash__(self) -> int:
        return hash((FailFast, self.fail_fast))


# On every list of a request model: validation stops at the first item that fails. Only the first error is ever
# answered, and without it a 9 MB body of three million `{}` items made three million errors (20 s, 4 GB).
FAIL_FAST = _FailFast()

_JSON_TYPE_NAMES = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    list: "array",
    dict: "object",
    type(None): "null",
}
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


_TAGGED_LISTS = frozenset({"messages", "content"})  # arrays whose items are tagged unions


def _is_type_label(item: Any) -> bool:
    """Labels pydantic gives union members by type (`str`, `list[...]`, a model's class name)."""
    return isinstance(item, str) and (
        "[" in item or item in {"str", "int", "float", "bool", "none", "dict", "list"} or item[:1].isupper()
    )


def _field_path(loc: tuple[Any, ...], tags: frozenset[str]) -> list[Any]:
    """`loc` without the union member labels pydantic adds: what the request's own field path is."""
    path: list[Any] = []
    tag_expected = False  # right after the index of an item of a tagged-union array comes its tag
    for item in loc:
        if _is_type_label(item):
            continue
        if tag_expected and item in tags:
            tag_expected = False
            continue
        path.append(item)
        tag_expected = isinstance(item, int) and len(path) >= 2 and path[-2] in _TAGGED_LISTS
    return path


def param_path(loc: tuple[Any, ...], tags: frozenset[str] = frozenset()) -> str:
    path = ""
    for item in _field_path(loc, tags):
        path += f"[{item}]" if isinstance(item, int) else (f".{item}" if path else str(item))
    return path


def _expected(error: ErrorDetails) -> str:
    if error["type"] == "literal_error":
        return f"one of {(error.get('ctx') or {}).get('expected')}"
    return _EXPECTED.get(error["type"], error["type"])


def _describe(error: ErrorDetails, param: str, group: list[ErrorDetails]) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        return f"Missing required parameter: '{param}'."
    if len(group) > 1 or kind in _EXPECTED:
        expected = sorted({_expected(e) for e in group})
        return f"Invalid type for '{param}': expected {' or '.join(expected)}, but got {json_type(value)} instead."
    if kind in ("less_than_equal", "less_than"):
        return f"Invalid '{param}': value above maximum. Expected a value <= {ctx.get('le', ctx.get('lt'))}, but got {value} instead."
    if kind in ("greater_than_equal", "greater_than"):
        return f"Invalid '{param}': value below minimum. Expected a value >= {ctx.get('ge', ctx.get('gt'))}, but got {value} instead."
    if kind == "too_short":
        return (
            f"Invalid '{param}': too short. Expected at least {ctx.get('min_length')} item(s), "
            f"but got {ctx.get('actual_length')} instead."
        )
    if kind == "too_long":
        return (
            f"Invalid '{param}': too long. Expected at most {ctx.get('max_length')} item(s), "
            f"but got {ctx.get('actual_length')} instead."
        )
    if kind == "literal_error":
        return f"Invalid value for '{param}': {value!r}. Supported values are: {ctx.get('expected')}."
    if kind == "union_tag_invalid":
        return f"Invalid value for '{param}': {ctx.get('tag')!r}. Supported values are: {ctx.get('expected_tags')}."
    if kind == "union_tag_not_found":
        return f"Missing required parameter: '{param}'."
    if kind == "string_pattern_mismatch":
        return f"Invalid '{param}': {value!r} does not match the pattern {ctx.get('pattern')!r}."
    return f"Invalid '{param}': {error['msg']}."


def to_api_error(exc: ValidationError, tags: frozenset[str] = frozenset()) -> ApiError:
    """The first problem, as the 400 the gateway sends; `tags` are the values tagged unions key on."""
    errors = exc.errors(include_url=False)
    # within a union, the branch that got furthest into the value says best what is wrong with it
    first = max(errors, key=lambda e: len(_field_path(e["loc"], tags)))
    param = param_path(first["loc"], tags)
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        field = (first.get("ctx") or {}).get("discriminator", "").strip("'")
        param = f"{param}.{field}" if field else param
    group = [e for e in errors if param_path(e["loc"], tags) == param and e["type"] != "missing"] or [first]
    return ApiError.invalid(_describe(first, param, group), param=param)
