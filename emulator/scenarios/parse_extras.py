"""`timing:` and `fault:` (on rules and sequence steps) and `settings.timing / faults / rate_limits / loop_guard`.

The specs are read by the same parsers as request headers and control API bodies (emulator.timing,
emulator.faults.rules, emulator.ratelimit); here each problem gets the file position of the key or value at fault.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.faults.rules import parse_fault
from emulator.loop_guard import parse_loop_guard
from emulator.ratelimit import parse_rate_limits
from emulator.scenarios.checks import INVALID, Checker, shown
from emulator.scenarios.problems import Pos
from emulator.scenarios.yamlpos import YList, YMap
from emulator.specparse import INVALID as SPEC_INVALID
from emulator.specparse import SpecReader
from emulator.timing import parse_timing


def spec_reader(check: Checker) -> SpecReader:
    def report(container: Any, key: Any, message: str, on_key: bool = False) -> None:
        if isinstance(container, YMap):
            pos = container.key_at(key) if on_key else container.at(key)
        elif isinstance(container, YList):
            pos = container.at(key)
        else:
            pos = Pos()
        check.error(pos, message)

    return SpecReader(report)


def timing_at(check: Checker, data: YMap, key: str = "timing") -> Any:
    value = data[key]
    if not isinstance(value, YMap):
        return check.error(data.at(key), f"'{key}' must be a mapping of timing settings, got {shown(value)}")
    spec = parse_timing(spec_reader(check), value)
    return INVALID if spec is SPEC_INVALID else spec


def fault_at(check: Checker, data: YMap, fault_id: str, source: str = "rule") -> Any:
    rule = parse_fault(spec_reader(check), data, "fault", fault_id=fault_id, source=source)
    return INVALID if rule is SPEC_INVALID else rule


def background_faults(check: Checker, data: YMap, stem: str) -> Any:
    items = check.items(data["faults"], data.at("faults"), "'faults'", allow_empty=True)
    if items is None:
        return INVALID
    reader = spec_reader(check)
    rules = [
        parse_fault(reader, items, index, fault_id=f"{stem}:faults[{index}]", source="scenario", where="in faults")
        for index in range(len(items))
    ]
    return INVALID if SPEC_INVALID in rules else tuple(rules)


def loop_guard_at(check: Checker, data: YMap) -> Any:
    return _mapping_spec(check, data, "loop_guard", parse_loop_guard)


def rate_limits_at(check: Checker, data: YMap) -> Any:
    return _mapping_spec(check, data, "rate_limits", parse_rate_limits)


def _mapping_spec(check: Checker, data: YMap, key: str, parse: Callable[[SpecReader, Any], Any]) -> Any:
    value = data[key]
    if not isinstance(value, YMap):
        return check.error(data.at(key), f"'{key}' must be a mapping, got {shown(value)}")
    spec = parse(spec_reader(check), value)
    return INVALID if spec is SPEC_INVALID else spec
