"""Scenario files: YAML rules that decide what the emulator answers, and the engine that applies them.

scenarios = load_scenarios(["scenarios/"])          # raises ScenarioError with every Problem
engine = Engine(scenarios, generator=Generator(seed=0))
outcome = engine.respond(exchange)                  # Reply | Failure
"""

from emulator.scenarios.engine import Engine, RuleMiss, State, merged_settings
from emulator.scenarios.loader import (
    load_scenario_file,
    load_scenarios,
    parse_scenario,
    scenario_files,
    validate_paths,
)
from emulator.scenarios.problems import Problem, ScenarioError
from emulator.scenarios.schema import KEYS, DeclaredModel, Rule, Scenario, ScenarioSettings

__all__ = [
    "KEYS",
    "DeclaredModel",
    "Engine",
    "Problem",
    "Rule",
    "RuleMiss",
    "Scenario",
    "ScenarioError",
    "ScenarioSettings",
    "State",
    "load_scenario_file",
    "load_scenarios",
    "merged_settings",
    "parse_scenario",
    "scenario_files",
    "validate_paths",
]
