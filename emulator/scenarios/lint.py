"""Warnings about scenarios that load but will not do what they say (`validate` prints them; `serve` logs them).

- a rule whose `model` condition names a model that no scenario declares and the built-in catalog lacks: a
  request for that model is refused (403, model not available) before any rule is tried, so the rule can
  never answer.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from pathlib import Path

from emulator.profiles import BUILTIN_MODELS
from emulator.scenarios.loader import load_scenarios
from emulator.scenarios.matchers import AllOf, AnyOf, Condition, ModelIs
from emulator.scenarios.problems import Problem, ScenarioError
from emulator.scenarios.schema import Scenario

GLOB_CHARACTERS = frozenset("*?[")


def scenario_warnings(paths: Iterable[str | Path]) -> list[Problem]:
    """The warnings for scenario files that load (files with problems are `validate`'s errors instead)."""
    try:
        return warnings_for(load_scenarios(paths))
    except ScenarioError:
        return []


def warnings_for(scenarios: Iterable[Scenario]) -> list[Problem]:
    scenarios = list(scenarios)
    known = _known_names(scenarios)
    warnings = []
    for scenario in scenarios:
        for rule in scenario.rules:
            for pattern in _model_patterns(rule.when):
                if not any(_names_match(pattern, name) for name in known):
                    warnings.append(
                        Problem(rule.file, rule.pos.line, rule.pos.column, _unknown_model(rule.name, pattern))
                    )
    return warnings


def _unknown_model(rule: str, pattern: str) -> str:
    builtin = ", ".join(model.id for model in BUILTIN_MODELS)
    if set(pattern) & GLOB_CHARACTERS:
        return (
            f"rule {rule!r}: the model pattern {pattern!r} matches no model that a scenario declares or the "
            f"built-in catalog has; declare one under 'models:' or use a built-in model: {builtin}"
        )
    return (
        f"rule {rule!r} names model {pattern!r}, which no scenario declares and the built-in catalog does not "
        f"have: a request for it is refused (model not available) before any rule is tried. Declare it under "
        f"'models:' (models: [{{id: {pattern}}}]) or use a built-in model: {builtin}"
    )


def _known_names(scenarios: list[Scenario]) -> set[str]:
    """Every id a request can name and get past the catalog: built-in ids, their provider/model forms, and
    the declared ids."""
    names = set()
    for model in BUILTIN_MODELS:
        names.add(model.id)
        names.update(f"{provider}/{model.id}" for provider in model.providers)
    for scenario in scenarios:
        names.update(model.id for model in scenario.models)
    return names


def _names_match(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) if set(pattern) & GLOB_CHARACTERS else name == pattern


def _model_patterns(condition: Condition) -> Iterator[str]:
    """The model patterns of a rule's conditions (under `not`, a model condition asks for its absence: skipped)."""
    if isinstance(condition, ModelIs):
        yield from condition.patterns
    elif isinstance(condition, AllOf | AnyOf):
        for child in condition.children:
            yield from _model_patterns(child)
