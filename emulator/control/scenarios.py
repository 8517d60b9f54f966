"""Scenario operations behind the control API: read a YAML body or a server-side path, add, replace, remove, list.

Without a test id they change the shared scenarios (what every request sees). With one, they change that
test's overlay: rules tried first, for requests carrying its `x-emulator-test-id` only.

A server-side `path` is read only inside the scenario roots (`--scenario-root`, else the folders of
`--scenario`), after following every link: anything else is refused with the same answer whether it exists
or not. A file that is not a scenario is never quoted back: its problems are replaced by one line that says so.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from emulator.control.endpoint import ControlError
from emulator.scenarios import Problem, Scenario, ScenarioError, parse_scenario
from emulator.scenarios.actions import SequenceAction
from emulator.scenarios.loader import SUFFIXES, load_scenario_file, unreachable_across_files
from emulator.scenarios.schema import KEYS

if TYPE_CHECKING:
    from emulator.config import Settings
    from emulator.server.runtime import Runtime

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
    source = {"yaml": text, "file": file or label, "label": label, "name": name or ""}
    return replace(scenario, name=name or scenario.name, source=source)


def _stem(file: str | None) -> str | None:
    """What a scenario read from `file` (a path, or a label such as a test's name) is called: its base name
    without .yaml / .yml; its rules are then named `<stem>#<n>` unless they have names of their own."""
    if not file:
        return None
    base = file.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in SUFFIXES:
        base = base.removesuffix(suffix)
    return base or None


def scenario_roots(settings: Settings) -> list[Path]:
    """Where `path` loads may read: --scenario-root, else each --scenario folder (a file's own folder)."""
    if settings.scenario_roots is not None:
        return list(settings.scenario_roots)
    return [path if path.is_dir() else path.parent for path in settings.scenarios]


def load_path(runtime: Runtime, path: str) -> list[Scenario]:
    """The scenarios of a file or folder inside the scenario roots."""
    files = _files_under_roots(path, scenario_roots(runtime.settings))
    scenarios: list[Scenario] = []
    problems: list[Problem] = []
    for file in files:
        try:
            scenarios.append(load_scenario_file(file))
        except ScenarioError as error:
            problems += _shown_problems(file, error.problems)
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as error:  # a loader slip: not a 500
            problems.append(Problem(str(file), 1, 1, f"the scenario could not be read: {error}"))
    if not problems:
        problems = unreachable_across_files(scenarios)
    if problems:
        raise invalid(problems)
    return scenarios


def _files_under_roots(raw: str, roots: Sequence[Path]) -> list[Path]:
    """The scenario files `raw` names, each inside a root once every link is followed; else 403 / 404."""
    if not roots:
        raise ControlError(
            403,
            "This server loads no scenario paths: start it with --scenario-root DIR (or --scenario DIR) to allow "
            "the folders to read from, or send the scenario's YAML instead.",
            code="path_not_allowed",
            param="path",
        )
    real_roots = [os.path.realpath(root) for root in roots]
    given = Path(raw)
    candidates = [given] if given.is_absolute() else [Path(root) / given for root in roots]
    inside = [c for c in candidates if _within(os.path.realpath(c), real_roots)]
    if not inside:
        raise _outside(raw, roots)
    found = next((c for c in inside if c.exists()), None)
    if found is None:
        raise ControlError(
            404, f"No scenario file or folder {raw!r} in the scenario roots.", code="path_not_found", param="path"
        )
    if found.is_dir():
        files = sorted(p for p in found.iterdir() if p.suffix in SUFFIXES)
        return [f for f in files if _within(os.path.realpath(f), real_roots) and f.is_file()]
    if found.suffix not in SUFFIXES:
        raise ControlError(
            400,
            f"{raw!r} is not a scenario file: its name must end in .yaml or .yml.",
            code="invalid_path",
            param="path",
        )
    return [found]


def _within(real: str, real_roots: Sequence[str]) -> bool:
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in real_roots)


def _outside(raw: str, roots: Sequence[Path]) -> ControlError:
    shown = ", ".join(str(root) for root in roots)
    return ControlError(
        403,
        f"The path {raw!r} is outside the scenario roots ({shown}); the control API reads scenario files there "
        "only (--scenario-root adds a folder).",
        code="path_not_allowed",
        param="path",
    )


RULE_KEYS = frozenset({"when", "reply", "fail", "sequence"})


def _shown_problems(file: Path, problems: list[Problem]) -> list[Problem]:
    """The problems of a file that did not load, if it is a scenario: YAML whose top level is a mapping of
    scenario keys with its rules, or a list of rules. Of any other file, where it is not YAML, or that it is not
    a scenario — never a word of what it holds."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return [Problem(str(file), 1, 1, "not a scenario file: not UTF-8 text")]
    try:
        document = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - compose only
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return [Problem(str(file), line, column, "not a scenario file: not valid YAML here")]
    except yaml.YAMLError:
        return [Problem(str(file), 1, 1, "not a scenario file: not valid YAML")]
    if isinstance(document, yaml.MappingNode):
        keys = {key.value for key, _ in document.value if isinstance(key, yaml.ScalarNode)}
        if "rules" in keys and keys <= set(KEYS["scenario"]):
            return problems
    elif isinstance(document, yaml.SequenceNode) and all(
        isinstance(item, yaml.MappingNode)
        and RULE_KEYS & {key.value for key, _ in item.value if isinstance(key, yaml.ScalarNode)}
        for item in document.value
    ):
        return problems
    return [Problem(str(file), 1, 1, "not a scenario file: expected a mapping with 'rules' or a list of rules")]


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


async def shared(runtime: Runtime, test_id: str | None) -> None:
    """What was just loaded or removed, for every worker and replica (when the state is shared)."""
    if runtime.shared is not None:
        await runtime.shared.publish_scenarios(runtime, test_id)


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
