"""Scenario operations behind the control API: read a YAML body or a server-side path, add, replace, remove, list.

Without a test id they change the shared scenarios (what every request sees). With one, they change that
test's overlay: rules tried first, for requests carrying its `x-emulator-test-id` only.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator.control_http import ControlError
from emulator.scenarios import Problem, Scenario, ScenarioError, load_scenarios, parse_scenario
from emulator.scenarios.actions import SequenceAction
from emulator.scenarios.loader import SUFFIXES, unreachable_across_files

if TYPE_CHECKING:
    from emulator.app import Runtime

_unnamed = itertools.count(1)


def parse_body(text: str, name: str | None, file: str | None = None) -> Scenario:
    """A scenario from YAML text; an unnamed one gets a unique name so that loads add up.

    `file` is what problems and the listing call it (the client's file name, when it read one).
    """
    label = name or _stem(file) or f"body-{next(_unnamed)}"
    try:
        scenario = parse_scenario(text, file or label, label)
    except ScenarioError as error:
        raise invalid(error.problems) from None
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as error:  # a loader slip: not a 500
        raise invalid([Problem(file or label, 1, 1, f"the scenario could not be read: {error}")]) from None
    return replace(scenario, name=name) if name else scenario


def _stem(file: str | None) -> str | None:
    """What a scenario read from `file` (a path, or a label such as a test's name) is called: its base name
    without .yaml / .yml; its rules are then named `<stem>#<n>` unless they have names of their own."""
    if not file:
        return None
    base = file.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in SUFFIXES:
        base = base.removesuffix(suffix)
    return base or None


def load_path(path: str) -> list[Scenario]:
    """The scenarios of a server-side file or folder."""
    try:
        return load_scenarios([Path(path)])
    except ScenarioError as error:
        raise invalid(error.problems) from None
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as error:  # a loader slip: not a 500
        raise invalid([Problem(path, 1, 1, f"the scenario could not be read: {error}")]) from None


def invalid(problems: list[Problem]) -> ControlError:
    shown = "; ".join(str(p) for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return ControlError(
        400,
        f"The scenario is invalid: {shown}{more}",
        code="invalid_scenario",
        problems=[asdict(p) for p in problems],
    )


def current(runtime: Runtime, test_id: str | None) -> list[Scenario]:
    return runtime.engine.overlay(test_id) if test_id is not None else list(runtime.engine.scenarios)


def install(runtime: Runtime, test_id: str | None, scenarios: list[Scenario], *, replace_all: bool) -> None:
    """Add (a scenario with a name already loaded takes its place) or replace the whole set of the scope."""
    if replace_all:
        merged = list(scenarios)
    else:
        merged = current(runtime, test_id)
        for scenario in scenarios:
            at = next((i for i, s in enumerate(merged) if s.name == scenario.name), None)
            if at is None:
                merged.append(scenario)
            else:
                merged[at] = scenario
    problems = unreachable_across_files(merged)
    if problems:
        raise invalid(problems)
    _store(runtime, test_id, merged, keep_files=not replace_all)


def remove(runtime: Runtime, test_id: str | None, name: str | None) -> list[str]:
    """Remove one scenario by name (None: all of the scope); the names removed."""
    scenarios = current(runtime, test_id)
    gone = [s.name for s in scenarios if name is None or s.name == name]
    if name is not None and not gone:
        loaded = ", ".join(s.name for s in scenarios) or "none"
        raise ControlError(
            404,
            f"No scenario named {name!r} is loaded here. Loaded: {loaded}.",
            code="scenario_not_found",
            param="name",
        )
    _store(runtime, test_id, [s for s in scenarios if s.name not in gone], keep_files=True)
    return gone


def _store(runtime: Runtime, test_id: str | None, scenarios: list[Scenario], *, keep_files: bool) -> None:
    if test_id is not None:
        runtime.set_overlay(test_id, scenarios)
        return
    old_files = runtime.engine.scenarios[: runtime.scenario_status.from_files] if keep_files else []
    from_files = sum(1 for s in scenarios if any(s is f for f in old_files))
    runtime.replace_scenarios(scenarios, from_files=from_files)


def describe(runtime: Runtime, test_id: str | None) -> list[dict[str, Any]]:
    shared = runtime.engine.scenarios
    from_files = runtime.scenario_status.from_files
    listed = [_describe(s, "api", test_id) for s in runtime.engine.overlay(test_id)] if test_id is not None else []
    listed += [_describe(s, "file" if i < from_files else "api", None) for i, s in enumerate(shared)]
    return listed


def _describe(scenario: Scenario, source: str, scope: str | None) -> dict[str, Any]:
    file = str(scenario.path) if scenario.path else (scenario.rules[0].file if scenario.rules else None)
    return {
        "name": scenario.name,
        "file": file,
        "source": source,
        "test_id": scope,
        "description": scenario.description,
        "rules": [rule.name for rule in scenario.rules],
        "sequences": {
            rule.name: len(rule.action.steps) for rule in scenario.rules if isinstance(rule.action, SequenceAction)
        },
        "models": [model.id for model in scenario.models],
    }


def reload_status(runtime: Runtime) -> dict[str, Any]:
    status = runtime.scenario_status
    error = None
    if status.last_error is not None:
        error = {
            "time": status.last_error_time,
            "message": "; ".join(str(p) for p in status.last_error),
            "problems": [asdict(p) for p in status.last_error],
        }
    return {"count": status.reloads, "last_reload": status.last_reload, "last_error": error}
