"""Loading scenario files: every kind of mistake gives our message at the right line:column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.scenarios import (
    KEYS,
    DeclaredModel,
    Problem,
    ScenarioError,
    ScenarioSettings,
    load_scenario_file,
    load_scenarios,
    parse_scenario,
    validate_paths,
)
from emulator.scenarios.actions import FailAction, ReplyAction, SequenceAction
from tests.helpers.servers import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "scenarios"


def problems(text: str) -> list[str]:
    """The problems of a YAML text, as 'line:column: message'."""
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(textwrap.dedent(text), "s.yaml")
    return [f"{p.line}:{p.column}: {p.message}" for p in caught.value.problems]


def test_problem_prints_as_file_line_column_message() -> None:
    assert str(Problem("a.yaml", 3, 7, "oops")) == "a.yaml:3:7: oops"


def test_the_brief_example_loads() -> None:
    scenario = load_scenario_file(FIXTURES / "weather-tools.yaml")
    assert scenario.name == "weather-tools"
    assert scenario.path == FIXTURES / "weather-tools.yaml"
    assert scenario.description.startswith("Tool-call round trip")
    assert scenario.models == (
        DeclaredModel("ep-a1b2c3d4", serves="glm-5"),
        DeclaredModel("my-local-model", reasoning=True, owned_by="acme"),
    )
    assert scenario.settings == ScenarioSettings(fallback="generate", locale="en_US", sentences=(1, 3))
    assert [rule.name for rule in scenario.rules] == ["ask weather", "answer with weather", "flaky then fine"]
    assert isinstance(scenario.rules[0].action, ReplyAction)
    sequence = scenario.rules[2].action
    assert isinstance(sequence, SequenceAction) and sequence.then == "repeat_last"
    assert [type(step) for step in sequence.steps] == [FailAction, FailAction, ReplyAction]


def test_defaults_name_from_file_stem_and_rules_by_number() -> None:
    scenario = parse_scenario("rules:\n  - when: {turn: 2}\n    reply: {}\n  - reply: {content: hi}\n", "dir/chat.yaml")
    assert scenario.name == "chat"
    assert [rule.name for rule in scenario.rules] == ["chat#1", "chat#2"]
    assert not scenario.rules[0].unconditional and scenario.rules[1].unconditional
    assert (scenario.rules[1].pos.line, scenario.rules[1].pos.column) == (4, 5)


def test_a_list_of_rules_is_shorthand_for_a_file_with_only_rules() -> None:
    scenario = parse_scenario("- when: {turn: 1}\n  reply: {content: a}\n- fail: {status: 500}\n", "short.yml")
    assert scenario.name == "short" and len(scenario.rules) == 2


def test_a_file_without_rules_may_only_declare_models() -> None:
    scenario = parse_scenario("models:\n  - {id: my-model, owned_by: me}\n")
    assert scenario.rules == () and scenario.models == (DeclaredModel("my-model", owned_by="me"),)


def case(text: str, at: str | tuple[int, int] | None, message: str) -> object:
    """A broken text, where its problem points and the message.

    `at`: the first occurrence of a piece of the text (a leading newline is skipped), a (line, column), or None: 1:1.
    """
    return pytest.param(text, at, message, id=message[:60])


def position(text: str, at: str | tuple[int, int] | None) -> tuple[int, int]:
    if at is None:
        return 1, 1
    if isinstance(at, tuple):
        return at
    index = text.index(at) + (1 if at.startswith("\n") else 0)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


R = "rules:\n  - "  # most cases are one rule


@pytest.mark.parametrize(
    ("text", "at", "message"),
    [
        # YAML itself
        case(R + "reply: {content: x\n", (3, 1), "invalid YAML: expected ',' or '}', but got '<stream end>'"),
        case("rules:\n\t- reply: {}\n", "\t", "invalid YAML: found character '\\t' that cannot start any token"),
        case("rules: []\nrules: []\n", "\nrules", "duplicate key 'rules' (first defined at line 1)"),
        case(
            R + "reply: {content: a, content: b}\n", "content: b", "duplicate key 'content' (first defined at line 2)"
        ),
        case("", None, "the file is empty; expected a mapping with 'rules' (or a list of rules)"),
        case("# nothing but a comment\n", None, "the file is empty"),
        case("just text\n", None, "the top level must be a mapping with 'rules' (or a list of rules), got 'just text'"),
        case("rules: []\n---\nrules: []\n", "---", "invalid YAML: a scenario file holds a single document"),
        case(R + "reply: !!python/object:os.system {}\n", "!!", "unsupported YAML tag '!!python/object:os.system'"),
        case("a: &a [*a]\n", "&a", "a YAML alias refers to the mapping or list that contains it"),
        case(
            R + "reply:\n      ? {a: 1}\n      : 2\n",
            "{a",
            "a mapping key must be a plain value, not a mapping or a list",
        ),
        # top level, models, settings
        case("rulez: []\n", "rulez", "unknown key 'rulez' at the top level; did you mean 'rules'?"),
        case("name: ''\n", "''", "'name' must not be empty"),
        case("rules: {a: 1}\n", "{", "'rules' must be a list, got a mapping"),
        case("models: [{serves: glm-5}]\n", "{", "a model needs an 'id'"),
        case("models:\n  - id: m\n  - id: m\n", (3, 9), "model 'm' is declared twice (first at line 2)"),
        case(
            "models: [{id: m, reasoning: yes please}]\n", "yes", "'reasoning' must be true or false, got 'yes please'"
        ),
        case("models: [{id: m, servs: x}]\n", "servs", "unknown key 'servs' in models; did you mean 'serves'?"),
        case(
            "settings: {fallback: eror}\n",
            "eror",
            "'fallback' must be generate or error, got 'eror'; did you mean 'error'?",
        ),
        case("settings: {sentences: [3, 1]}\n", "[", "'sentences' minimum (3) is greater than its maximum (1)"),
        case(
            "settings: {sentences: [1, 2, 3]}\n", "[", "'sentences' must be an integer or a list [min, max] of integers"
        ),
        case(
            "settings: {generate: {tool_calls: always}}\n",
            "always",
            "'tool_calls' must be forced or auto, got 'always'",
        ),
        case("settings: {generate: {tools: auto}}\n", "tools", "unknown key 'tools' in generate"),
        case("settings: {locale: en_UK}\n", "en_UK", "unknown locale 'en_UK'; did you mean 'en_US'?"),
        case("settings: {seed: 1}\n", "seed", "unknown key 'seed' in settings"),
        # rules and actions
        case(R + "when: {turn: 1}\n", "when", "a rule needs exactly one of reply, fail or sequence"),
        case(
            R + "reply: {}\n    fail: {status: 500}\n",
            "fail",
            "a rule needs exactly one of reply, fail or sequence, found 'reply' and 'fail'",
        ),
        case(R + "replies: {}\n", "replies", "unknown key 'replies' in rule; did you mean 'reply'?"),
        case(
            R + "reply:\n", (2, 11), "'reply' must be a mapping (write 'reply: {}' for a generated reply), got nothing"
        ),
        case(R + "reply: {then: cycle}\n", "then", "unknown key 'then' in reply"),
        case(R + "reply: {}\n    then: cycle\n", "then", "'then' only applies to a sequence"),
        case(R + "[reply]\n", "[", "each rule must be a mapping with when and reply, fail or sequence, got a list"),
        case(
            R + "{name: a, reply: {}, when: {turn: 1}}\n  - {name: a, reply: {}}\n",
            "a, reply: {}}",
            "rule name 'a' is used twice (first at line 2)",
        ),
        case(
            R + "reply: {content: 42}\n",
            "42",
            "'content' must be a string, got 42 (put it in quotes to use it as text)",
        ),
        case(
            R + "reply: {finish_reason: done}\n",
            "done",
            "'finish_reason' must be stop, length, tool_calls or content_filter, got 'done'",
        ),
        case(
            R + "reply: {usage: {prompt_tokens: -1}}\n",
            "-1",
            "'prompt_tokens' must be an integer of at least 0, got -1",
        ),
        case(R + "reply: {usage: {input_tokens: 1}}\n", "input_tokens", "unknown key 'input_tokens' in usage"),
        case(
            R + "reply: {content: a, choices: [{content: b}]}\n",
            "content",
            "'content' cannot be combined with 'choices'",
        ),
        case(R + "reply: {choices: [{usage: {}}]}\n", "usage", "unknown key 'usage' in choice"),
        case(R + "reply: {tool_calls: [{arguments: {}}]}\n", "{arguments", "a tool call needs a 'name'"),
        case(
            R + "reply: {tool_calls: [{name: f, arguments: 3}]}\n",
            "3",
            "'arguments' must be a mapping or a JSON string, got 3",
        ),
        case(R + "reply: {tool_calls: [{name: f, id: ''}]}\n", "''", "'id' in tool call must not be empty"),
        case(R + "reply: {tool_calls: {name: f}}\n", "{name", "'tool_calls' must be a list, got a mapping"),
        case(R + "fail: {status: abc}\n", "abc", "'status' must be an integer between 400 and 599, got 'abc'"),
        case(R + "fail: {status: 200}\n", "200", "'status' must be an integer between 400 and 599, got 200"),
        case(R + "fail: {status: true}\n", "true", "'status' must be an integer between 400 and 599, got true"),
        case(R + "fail: {message: no}\n", "{", "'fail' needs a 'status' (an integer between 400 and 599)"),
        case(
            R + "fail: {status: 429, headers: {retry-after: [1]}}\n",
            "[1]",
            "header 'retry-after' must be text or a number, got a list",
        ),
        case(R + "sequence: []\n", "[]", "'sequence' must not be an empty list"),
        case(
            R + "sequence: [{reply: {}, fail: {status: 500}}]\n",
            "{reply",
            "a sequence step needs exactly one of reply or fail",
        ),
        case(R + "sequence: [{sequence: []}]\n", "sequence: []", "unknown key 'sequence' in sequence step"),
        case(
            R + "sequence: [{reply: {}}]\n    then: loop\n", "loop", "'then' must be repeat_last or cycle, got 'loop'"
        ),
        # templates
        case(
            R + "reply: {content: '{{ last_usr }}'}\n",
            "'{{",
            "invalid template in 'content': unknown template variable 'last_usr'; did you mean 'last_user'?",
        ),
        case(
            R + "reply: {content: 'hi {{ last_user'}\n",
            "'hi",
            "invalid template in 'content': '{{' is never closed with '}}'",
        ),
        case(
            R + "fail: {status: 500, message: '{{ model | uper }}'}\n",
            "'{{",
            "invalid template in 'message': unknown filter 'uper'; did you mean 'upper'?",
        ),
        case(
            R + "reply: {tool_calls: [{name: f, arguments: {a: '{{ }}'}}]}\n",
            "'{{",
            "invalid template in 'arguments': '{{ }}' is empty",
        ),
        # conditions
        case(
            R + "when: {last_usr: hi}\n    reply: {}\n",
            "last_usr",
            "unknown key 'last_usr' in when; did you mean 'last_user'?",
        ),
        case(
            R + "when: [{turn: 1}]\n    reply: {}\n",
            "[",
            "'when' must be a mapping of conditions (use 'all' or 'any' for a list of conditions), got a list",
        ),
        case(R + "when:\n    reply: {}\n", (2, 10), "'when' must be a mapping of conditions, got nothing"),
        case(
            R + "when: {model: 12}\n    reply: {}\n",
            "12",
            "'model' must be a string or a non-empty list of strings, got 12 (put it in quotes",
        ),
        case(
            R + "when: {endpoint: [chat, respones]}\n    reply: {}\n",
            "respones",
            "'endpoint' must be chat, responses or messages, got 'respones'; did you mean 'responses'?",
        ),
        case(
            R + "when: {last_user: yes}\n    reply: {}\n",
            "yes",
            "last_user must be text or a text matcher mapping (equals, contains, starts_with, ends_with or regex), "
            "got true (put it in quotes to use it as text)",
        ),
        case(
            R + "when: {last_user: {regex: '('}}\n    reply: {}\n",
            "'('",
            "invalid regex in last_user: missing ) at position 0 (scenario regexes are RE2",
        ),
        case(
            R + "when: {system: {contains: a, regex: b}}\n    reply: {}\n",
            "{contains",
            "system needs exactly one of equals, contains, starts_with, ends_with or regex, found contains and regex",
        ),
        case(
            R + "when: {system: {contain: a}}\n    reply: {}\n",
            "contain:",
            "unknown key 'contain' in system; did you mean 'contains'?",
        ),
        case(
            R + "when: {system: {contains: []}}\n    reply: {}\n",
            "[]",
            "'contains' in system must be a string or a non-empty list of strings, got a list",
        ),
        case(
            R + "when: {system: {equals: a, ignore_case: 1}}\n    reply: {}\n",
            "1}",
            "'ignore_case' in system must be true or false, got 1",
        ),
        case(
            R + "when: {tools: {includes: [a], none: true}}\n    reply: {}\n",
            "{includes",
            "'tools' needs exactly one of includes or none",
        ),
        case(
            R + "when: {tools: 3}\n    reply: {}\n",
            "3",
            "'tools' must be a list of tool names, {includes: [...]} or {none: true}, got 3",
        ),
        case(
            R + "when: {tool_result: absnt}\n    reply: {}\n",
            "absnt",
            "'tool_result' must be absent, present or a mapping with name, call_id and/or content, got 'absnt'; "
            "did you mean 'absent'?",
        ),
        case(
            R + "when: {tool_result: {nam: f}}\n    reply: {}\n",
            "nam",
            "unknown key 'nam' in tool_result; did you mean 'name'?",
        ),
        case(
            R + "when: {tool_result: {content: {json: {}}}}\n    reply: {}\n",
            "{}}",
            "'json' in tool_result content needs at least one field",
        ),
        case(
            R + "when: {turn: {min: 3, max: 2}}\n    reply: {}\n", "{min", "'min' (3) is greater than 'max' (2) in turn"
        ),
        case(R + "when: {turn: -1}\n    reply: {}\n", "-1", "'turn' must be an integer of at least 0, got -1"),
        case(R + "when: {turn: {}}\n    reply: {}\n", "{}}", "'turn' needs min, max or both"),
        case(
            R + "when: {turn: first}\n    reply: {}\n",
            "first",
            "'turn' must be an integer or a mapping with min and/or max, got 'first'",
        ),
        case(
            R + "when: {messages: {count: {mn: 1}}}\n    reply: {}\n",
            "mn",
            "unknown key 'mn' in messages count; did you mean 'min'?",
        ),
        case(
            R + "when: {messages: {cnt: 1}}\n    reply: {}\n",
            "cnt",
            "unknown key 'cnt' in messages; did you mean 'count'?",
        ),
        case(R + "when: {messages: 3}\n    reply: {}\n", "3", "'messages' must be a mapping like {count: 3}, got 3"),
        case(
            R + "when: {headers: {x-a: {regex: '['}}}\n    reply: {}\n",
            "'['",
            "invalid regex in header 'x-a': missing ] at position 0 (scenario regexes are RE2",
        ),
        case(
            R + "when: {body: {'a..b': 1}}\n    reply: {}\n",
            "'a..b'",
            "body path 'a..b' has an empty part between dots",
        ),
        case(
            R + "when: {body: {user: {contans: x}}}\n    reply: {}\n",
            "contans",
            "unknown key 'contans' in body field 'user'; did you mean 'contains'?",
        ),
        case(
            R + "when: {body: {user: {exists: true, equals: x}}}\n    reply: {}\n",
            "exists",
            "'exists' cannot be combined with other keys in body field 'user'",
        ),
        case(R + "when: {any: []}\n    reply: {}\n", "[]", "'any' must not be an empty list"),
        case(
            R + "when: {not: {lst_user: a}}\n    reply: {}\n",
            "lst_user",
            "unknown key 'lst_user' in when; did you mean 'last_user'?",
        ),
        case(
            R + "when: {all: [{turn: x}]}\n    reply: {}\n",
            "x}",
            "'turn' must be an integer or a mapping with min and/or max, got 'x'",
        ),
        # unreachable rules
        case(
            R + "name: catch all\n    reply: {}\n  - name: later\n    reply: {}\n",
            "name: later",
            "rule 'later' can never match: rule 'catch all' above it matches every request",
        ),
        case(
            R + "name: a\n    when: {turn: 1}\n    reply: {}\n"
            "  - name: b\n    when: {turn: 1}\n    fail: {status: 500}\n",
            "name: b",
            "rule 'b' can never match: rule 'a' above it has the same conditions",
        ),
    ],
)
def test_mistake_is_reported_at_its_position(text: str, at: str | tuple[int, int] | None, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    found = [(p.line, p.column, p.message) for p in caught.value.problems]
    where = position(text, at)
    assert any((line, column) == where and text.startswith(message) for line, column, text in found), (where, found)


def test_all_problems_of_a_file_are_collected_in_order() -> None:
    found = problems(
        """\
        rulez: []
        settings: {fallback: eror}
        rules:
          - when: {last_usr: hi}
            reply: {content: "{{ nope }}"}
          - fail: {status: 99}
        """
    )
    assert [line.split(":")[0] for line in found] == ["1", "2", "4", "5", "6"]


def test_a_valid_rule_next_to_a_broken_one_is_still_checked_for_reachability() -> None:
    found = problems("rules:\n  - reply: {}\n  - fail: {status: 1}\n  - name: late\n    reply: {}\n")
    assert any("'status' must be" in line for line in found)
    assert any("rule 'late' can never match" in line for line in found)


def test_rules_inside_any_and_not_are_not_flagged_as_unconditional() -> None:
    scenario = parse_scenario(
        "rules:\n  - when: {not: {turn: 1}}\n    reply: {}\n  - when: {any: [{turn: 1}]}\n    reply: {}\n"
    )
    assert len(scenario.rules) == 2


def test_merge_key_values_can_be_overridden() -> None:
    scenario = parse_scenario(
        "rules:\n  - when: {turn: 1}\n    fail: &busy {status: 503, message: busy}\n"
        "  - when: {turn: 2}\n    fail: {<<: *busy, status: 502}\n"
    )
    late = scenario.rules[1].action
    assert isinstance(late, FailAction) and (late.status, late.message.source) == (502, "busy")


def test_an_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    found = problems("\n".join(lines) + "\n")
    assert any("too many values" in line for line in found)


# ---------------------------------------------------------------- files and folders


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_folder_loads_its_yaml_files_sorted(tmp_path: Path) -> None:
    write(tmp_path, "b.yml", "rules: [{when: {turn: 2}, reply: {content: b}}]\n")
    write(tmp_path, "a.yaml", "rules: [{when: {turn: 1}, reply: {content: a}}]\n")
    write(tmp_path, "notes.txt", "not yaml: [")
    scenarios = load_scenarios([tmp_path])
    assert [s.name for s in scenarios] == ["a", "b"]
    assert scenarios[0].rules[0].key == f"{tmp_path / 'a.yaml'}#1"


def test_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules: [{fail: {status: 1}}]\n")
    write(tmp_path, "b.yaml", "rulez: []\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenarios([tmp_path, tmp_path / "missing.yaml"])
    assert [Path(p.file).name for p in caught.value.problems] == ["a.yaml", "b.yaml", "missing.yaml"]
    assert caught.value.problems[2].message == "no such file or folder"
    assert str(caught.value).count("\n") == 2


def test_validate_paths_never_raises(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", "rules: [{reply: {}}]\n")
    assert validate_paths([good]) == []
    bad = write(tmp_path, "bad.yaml", "rules: [{reply: {content: 1}}]\n")
    assert [p.line for p in validate_paths([bad])] == [1]
    (tmp_path / "binary.yaml").write_bytes(b"rules: \xff\xfe\n")
    assert "not UTF-8" in validate_paths([tmp_path / "binary.yaml"])[0].message


def test_a_catch_all_in_an_earlier_file_shadows_later_files(tmp_path: Path) -> None:
    first = write(tmp_path, "1.yaml", "rules: [{name: everything, reply: {}}]\n")
    second = write(tmp_path, "2.yaml", "rules: [{name: specific, when: {turn: 1}, reply: {}}]\n")
    found = validate_paths([first, second])
    assert [(Path(p.file).name, p.message) for p in found] == [
        (
            "2.yaml",
            f"rule 'specific' can never match: rule 'everything' in {first}, loaded before this file, "
            "matches every request",
        )
    ]
    assert validate_paths([second, first]) == []


# ---------------------------------------------------------------- robustness

ALL_KEYS = sorted({key for keys in KEYS.values() for key in keys} | {"bogus"})
JSON_LIKE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 700)
    | st.sampled_from(["", "x", "{{ last_user }}", "{{", "(", "absent"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(ALL_KEYS), children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["rules", "models", "settings", "name"]), JSON_LIKE) | st.lists(JSON_LIKE))
def test_any_document_is_either_loaded_or_explained(document: object) -> None:
    text = yaml.safe_dump(document)
    try:
        parse_scenario(text, "fuzz.yaml")
    except ScenarioError as error:
        assert error.problems and all(p.line >= 1 and p.column >= 1 and p.message for p in error.problems)
