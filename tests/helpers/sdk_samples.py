"""Request values made from the installed SDKs' own TypedDicts, for the conformance sweep.

`Sampler.value(type)` walks a type as the SDK declares it (TypedDicts, pydantic models, unions, Literals,
lists) and builds the smallest value of it: required keys only, the first member of a union, the first word of
a Literal, the first item of a list. What a field means is the SDK's business; the few values a server checks
against something else (a model it serves, a budget below `max_tokens`, an id that must exist) come from
`overrides`, keyed by field name.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any

import pydantic
import typing_extensions

MAX_DEPTH = 12
_WRAPPERS = {typing_extensions.Required, typing_extensions.NotRequired, typing_extensions.ReadOnly}
_UNIONS = (typing.Union, types.UnionType)


def unwrap(tp: Any) -> Any:
    """The type without Annotated / Required / NotRequired / ReadOnly around it."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated or origin in _WRAPPERS:
            tp = typing.get_args(tp)[0]
        else:
            return tp


def is_required(hint: Any) -> bool:
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return typing.get_origin(hint) is typing_extensions.Required


def members(tp: Any) -> list[Any]:
    """A union's members, flattened, without None; any other type is its own single member."""
    tp = unwrap(tp)
    if typing.get_origin(tp) in _UNIONS:
        return [m for arg in typing.get_args(tp) for m in members(arg) if m is not type(None)]
    return [tp]


def fields(tp: Any) -> dict[str, tuple[Any, bool]]:
    """A TypedDict's or pydantic model's fields: name → (type, required)."""
    if typing_extensions.is_typeddict(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        return {name: (hint, is_required(hint)) for name, hint in hints.items()}
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return {
            (field.alias or name): (field.annotation, field.is_required()) for name, field in tp.model_fields.items()
        }
    raise TypeError(f"{tp!r} has no fields")


def has_fields(tp: Any) -> bool:
    return typing_extensions.is_typeddict(tp) or (isinstance(tp, type) and issubclass(tp, pydantic.BaseModel))


def tag(tp: Any) -> str:
    """The `type` (or `role`) Literal of a union member, for naming cases."""
    for key in ("type", "role"):
        hint = fields(tp).get(key) if has_fields(tp) else None
        if hint is not None and typing.get_origin(unwrap(hint[0])) is typing.Literal:
            return str(typing.get_args(unwrap(hint[0]))[0])
    return getattr(tp, "__name__", str(tp))


class Sampler:
    def __init__(self, overrides: Mapping[str, Any]) -> None:
        self.overrides = overrides

    def value(self, tp: Any, name: str = "", depth: int = 0) -> Any:
        tp = unwrap(tp)
        origin = typing.get_origin(tp)
        if origin is typing.Literal:  # a fixed word the SDK spells out wins over an override
            return typing.get_args(tp)[0]
        if name in self.overrides:
            return self.overrides[name]
        if depth > MAX_DEPTH:
            return {}
        if origin in _UNIONS:
            return self.value(members(tp)[0], name, depth)
        if has_fields(tp):
            return self.record(tp, depth)
        if origin is not None:
            return self._generic(tp, origin, name, depth)
        return self._plain(tp)

    def record(self, tp: Any, depth: int = 0, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Required fields only (and `extra`, which wins)."""
        out = {
            name: self.value(hint, name, depth + 1)
            for name, (hint, required) in fields(tp).items()
            if required and name not in (extra or {})
        }
        return {**out, **(extra or {})}

    def _generic(self, tp: Any, origin: Any, name: str, depth: int) -> Any:
        args = typing.get_args(tp)
        if origin in (dict, collections.abc.Mapping) or (isinstance(origin, type) and issubclass(origin, Mapping)):
            return {}
        if origin in (list, tuple, set, frozenset) or getattr(origin, "__name__", "") == "SequenceNotStr":
            return [self.value(args[0], name, depth + 1)] if args else []
        if isinstance(origin, type) and issubclass(origin, collections.abc.Iterable):
            return [self.value(args[0], name, depth + 1)] if args else []
        if origin is type:
            return {}
        raise TypeError(f"no sample for {tp!r}")

    @staticmethod
    def _plain(tp: Any) -> Any:
        if tp is str:
            return "x"
        if tp is bool:
            return True
        if tp is int:
            return 1
        if tp is float:
            return 0.5
        if tp in (object, Any, dict):
            return {}
        if tp is list:
            return []
        if tp is type(None):
            return None
        raise TypeError(f"no sample for {tp!r}")


def union_cases(tp: Any) -> Iterator[tuple[str, Any]]:
    """(case name, member) for each member of a union, by its `type` / `role` tag."""
    seen: dict[str, int] = {}
    for member in members(tp):
        name = tag(member)
        seen[name] = seen.get(name, 0) + 1
        yield (name if seen[name] == 1 else f"{name}#{seen[name]}"), member
