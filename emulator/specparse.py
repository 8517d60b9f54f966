"""Checked reads of timing, fault and rate-limit specs, shared by scenario files, request headers and the control API.

The same parser reads a YAML mapping, a header turned into a mapping, or a JSON body; where a problem is
reported depends on the caller (`Report`): a file position, a header name, a JSON field.
"""

from __future__ import annotations

import difflib
import enum
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final


class Invalid(enum.Enum):
    """The one value a check returns when what it read is wrong (the problem is already reported)."""

    INVALID = "invalid"


INVALID: Final = Invalid.INVALID

# report(container, key, message, on_key): `container[key]` (or the key itself, when on_key) is at fault
Report = Callable[[Any, Any, str, bool], None]


def shown(value: Any) -> str:
    """How a value is named in messages, the way the scenario loader names it."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:59] + "…")
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)


def suggestion(word: Any, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def words(choices: Iterable[str], joiner: str = "or") -> str:
    items = [str(c) for c in choices]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {joiner} {items[-1]}"


def integer_expected(low: int | None, high: int | None) -> str:
    """How an integer within [low, high] is asked for in messages."""
    if low is not None and high is not None:
        return f"an integer between {low} and {high}"
    if low is not None:
        return "a positive integer" if low == 1 else f"an integer of at least {low}"
    return "an integer"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Collected:
    """A Report that keeps plain messages (headers, JSON bodies)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, container: Any, key: Any, message: str, on_key: bool = False) -> None:
        self.messages.append(message)


class SpecReader:
    def __init__(self, report: Report) -> None:
        self.report = report

    def error(self, container: Any, key: Any, message: str, on_key: bool = False) -> Invalid:
        self.report(container, key, message, on_key)
        return INVALID

    def mapping(self, container: Any, key: Any, what: str, hint: str = "") -> Mapping[str, Any] | None:
        value = container[key]
        if isinstance(value, Mapping):
            return value
        self.error(container, key, f"{what} must be a mapping{hint}, got {shown(value)}")
        return None

    def keys(self, data: Mapping[str, Any], allowed: Iterable[str], where: str) -> bool:
        allowed = tuple(allowed)
        unknown = [key for key in data if key not in allowed]
        for key in unknown:
            self.error(data, key, f"unknown key {shown(key)} {where}{suggestion(key, allowed)}", on_key=True)
        return not unknown

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        *,
        low: float | None = 0,
        high: float | None = None,
        above: bool = False,
        unit: str = "",
    ) -> float | Invalid:
        """A finite number within [low, high] (or above `low` when `above`); ints and floats alike."""
        value = data[key]
        ok = is_number(value)
        if ok and low is not None:
            ok = value > low if above else value >= low
        if ok and high is not None:
            ok = value <= high
        if ok:
            return value
        if low is not None and high is not None:
            expected = f"a number between {low:g} and {high:g}"
        elif low is not None:
            expected = f"a number above {low:g}" if above else f"a number of at least {low:g}"
        elif high is not None:
            expected = f"a number of at most {high:g}"
        else:
            expected = "a number"
        return self.error(data, key, f"'{key}' must be {expected}{unit}, got {shown(value)}")

    def integer(self, data: Mapping[str, Any], key: str, low: int | None = 0, high: int | None = None) -> int | Invalid:
        value = data[key]
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and (low is None or value >= low) and (high is None or value <= high):
            return value
        return self.error(data, key, f"'{key}' must be {integer_expected(low, high)}, got {shown(value)}")

    def boolean(self, data: Mapping[str, Any], key: str) -> bool | Invalid:
        value = data[key]
        if isinstance(value, bool):
            return value
        return self.error(data, key, f"'{key}' must be true or false, got {shown(value)}")

    def text(self, data: Mapping[str, Any], key: str) -> str | Invalid:
        value = data[key]
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, str):
            return self.error(data, key, f"'{key}' must not be empty")
        return self.error(data, key, f"'{key}' must be a string, got {shown(value)}")

    def texts(self, data: Mapping[str, Any], key: str) -> tuple[str, ...] | Invalid:
        """A string or a non-empty list of strings, as a tuple."""
        value = data[key]
        if isinstance(value, str) and value:
            return (value,)
        if isinstance(value, list | tuple) and value and all(isinstance(v, str) and v for v in value):
            return tuple(value)
        return self.error(data, key, f"'{key}' must be a string or a non-empty list of strings, got {shown(value)}")

    def choice(self, data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str | Invalid:
        value = data[key]
        if isinstance(value, str) and value in allowed:
            return value
        hint = suggestion(value, allowed) if isinstance(value, str) else ""
        return self.error(data, key, f"'{key}' must be {words(allowed)}, got {shown(value)}{hint}")


def header_value(raw: str) -> Any:
    """A header parameter as the value a YAML file would hold: integer, number, true/false, else text."""
    text = raw.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if kind is int or math.isfinite(value) else text
    return text
