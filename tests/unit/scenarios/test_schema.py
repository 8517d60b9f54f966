"""emulator/data/scenario.schema.json stays in step with the loader.

Key lists and enumerations are compared with the loader's own tables; shipped examples must pass both;
broken files the loader rejects are rejected by the schema where a JSON Schema can say so; and for random
documents, whatever the loader accepts the schema accepts too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from emulator.scenarios import KEYS, ScenarioError, parse_scenario
from emulator.scenarios import schema as tables
from emulator.scenarios.problems import ProblemLog
from emulator.scenarios.yamlpos import load_yaml, to_plain
from tests.helpers.servers import ROOT

SCHEMA = json.loads((ROOT / "emulator" / "data" / "scenario.schema.json").read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
EXAMPLES = sorted((ROOT / "scenarios").glob("*.y*ml")) + sorted(
    (ROOT / "tests" / "fixtures" / "scenarios").glob("*.y*ml")
)


def schema_accepts(document: Any) -> bool:
    return VALIDATOR.is_valid(document)


def loader_accepts(text: str) -> bool:
    try:
        parse_scenario(text, "doc.yaml")
    except ScenarioError:
        return False
    return True


def as_the_loader_reads_it(text: str) -> Any:
    """The plain values the loader sees (timestamps stay text, unlike yaml.safe_load)."""
    return to_plain(load_yaml(text, ProblemLog("doc.yaml")))


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", sorted(KEYS))
def test_every_key_the_loader_accepts_is_in_the_schema(name: str) -> None:
    assert name in SCHEMA["$defs"], f"$defs has no {name!r}"
    definition = SCHEMA["$defs"][name]
    assert list(definition["properties"]) == list(KEYS[name])
    assert definition["additionalProperties"] is False


def test_every_schema_mapping_is_a_loader_table_and_every_key_is_described() -> None:
    with_properties = {name for name, definition in SCHEMA["$defs"].items() if "properties" in definition}
    assert with_properties == set(KEYS)
    for name, definition in SCHEMA["$defs"].items():
        assert definition.get("description"), f"$defs.{name} needs a description"
        for key, prop in definition.get("properties", {}).items():
            assert prop.get("description"), f"$defs.{name}.properties.{key} needs a description"


def _enum_at(*path: str) -> list[str]:
    node: Any = SCHEMA["$defs"]
    for part in path:
        node = node[part]
    return node["enum"]


def test_enumerations_match_the_loader() -> None:
    assert _enum_at("settings", "properties", "fallback") == list(tables.FALLBACKS)
    assert _enum_at("endpointName") == list(tables.ENDPOINTS)
    assert _enum_at("choice", "properties", "finish_reason") == list(tables.FINISH_REASONS)
    assert _enum_at("reply", "properties", "finish_reason") == list(tables.FINISH_REASONS)
    assert _enum_at("rule", "properties", "then") == list(tables.THEN_MODES)
    assert SCHEMA["$defs"]["when"]["properties"]["tool_result"]["anyOf"][0]["enum"] == list(tables.PRESENCE)
    assert [branch["required"] for branch in SCHEMA["$defs"]["rule"]["oneOf"]] == [[a] for a in tables.ACTIONS]
    assert [branch["required"] for branch in SCHEMA["$defs"]["textMatcher"]["oneOf"]] == [
        [k] for k in tables.TEXT_KINDS
    ]


def test_there_are_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_shipped_examples_pass_loader_and_schema(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert loader_accepts(text)
    errors = [error.message for error in VALIDATOR.iter_errors(as_the_loader_reads_it(text))]
    assert errors == []


# (yaml, whether a JSON Schema can tell it is broken). The loader rejects every one of them.
BROKEN = [
    ("just text\n", True),
    ("- 1\n- 2\n", True),
    ("rulez: []\n", True),
    ("rules: {}\n", True),
    ("name: 3\n", True),
    ("models: [{serves: glm-5}]\n", True),
    ("models: [{id: m, reasoning: maybe}]\n", True),
    ("settings: {fallback: eror}\n", True),
    ("settings: {sentences: 0}\n", True),
    ("settings: {sentences: [1, 2, 3]}\n", True),
    ("rules: [{when: {turn: 1}}]\n", True),
    ("rules: [{reply: {}, fail: {status: 500}}]\n", True),
    ("rules: [{reply: {}, then: cycle}]\n", True),
    ("rules: [{replies: {}}]\n", True),
    ("rules: [{reply: {content: 42}}]\n", True),
    ("rules: [{reply: {finish_reason: done}}]\n", True),
    ("rules: [{reply: {usage: {prompt_tokens: -1}}}]\n", True),
    ("rules: [{reply: {content: a, choices: [{content: b}]}}]\n", True),
    ("rules: [{reply: {tool_calls: [{arguments: {}}]}}]\n", True),
    ("rules: [{reply: {tool_calls: [{name: f, arguments: 3}]}}]\n", True),
    ("rules: [{fail: {status: 200}}]\n", True),
    ("rules: [{fail: {status: abc}}]\n", True),
    ("rules: [{fail: {message: no status}}]\n", True),
    ("rules: [{sequence: []}]\n", True),
    ("rules: [{sequence: [{reply: {}, fail: {status: 500}}]}]\n", True),
    ("rules: [{sequence: [{reply: {}}], then: loop}]\n", True),
    ("rules: [{when: {last_usr: hi}, reply: {}}]\n", True),
    ("rules: [{when: [{turn: 1}], reply: {}}]\n", True),
    ("rules: [{when: {endpoint: chatt}, reply: {}}]\n", True),
    ("rules: [{when: {last_user: true}, reply: {}}]\n", True),
    ("rules: [{when: {last_user: {regex: '('}}, reply: {}}]\n", True),
    ("rules: [{when: {system: {contains: a, regex: b}}, reply: {}}]\n", True),
    ("rules: [{when: {tools: {includes: [a], none: true}}, reply: {}}]\n", True),
    ("rules: [{when: {tool_result: absnt}, reply: {}}]\n", True),
    ("rules: [{when: {tool_result: {content: {json: {}}}}, reply: {}}]\n", True),
    ("rules: [{when: {turn: -1}, reply: {}}]\n", True),
    ("rules: [{when: {turn: {}}, reply: {}}]\n", True),
    ("rules: [{when: {messages: {cnt: 1}}, reply: {}}]\n", True),
    ("rules: [{when: {headers: {x-a: 1}}, reply: {}}]\n", True),
    ("rules: [{when: {body: {a: {contans: x}}}, reply: {}}]\n", True),
    ("rules: [{when: {any: []}, reply: {}}]\n", True),
    ("rules: [{when: {not: {lst_user: a}}, reply: {}}]\n", True),
    # Beyond what a JSON Schema sees:
    ("", True),  # an empty file is null
    ("rules: []\nrules: []\n", False),  # duplicate keys vanish when YAML becomes JSON
    ("rules: [{reply: {content: '{{ last_usr }}'}}]\n", False),  # templates
    ("rules: [{reply: {}}, {name: late, reply: {}}]\n", False),  # unreachable rules
    ("rules: [{when: {turn: 1}, reply: {}}, {when: {turn: 1}, reply: {}}]\n", False),
    ("rules: [{name: a, when: {turn: 1}, reply: {}}, {name: a, reply: {}}]\n", False),  # duplicate names
    ("models: [{id: m}, {id: m}]\n", False),  # duplicate model ids
    ("rules: [{when: {turn: {min: 3, max: 2}}, reply: {}}]\n", False),  # ranges
    ("settings: {sentences: [3, 1]}\n", False),
    ("settings: {locale: en_UK}\n", False),  # locale names
    ("rules: [{when: {body: {'a..b': 1}}, reply: {}}]\n", False),  # body paths
    ("rules: [{when: {body: {a: {exists: true, equals: 1}}}, reply: {}}]\n", False),
    ("rules: [{name: ' ', reply: {}}]\n", False),  # blank names
    ("rules: [{reply: !!python/object:os.system {}}]\n", False),  # tags
]


@pytest.mark.parametrize(("text", "schema_can_tell"), BROKEN, ids=[text[:50] for text, _ in BROKEN])
def test_broken_files_are_rejected(text: str, schema_can_tell: bool) -> None:
    assert not loader_accepts(text)
    assert schema_accepts(as_the_loader_reads_it(text)) is not schema_can_tell, "update the flag if this changed"


# ---------------------------------------------------------------- random documents


def mostly(valid: list[Any], invalid: list[Any]) -> st.SearchStrategy[Any]:
    """Valid values three times out of four, so that many documents get past the loader."""
    return st.integers(0, 3).flatmap(lambda pick: st.sampled_from(invalid if pick == 2 else valid))


TEXT_MATCHERS = mostly(
    ["hi", {"contains": "a"}, {"contains": ["a", "b"]}, {"regex": "^a"}, {"equals": "a", "ignore_case": True}],
    [{"regex": "("}, {"contains": "a", "regex": "b"}, {"ignore_case": True}, {"starts_with": 1}, {}, True, 3],
)
WHEN_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "model": mostly(["glm-5", "glm-*", ["a", "b"]], [12, [], ""]),
    "endpoint": mostly(["chat", ["chat", "messages"]], ["chatt", [], None]),
    "last_user": TEXT_MATCHERS,
    "system": TEXT_MATCHERS,
    "tools": mostly([["f"], "f", {"includes": ["f"]}, {"none": True}], [{"none": "yes"}, [], 3, {}]),
    "tool_result": mostly(
        ["absent", "present", {"name": "f"}, {"content": {"json": {"a": 1}}}, {"content": "x"}, {}],
        ["absnt", {"content": {"json": {}}}, {"nam": "f"}, {"content": {"json": {"a": 1}, "regex": "x"}}],
    ),
    "turn": mostly([1, 0, {"min": 1}, {"min": 1, "max": 2}], [-1, {"min": 3, "max": 2}, {}, "x", True, {"mn": 1}]),
    "headers": mostly([{"x-a": "present"}, {"x-a": {"regex": "a"}}, {}], [{"x-a": 1}, "x"]),
    "body": mostly(
        [{"a.b": 1}, {"a": {"exists": True}}, {"a": {"equals": {"b": 1}}}, {"a": [1]}, {"a": None}, {}],
        [{"a": {"contans": 1}}, [], {"a": {"equals": 1, "ignore_case": True}}, {"a": {"regex": ")"}}],
    ),
    "messages": mostly([{"count": 2}, {"count": {"max": 3}}], [{"cnt": 1}, 2, {}]),
    "all": mostly([[{"turn": 1}], [{}]], [[], {"turn": 1}]),
    "any": mostly([[{"turn": 1}, {"turn": 2}]], [[], {"turn": 1}]),
    "not": mostly([{"turn": 1}, {}], [[], {"bogus": 1}]),
}
TOOL_CALLS = [
    {"name": "f"},
    {"name": "f", "arguments": {"a": "{{ last_user }}", "n": 1, "l": [1, "{{ turn }}"]}, "id": "call_1"},
    {"name": "f", "arguments": "{}"},
]
REPLIES = mostly(
    [
        {},
        {"content": "x"},
        {"content": "{{ last_user | upper }}"},
        {"tool_calls": TOOL_CALLS},
        {"choices": [{"content": "a"}, {"refusal": "no", "finish_reason": "content_filter"}]},
        {"usage": {"prompt_tokens": 1, "cached_tokens": 0}},
        {"finish_reason": "stop", "reasoning": "r"},
    ],
    [
        {"content": 1},
        {"content": "{{ nope }}"},
        {"tool_calls": [{"arguments": "{}"}]},
        {"tool_calls": []},
        {"choices": []},
        {"choices": [{"usage": {}}]},
        {"usage": {"prompt_tokens": -1}},
        {"finish_reason": "x"},
        {"content": "a", "choices": [{}]},
        None,
    ],
)
FAILS = mostly(
    [
        {"status": 500},
        {"status": 429, "headers": {"retry-after": 1}},
        {"status": 500, "type": "t", "code": "c", "param": "p", "message": "m {{ model }}"},
    ],
    [{"status": 399}, {"status": "x"}, {"status": 429, "headers": {"retry-after": [1]}}, {"message": "x"}],
)
STEPS = st.one_of(
    st.fixed_dictionaries({"reply": REPLIES}),
    st.fixed_dictionaries({"fail": FAILS}),
    st.sampled_from([{}, {"reply": {}, "fail": {"status": 500}}, {"sequence": []}, "x"]),
)


@st.composite
def rules(draw: st.DrawFn, index: int = 0) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        rule["name"] = draw(mostly([f"rule {index}"], ["", 3]))
    if draw(st.integers(0, 9)):
        keys = draw(st.lists(st.sampled_from(sorted(WHEN_VALUES)), min_size=1, max_size=3, unique=True))
        rule["when"] = {key: draw(WHEN_VALUES[key]) for key in keys} | {"turn": index}  # distinct per rule
    action = draw(st.sampled_from(["reply", "fail", "sequence"] * 4 + ["none", "both"] + ["reply"] * 4))
    for key in {"none": [], "both": ["reply", "fail"]}.get(action, [action]):
        rule[key] = draw({"reply": REPLIES, "fail": FAILS, "sequence": st.lists(STEPS, min_size=1, max_size=3)}[key])
    if action == "sequence" and draw(st.booleans()) or draw(st.sampled_from([False] * 19 + [True])):
        rule["then"] = draw(mostly(["cycle", "repeat_last"], ["loop"]))
    return rule


@st.composite
def rule_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [draw(rules(index)) for index in range(draw(st.integers(0, 3)))]


@st.composite
def documents(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(rule_lists())
    document: dict[str, Any] = {"rules": draw(rule_lists())}
    if draw(st.booleans()):
        document["models"] = [
            draw(mostly([{"id": "m"}, {"id": "e", "serves": "glm-5", "reasoning": True}], [{"serves": "x"}]))
        ]
    if draw(st.booleans()):
        document["settings"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "fallback": mostly(["generate", "error"], ["eror"]),
                    "sentences": mostly([1, [1, 3]], [[3, 1], 0, "x"]),
                    "locale": mostly(["en_US", "zh_CN"], [""]),
                },
            )
        )
    return document


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_whatever_the_loader_accepts_the_schema_accepts(document: Any) -> None:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    if loader_accepts(text):
        assert schema_accepts(as_the_loader_reads_it(text)), list(VALIDATOR.iter_errors(document))[:3]


def test_every_key_is_documented() -> None:
    docs = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    missing = sorted({key for keys in KEYS.values() for key in keys if f"{key}:" not in docs})
    assert missing == []


def test_the_every_key_fixture_uses_every_key() -> None:
    text = (ROOT / "tests" / "fixtures" / "scenarios" / "every-key.yaml").read_text(encoding="utf-8")
    used: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            used.update(k for k in value if isinstance(k, str))
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(as_the_loader_reads_it(text))
    assert sorted({key for keys in KEYS.values() for key in keys} - used) == []
