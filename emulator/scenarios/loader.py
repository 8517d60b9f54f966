"""Scenario files → Scenario objects, collecting every problem of a file before giving up."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from emulator.profiles import PROFILES
from emulator.scenarios.checks import INVALID, Checker, shown, suggestion
from emulator.scenarios.matchers import ALWAYS
from emulator.scenarios.parse_actions import parse_action
from emulator.scenarios.parse_extras import (
    background_faults,
    loop_guard_at,
    rate_limits_at,
    spec_reader,
    timing_at,
)
from emulator.scenarios.parse_when import parse_when
from emulator.scenarios.problems import Pos, Problem, ProblemLog, ScenarioError
from emulator.scenarios.schema import (
    FALLBACKS,
    GENERATED_TOOL_CALLS,
    KEYS,
    MAX_SENTENCES,
    DeclaredModel,
    Rule,
    Scenario,
    ScenarioSettings,
)
from emulator.scenarios.yamlpos import YList, YMap, load_yaml, to_plain
from emulator.specparse import INVALID as SPEC_INVALID
from emulator.timing import MAX_TIME_SCALE, TimingSpec

SUFFIXES = (".yaml", ".yml")


def parse_scenario(text: str, file: str = "<string>", name: str | None = None) -> Scenario:
    """One scenario from YAML text; `file` is used in problems and rule keys. Raises ScenarioError."""
    log = ProblemLog(file)
    scenario = _parse(text, file, name, log)
    problems = list(log.problems)
    if scenario is not None:  # the rules that could be read, even when others could not
        problems += unreachable_rules(list(scenario.rules))
    if problems or scenario is None:
        raise ScenarioError(problems)
    return scenario


MAX_FILE_BYTES = 64 * 1024 * 1024


def load_scenario_file(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        if not path.is_file():
            raise ScenarioError([Problem(str(path), 1, 1, "not a regular file")])
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ScenarioError([Problem(str(path), 1, 1, f"cannot read the file: {error.strerror or error}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError([Problem(str(path), 1, 1, f"the file is larger than {MAX_FILE_BYTES} bytes")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - data.rfind(b"\n", 0, error.start)
        raise ScenarioError(
            [Problem(str(path), line, column, f"the file is not UTF-8 text ({error.reason})")]
        ) from None
    return replace(parse_scenario(text, str(path), path.stem), path=path)


def scenario_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Files in match order: each path as given, a folder's *.yaml / *.yml files sorted by name."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        elif path.exists():
            files.append(path)
        else:
            problems.append(Problem(str(path), 1, 1, "no such file or folder"))
    return files, problems


def load_scenarios(paths: Iterable[str | Path]) -> list[Scenario]:
    """Every scenario in order; raises one ScenarioError listing the problems of all files."""
    files, problems = scenario_files(paths)
    scenarios: list[Scenario] = []
    for file in files:
        try:
            scenarios.append(load_scenario_file(file))
        except ScenarioError as error:
            problems += error.problems
    if not problems:
        problems += unreachable_across_files(scenarios)
    if problems:
        raise ScenarioError(problems)
    return scenarios


def validate_paths(paths: Iterable[str | Path]) -> list[Problem]:
    """What `tokenhub-emulator validate` prints: every problem, never raising. A folder without scenario
    files is one: validating nothing is a mistake (a wrong path, a file named .yml.txt)."""
    paths = list(paths)
    empty = [Path(p) for p in paths if Path(p).is_dir() and not scenario_files([p])[0]]
    problems = [
        Problem(
            str(folder),
            1,
            1,
            f"no scenario files in this folder: nothing to check (expected {' or '.join('*' + s for s in SUFFIXES)} files)",
        )
        for folder in empty
    ]
    try:
        load_scenarios(paths)
    except ScenarioError as error:
        problems += error.problems
    return problems


# ---------------------------------------------------------------- unreachable rules


def unreachable_rules(rules: Iterable[Rule]) -> list[Problem]:
    """Rules shadowed by an unconditional rule above them, or by one with exactly the same `when`."""
    return [_unreachable(rule, shadow) for rule, shadow in _shadowed(rules)]


def unreachable_across_files(scenarios: Iterable[Scenario]) -> list[Problem]:
    """The same, for rules shadowed by a rule of a file loaded before theirs (one file's own are checked on load)."""
    rules = [rule for scenario in scenarios for rule in scenario.rules]
    return [_unreachable(rule, shadow) for rule, shadow in _shadowed(rules) if shadow.file != rule.file]


def _shadowed(rules: Iterable[Rule]) -> Iterator[tuple[Rule, Rule]]:
    """(rule, the first rule above it that always answers in its place)."""
    catch_all: Rule | None = None
    first_with: dict[str, Rule] = {}
    for rule in rules:
        shadow = catch_all or first_with.get(rule.when_signature)
        if shadow is not None:
            yield rule, shadow
        first_with.setdefault(rule.when_signature, rule)
        if rule.unconditional and catch_all is None:
            catch_all = rule


def _unreachable(rule: Rule, shadow: Rule) -> Problem:
    where = "above it" if shadow.file == rule.file else f"in {shadow.file}, loaded before this file,"
    why = "matches every request" if shadow.unconditional else "has the same conditions"
    message = f"rule {rule.name!r} can never match: rule {shadow.name!r} {where} {why}"
    return Problem(rule.file, rule.pos.line, rule.pos.column, message)


# ---------------------------------------------------------------- one file


def _parse(text: str, file: str, name: str | None, log: ProblemLog) -> Scenario | None:
    stem = name or Path(file).stem
    document = load_yaml(text, log)
    check = Checker(log)
    if document is None:
        if not log:  # not a syntax error: there is nothing in the file
            check.error(Pos(), "the file is empty; expected a mapping with 'rules' (or a list of rules)")
        return None
    if isinstance(document, YList):  # shorthand: the file is just its rules
        return Scenario(name=stem, path=None, rules=_rules(check, document, document.pos, file, stem))
    if not isinstance(document, YMap):
        check.error(Pos(), f"the top level must be a mapping with 'rules' (or a list of rules), got {shown(document)}")
        return None
    check.keys(document, KEYS["scenario"], "at the top level")
    get = document.get
    title = _optional_text(check, document, "name") or stem
    description = (
        check.text(get("description"), document.at("description"), "'description'") if "description" in document else ""
    )
    models = _models(check, get("models"), document.at("models")) if "models" in document else ()
    settings = (
        _settings(check, get("settings"), document.at("settings"), stem)
        if "settings" in document
        else ScenarioSettings()
    )
    rules = _rules(check, get("rules"), document.at("rules"), file, stem) if "rules" in document else ()
    title = stem if title is INVALID else title
    description = "" if description is INVALID else description
    return Scenario(name=title, path=None, description=description, models=models, settings=settings, rules=rules)


def _models(check: Checker, value: Any, pos: Pos) -> tuple[DeclaredModel, ...]:
    items = check.items(value, pos, "'models'") or YList(pos)  # none, when they are wrong: reported
    models: list[DeclaredModel] = []
    first_seen: dict[str, Pos] = {}
    for index, item in enumerate(items):
        data = check.mapping(item, items.at(index), "each model", " with at least an id")
        if data is None:
            continue
        check.keys(data, KEYS["model"], "in models")
        if "id" not in data:
            check.error(data.pos, "a model needs an 'id'")
            continue
        model_id = check.text(data["id"], data.at("id"), "'id' in models", allow_empty=False)
        serves = _optional_text(check, data, "serves")
        owned_by = _optional_text(check, data, "owned_by")
        reasoning = (
            check.boolean(data["reasoning"], data.at("reasoning"), "'reasoning'") if "reasoning" in data else False
        )
        if INVALID in (model_id, serves, reasoning, owned_by):
            continue
        if model_id in first_seen:
            check.error(
                data.at("id"), f"model {model_id!r} is declared twice (first at line {first_seen[model_id].line})"
            )
            continue
        first_seen[model_id] = data.at("id")
        models.append(DeclaredModel(id=model_id, serves=serves, reasoning=reasoning, owned_by=owned_by))
    return tuple(models)


def _optional_text(check: Checker, data: YMap, key: str) -> Any:
    return check.text(data[key], data.at(key), f"'{key}'", allow_empty=False) if key in data else None


def _settings(check: Checker, value: Any, pos: Pos, stem: str = "") -> ScenarioSettings:
    data = check.mapping(value, pos, "'settings'")
    if data is None:
        return ScenarioSettings()
    check.keys(data, KEYS["settings"], "in settings")
    fallback = (
        check.choice(data["fallback"], data.at("fallback"), "'fallback'", FALLBACKS) if "fallback" in data else None
    )
    locale = _locale(check, data["locale"], data.at("locale")) if "locale" in data else None
    sentences = _sentences(check, data["sentences"], data.at("sentences")) if "sentences" in data else None
    tool_calls = _generate(check, data["generate"], data.at("generate")) if "generate" in data else None
    timing = timing_at(check, data) if "timing" in data else None
    if "time_scale" in data:
        timing = _with_time_scale(check, data, timing)
    faults = background_faults(check, data, stem) if "faults" in data else ()
    rate_limits = rate_limits_at(check, data) if "rate_limits" in data else None
    loop_guard = loop_guard_at(check, data) if "loop_guard" in data else None
    profile = (
        check.choice(data["profile"], data.at("profile"), "'profile'", tuple(PROFILES)) if "profile" in data else None
    )
    api_keys = _api_keys(check, data["api_keys"], data.at("api_keys")) if "api_keys" in data else ()
    return ScenarioSettings(
        fallback=None if fallback is INVALID else fallback,
        locale=None if locale is INVALID else locale,
        sentences=None if sentences is INVALID else sentences,
        tool_calls=None if tool_calls is INVALID else tool_calls,
        timing=None if timing is INVALID else timing,
        faults=() if faults is INVALID else faults,
        rate_limits=None if rate_limits is INVALID else rate_limits,
        loop_guard=None if loop_guard is INVALID else loop_guard,
        profile=None if profile is INVALID else profile,
        api_keys=() if api_keys is INVALID else api_keys,
    )


def _with_time_scale(check: Checker, data: YMap, timing: Any) -> Any:
    """`settings.time_scale` is the scenario's timing's `time_scale`, written where a reader looks for it."""
    scale = spec_reader(check).number(data, "time_scale", low=0, high=MAX_TIME_SCALE, above=True)
    if isinstance(timing, TimingSpec) and timing.time_scale is not None:
        return check.error(data.at("time_scale"), "give 'time_scale' once: in settings or in settings.timing")
    if scale is SPEC_INVALID or timing is INVALID:
        return INVALID
    return TimingSpec(time_scale=float(scale)).over(timing)


def _generate(check: Checker, value: Any, pos: Pos) -> Any:
    """`generate: {tool_calls: forced | auto}`: the tool calls a generated reply may make."""
    data = check.mapping(value, pos, "'generate'")
    if data is None:
        return INVALID
    check.keys(data, KEYS["generate"], "in generate")
    if "tool_calls" not in data:
        return None
    return check.choice(data["tool_calls"], data.at("tool_calls"), "'tool_calls'", GENERATED_TOOL_CALLS)


def _api_keys(check: Checker, value: Any, pos: Pos) -> Any:
    items = check.items(value, pos, "'api_keys'")
    if items is None:
        return INVALID
    keys = [check.text(item, items.at(i), "each of 'api_keys'", allow_empty=False) for i, item in enumerate(items)]
    return INVALID if INVALID in keys else tuple(keys)


def _locale(check: Checker, value: Any, pos: Pos) -> Any:
    locale = check.text(value, pos, "'locale'", allow_empty=False)
    if locale is INVALID:
        return INVALID
    try:
        from faker.config import AVAILABLE_LOCALES
    except ImportError:  # without faker, any locale name is accepted
        return locale
    if locale not in AVAILABLE_LOCALES:
        return check.error(pos, f"unknown locale {locale!r}{suggestion(locale, AVAILABLE_LOCALES)}")
    return locale


def _sentences(check: Checker, value: Any, pos: Pos) -> Any:
    what = f"'sentences' must be an integer or a list [min, max] of integers between 1 and {MAX_SENTENCES}"
    if isinstance(value, int) and not isinstance(value, bool):
        pair = [value, value]
    elif isinstance(value, YList) and len(value) == 2:
        pair = list(value)
    else:
        return check.error(pos, f"{what}, got {shown(value)}")
    if not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_SENTENCES for n in pair):
        return check.error(pos, f"{what}, got {shown(to_plain(value))}")
    if pair[0] > pair[1]:
        return check.error(pos, f"'sentences' minimum ({pair[0]}) is greater than its maximum ({pair[1]})")
    return (pair[0], pair[1])


