"""Hypothesis-generated scenario files never crash the loader: each loads, or every problem has a position.

tests/unit/server/test_fuzz.py feeds it YAML fragments and tests/unit/scenarios/test_loader.py random documents over the known
keys; this adds documents shaped like real scenarios (every kind of mapping, with right and wrong keys and
values at every level), YAML anchors, aliases, merge keys and tags, and files on disk with bytes that are
not UTF-8.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.scenarios import KEYS, Problem, ScenarioError, load_scenario_file, parse_scenario, validate_paths

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Which kind of mapping (a `$defs` name of the scenario schema, the keys of KEYS) each key's value is.
CHILD = {
    "settings": "settings",
    "timing": "timing",
    "rate_limits": "rateLimits",
    "when": "when",
    "not": "when",
    "reply": "reply",
    "fail": "fail",
    "fault": "fault",
    "usage": "usage",
    "last_user": "textMatcher",
    "system": "textMatcher",
    "tool_result": "toolResultMatcher",
    "messages": "messagesMatcher",
    "turn": "range",
    "count": "range",
    "jitter": "jitter",
    "chunk": "chunk",
}
LISTS = {"rules": "rule", "models": "model", "sequence": "step", "faults": "fault", "tool_calls": "toolCall"}
LISTS |= {"choices": "choice", "all": "when", "any": "when"}
WORDS = [
    "",
    "glm-5",
    "chat",
    "responses",
    "messages",
    "absent",
    "present",
    "stop",
    "length",
    "cycle",
    "repeat_last",
    "generate",
    "error",
    "{{ last_user }}",
    "{{ tool_result.x }}",
    "{{",
    "}}",
    "{% if %}",
    "(",
    "[a-",
    "uniform(1, 2)",
    "normal(0, -1)",
    "3 tokens",
    "12 chars",
    "1e309",
    "-0",
    "0x1F",
    "~",
    "null",
    "yes",
    "é中😀",
    "\t",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.sampled_from([0, 1, 2, 3, 99, 100, 429, 503, 600, -1, 10**6])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(WORDS)
    | st.text(max_size=20)
)


def kind_of(key: str, parent: str) -> str | None:
    if parent in ("fault",) or key not in CHILD:
        return None
    return CHILD[key]


@st.composite
def mapping_of(draw: Any, kind: str, depth: int = 0) -> dict[str, Any]:
    """A mapping of this kind: mostly its own keys (now and then a stranger), values of the right shape or not."""
    keys = list(KEYS.get(kind, ()))
    chosen = draw(st.lists(st.sampled_from(keys) if keys else st.just("bogus"), max_size=5, unique=True))
    if draw(st.integers(0, 9)) == 0:
        chosen.append(draw(st.sampled_from(["bogus", "Rules", "reply ", "when:", "", "0"])))
    return {key: draw(value_for(key, kind, depth + 1)) for key in chosen}


def value_for(key: str, parent: str, depth: int) -> st.SearchStrategy[Any]:
    wrong = SCALARS | st.lists(SCALARS, max_size=3)
    if depth > 5:
        return wrong
    if key in LISTS:
        child = LISTS[key]
        right: st.SearchStrategy[Any] = st.lists(mapping_of(child, depth), max_size=3)
    elif (kind := kind_of(key, parent)) is not None:
        right = mapping_of(kind, depth) | st.sampled_from(WORDS)  # a text where a matcher may be written as one
    elif key in ("headers", "body", "arguments"):
        right = st.dictionaries(st.text(max_size=8), SCALARS | mapping_of("valueMatcher", depth), max_size=3)
    else:
        right = SCALARS
    return st.one_of(right, right, right, wrong)  # mostly right, sometimes wrong


DOCUMENTS = mapping_of("scenario") | st.lists(mapping_of("rule"), max_size=4)


def assert_positioned(problems: list[Problem], text: str, file: str = "fuzz.yaml") -> None:
    assert problems
    lines = text.count("\n") + 2
    for problem in problems:
        assert problem.message and problem.file == file
        assert 1 <= problem.line <= lines and problem.column >= 1, (problem, lines)
        assert str(problem).startswith(f"{file}:{problem.line}:{problem.column}: ")


def load_or_explain(text: str) -> None:
    try:
        parse_scenario(text, "fuzz.yaml")
    except ScenarioError as error:
        assert_positioned(error.problems, text)


@FUZZ
@given(document=DOCUMENTS, style=st.sampled_from([False, True, None]))
def test_structurally_plausible_documents(document, style):
    load_or_explain(yaml.safe_dump(document, default_flow_style=style, allow_unicode=True, sort_keys=False))


@FUZZ
@given(
    anchor=st.sampled_from(["a", "base", "x1", "ü"]),
    alias=st.sampled_from(["a", "base", "nope", "x1", "ü"]),
    tag=st.sampled_from(
        ["", "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!binary ", "!!timestamp ", "!!set ", "!!omap "]
        + ["!!seq ", "!!map "]
        + ["!custom ", "!!python/object:os.system ", "!!python/name:builtins.eval ", "!<tag:x,2000:y> ", "! "]
    ),
    value=st.sampled_from(["hi", "1", "{content: hi}", "[1, 2]", "{status: 503}", "2001-12-14", "R0lG", "~", "''"]),
    shape=st.integers(0, 5),
)
def test_anchors_aliases_merge_keys_and_tags(anchor, alias, tag, value, shape):
    texts = [
        f"base: &{anchor} {tag}{value}\nrules:\n  - reply: *{alias}\n",
        f"rules:\n  - &{anchor} {{when: {{turn: 1}}, reply: {tag}{value}}}\n  - <<: *{alias}\n    when: {{turn: 2}}\n",
        f"rules:\n  - when: {{turn: 1}}\n    fail: &{anchor} {tag}{value}\n  - when: {{turn: 2}}\n    fail: {{<<: *{alias}}}\n",
        f"rules: &{anchor}\n  - reply: {tag}{value}\n  - *{alias}\n",
        f"settings: {tag}{value}\nrules: [{{reply: {{content: *{alias}}}}}, &{anchor} {{fail: {tag}{value}}}]\n",
        f"{tag}{value}\n",
    ]
    load_or_explain(texts[shape])


@pytest.mark.parametrize("text", ["a: !!int hi\n", "a: !!float abc\n", "a: !!bool maybe\n", "a: !!int 0x\n"])
def test_a_typed_tag_on_a_wrong_value_is_a_positioned_problem(text):
    with pytest.raises(ScenarioError) as caught:
        parse_scenario("rules: []\n" + text, "fuzz.yaml")
    assert any(p.line == 2 for p in caught.value.problems)


@FUZZ
@given(
    prefix=st.sampled_from(["", "rules:\n", "rules:\n  - reply: {content: ", "name: x\n# comment "]),
    junk=st.binary(min_size=1, max_size=40),
    suffix=st.sampled_from(["", "}\n", "\n  - fail: {status: 503}\n"]),
    newlines=st.integers(0, 5),
)
def test_any_bytes_in_a_file(tmp_path_factory, prefix, junk, suffix, newlines):
    path = tmp_path_factory.mktemp("bytes") / "fuzz.yaml"
    data = prefix.encode() + b"\n" * newlines + junk + suffix.encode()
    path.write_bytes(data)
    try:
        load_scenario_file(path)
    except ScenarioError as error:
        text = data.decode("utf-8", "replace")
        assert_positioned(error.problems, text, str(path))
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            assert "not UTF-8" in error.problems[0].message


@pytest.mark.parametrize(
    "data",
    [
        "\ufeffrules: [{reply: {content: hi}}]\n".encode(),  # a UTF-8 byte order mark
        "rules: [{reply: {content: hi}}]\n".encode("utf-16"),
        b"rules: [{reply: {content: hi}}]\r\n\r\n",
        b"rules:\r  - reply: {content: hi}\r",
        b"\x00\x00\x00",
        b"",
        b"\n\n\n",
    ],
    ids=["utf8-bom", "utf16", "crlf", "cr", "nul", "empty", "blank"],
)
def test_odd_encodings_load_or_explain(tmp_path, data):
    path = tmp_path / "odd.yaml"
    path.write_bytes(data)
    try:
        load_scenario_file(path)
    except ScenarioError as error:
        assert_positioned(error.problems, data.decode("utf-8", "replace"), str(path))


@FUZZ
@given(files=st.lists(st.tuples(st.sampled_from(["a.yaml", "b.yml", "c.txt", "d.yaml"]), DOCUMENTS), max_size=4))
def test_a_folder_of_generated_files_is_validated_without_raising(tmp_path_factory, files):
    folder = tmp_path_factory.mktemp("folder")
    for name, document in files:
        (folder / name).write_text(yaml.safe_dump(document), encoding="utf-8")
    for problem in validate_paths([folder]):
        assert problem.line >= 1 and problem.column >= 1 and problem.message


def test_a_byte_that_is_not_utf8_is_reported_where_it_is(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("rules:\n  - when: {last_user: hi}\n    reply: {content: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario_file(path)
    assert (caught.value.problems[0].line, caught.value.problems[0].column) == (3, 25)  # the é, 1-based


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_being_read(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    found: list[Problem] = []
    reader = threading.Thread(target=lambda: found.extend(validate_paths([fifo])), daemon=True)
    reader.start()
    reader.join(1)
    blocked = reader.is_alive()
    if blocked:  # let the loader go: open the other end, write nothing, close
        with open(fifo, "w"):
            pass
        reader.join(5)
    assert not blocked
    assert "regular file" in found[0].message


@pytest.mark.parametrize("headers", ['{x-a: "b\\r\\nx-evil: 1"}', '{"bad name": v}', '{x-c: "中"}'])
def test_scenario_fail_headers_that_cannot_be_sent_are_refused(headers):
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(f"rules: [{{fail: {{status: 500, headers: {headers}}}}}]", "h.yaml")
    assert_positioned(caught.value.problems, "x", "h.yaml")


def test_documents_strategy_makes_rules_that_load():
    """The generator is not only noise: a plain generated rule can load."""
    assert parse_scenario(yaml.safe_dump({"rules": [{"when": {"turn": 1}, "reply": {"content": "hi"}}]})).rules
