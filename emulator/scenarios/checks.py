"""Typed reads from positioned YAML values; every mismatch becomes a Problem with our own wording."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from emulator.scenarios.problems import Pos, ProblemLog
from emulator.scenarios.templates import TemplateError, compile_template
from emulator.scenarios.yamlpos import YList, YMap
from emulator.specparse import (  # one wording for files, headers and JSON
    INVALID,
    Invalid,
    integer_expected,
    shown,
    suggestion,
    words,
)

__all__ = ["INVALID", "Checker", "Invalid", "shown", "suggestion", "words"]


class Checker:
    def __init__(self, log: ProblemLog) -> None:
        self.log = log

    def error(self, pos: Pos, message: str) -> Invalid:
        self.log.add(pos, message)
        return INVALID

    # ------------------------------------------------------------ containers

    def mapping(self, value: Any, pos: Pos, what: str, hint: str = "") -> YMap | None:
        if isinstance(value, YMap):
            return value
        self.error(pos, f"{what} must be a mapping{hint}, got {shown(value)}")
        return None

    def keys(self, data: YMap, allowed: Iterable[str], where: str) -> bool:
        """Report keys not in `allowed`; True when there are none."""
        allowed = tuple(allowed)
        unknown = [key for key in data if key not in allowed]
        for key in unknown:
            self.error(data.key_at(key), f"unknown key {shown(key)} {where}{suggestion(key, allowed)}")
        return not unknown

    def items(self, value: Any, pos: Pos, what: str, *, allow_empty: bool = False) -> YList | None:
        if not isinstance(value, YList):
            self.error(pos, f"{what} must be a list, got {shown(value)}")
            return None
        if not value and not allow_empty:
            self.error(pos, f"{what} must not be an empty list")
            return None
        return value

    # ------------------------------------------------------------ scalars

    def text(self, value: Any, pos: Pos, what: str, *, allow_empty: bool = True) -> Any:
        if isinstance(value, str):
            if not allow_empty and not value.strip():
                return self.error(pos, f"{what} must not be empty")
            return value
        hint = " (put it in quotes to use it as text)" if isinstance(value, bool | int | float) else ""
        return self.error(pos, f"{what} must be a string, got {shown(value)}{hint}")

    def boolean(self, value: Any, pos: Pos, what: str) -> Any:
        if isinstance(value, bool):
            return value
        return self.error(pos, f"{what} must be true or false, got {shown(value)}")

    def integer(self, value: Any, pos: Pos, what: str, low: int | None = None, high: int | None = None) -> Any:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and (low is None or value >= low) and (high is None or value <= high):
            return value
        return self.error(pos, f"{what} must be {integer_expected(low, high)}, got {shown(value)}")

    def choice(self, value: Any, pos: Pos, what: str, allowed: tuple[str, ...]) -> Any:
        if isinstance(value, str) and value in allowed:
            return value
        hint = suggestion(value, allowed) if isinstance(value, str) else ""
        return self.error(pos, f"{what} must be {words(allowed)}, got {shown(value)}{hint}")

    def texts(self, value: Any, pos: Pos, what: str) -> Any:
        """A string or a non-empty list of strings, as a tuple."""
        if isinstance(value, str):
            return (value,) if value else self.error(pos, f"{what} must not be empty")
        if isinstance(value, YList) and value:
            results = [
                self.text(item, value.at(i), f"each entry of {what}", allow_empty=False) for i, item in enumerate(value)
            ]
            return INVALID if INVALID in results else tuple(results)
        hint = " (put it in quotes to use it as text)" if isinstance(value, bool | int | float) else ""
        return self.error(pos, f"{what} must be a string or a non-empty list of strings, got {shown(value)}{hint}")

    def template(self, value: Any, pos: Pos, what: str) -> Any:
        source = self.text(value, pos, what)
        if source is INVALID:
            return INVALID
        try:
            return compile_template(source)
        except TemplateError as error:
            return self.error(pos, f"invalid template in {what}: {error}")