def _rules(check: Checker, value: Any, pos: Pos, file: str, stem: str) -> tuple[Rule, ...]:
    items = check.items(value, pos, "'rules'", allow_empty=True) or YList(pos)  # none, when they are wrong
    rules: list[Rule] = []
    names: dict[str, Pos] = {}
    for index, item in enumerate(items):
        item_pos = items.at(index)
        data = check.mapping(item, item_pos, "each rule", " with when and reply, fail or sequence")
        if data is None:
            continue
        check.keys(data, KEYS["rule"], "in rule")
        name = f"{stem}#{index + 1}"
        if "name" in data:
            name = check.text(data["name"], data.at("name"), "'name' in rule", allow_empty=False)
            if name is not INVALID and name in names:
                check.error(data.at("name"), f"rule name {name!r} is used twice (first at line {names[name].line})")
            elif name is not INVALID:
                names[name] = data.at("name")
        when = parse_when(check, data["when"], data.at("when")) if "when" in data else ALWAYS
        action = parse_action(check, data, seed=f"{stem}#{index + 1}")
        if name is INVALID or action is None:
            continue
        raw_when = to_plain(data.get("when") or {})
        rules.append(
            Rule(
                name=name,
                key=f"{file}#{index + 1}",
                when=when,
                action=action,
                file=file,
                pos=item_pos,
                unconditional=raw_when == {},
                when_signature=json.dumps(raw_when, sort_keys=True, default=str),
                seed=f"{stem}#{index + 1}",
            )
        )
    return tuple(rules)
