"""Matching has a time budget and near-miss ranking a bounded cost: no regex and no prompt freezes the server.

Short forms, judged from the journal's `duration_ms`; bench/hostile.py measures the stall of a concurrent
request against a real server with the large versions (a 10 MB prompt, a hundred regex rules).
"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.generate import Generator
from emulator.scenarios import ScenarioError, parse_scenario
from emulator.server.app import build_app

KEY = {"authorization": "Bearer sk-test"}


def client(scenario: str, **settings) -> TestClient:
    http = TestClient(build_app(Settings(**settings)), base_url="http://127.0.0.1", raise_server_exceptions=False)
    loaded = http.post("/_emulator/scenarios", content=scenario, headers={"content-type": "application/yaml"})
    assert loaded.status_code == 201, loaded.text
    return http


def ask(http: TestClient, text: str):
    body = {"model": "glm-5", "messages": [{"role": "user", "content": text}]}
    response = http.post("/v1/chat/completions", json=body, headers=KEY)
    return response, http.get("/_emulator/journal", params={"limit": 1}).json()["data"][-1]


@pytest.mark.parametrize(
    ("pattern", "prompt"),
    [
        ("^(a+)+$", "a" * 28 + "!"),  # 10.6 s with Python's re
        ("^(a|aa)+$", "a" * 40 + "!"),
        (".*world", "hello " * 40_000),  # 19.3 s with Python's re
        (".*x.*y.*z", "xy" * 100_000),
    ],
)
def test_no_regex_takes_more_than_linear_time(pattern, prompt):
    scenario = f"rules:\n  - when: {{last_user: {{regex: '{pattern}'}}}}\n    reply: {{content: hit}}\n"
    http = client(scenario)
    response, entry = ask(http, prompt)
    assert response.status_code == 200 and entry["duration_ms"] < 500, entry["duration_ms"]


def test_a_regex_past_the_budget_is_a_journaled_miss():
    regex_rules = "".join(
        f"  - name: r{i}\n    when: {{last_user: {{regex: 'needle{i}$'}}}}\n    reply: {{content: r{i}}}\n"
        for i in range(20)
    )
    scenario = f"rules:\n{regex_rules}  - name: plain\n    when: {{last_user: {{contains: hay}}}}\n    reply: {{content: plain}}\n"
    http = client(scenario, match_budget_ms=0.001)
    response, entry = ask(http, "hay " * 1000 + "needle19")
    assert response.json()["choices"][0]["message"]["content"] == "plain"  # the regex rules were not run
    assert entry["rule"] == "plain"
    reasons = [reason for miss in entry["misses"] for reason in miss["reasons"]]
    assert entry["misses"][0]["rule"] == "r0" and "matching budget" in reasons[0] and len(reasons) == 20


def test_within_the_budget_the_regex_answers():
    http = client("rules:\n  - when: {last_user: {regex: 'needle$'}}\n    reply: {content: found}\n")
    response, entry = ask(http, "hay " * 100_000 + "needle")  # 400 KB: matched off the event loop
    assert response.json()["choices"][0]["message"]["content"] == "found" and not entry["misses"]


def test_near_miss_ranking_does_not_grow_with_the_prompt():
    rules = "".join(
        f"  - name: e{i}\n    when: {{last_user: 'expected text number {i}'}}\n    reply: {{content: x}}\n"
        for i in range(10)
    )
    http = client(f"settings: {{fallback: error}}\nrules:\n{rules}")
    response, entry = ask(http, "expected text number 7" + "z" * 400_000)  # 25 s for 1 MB with whole-text difflib
    assert response.status_code == 400 and entry["duration_ms"] < 1000, entry["duration_ms"]
    assert [miss["rule"] for miss in entry["misses"]][0] == "e7"  # still the nearest first
    assert len(entry["misses"]) == 3 and "Nearest rules: 1) 'e7'" in response.json()["error"]["message"]


def test_unicode_letters_are_written_with_p():
    """The example of docs/scenarios.md: `\\w` is ASCII in RE2, `\\p{Han}` names Chinese characters."""
    http = client(
        "rules:\n  - when: {last_user: {regex: '^预订 (?P<city>\\p{Han}+)'}}\n    reply: {content: '已预订 {{ match.city }}'}\n"
    )
    response, _ = ask(http, "预订 北京")
    assert response.json()["choices"][0]["message"]["content"] == "已预订 北京"


def test_a_scenario_regex_rejected_by_re2_is_a_positioned_problem():
    with pytest.raises(ScenarioError) as caught:
        parse_scenario("rules:\n  - when: {last_user: {regex: '(?<=a)b'}}\n    reply: {content: x}\n", "s.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (2, 31) and "RE2" in problem.message


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "((a{1000}){1000}){1000}"},
        {"type": "string", "minLength": 10**9},
        {"type": "array", "minItems": 10**6, "items": {"type": "array", "minItems": 10**6}},
        {"type": "object", "minProperties": 10**6},
        {"type": "string", "pattern": "^(a|aa)+$"},
    ],
)
def test_a_request_tool_schema_cannot_make_generation_unbounded(schema):
    value = Generator().from_schema(schema, "k")
    assert len(str(value)) < 500_000  # about 10,000 values at most


def test_template_output_is_bounded():
    echo = "{{ last_user }}" * 200
    http = client(
        f"rules:\n  - name: echo\n    when: {{last_user: {{contains: x}}}}\n    reply: {{content: '{echo}'}}\n"
    )
    response, entry = ask(http, "x" * 100_000)  # 20 MB if rendered whole (1 MB: 200 MB, 1.4 GB of memory)
    assert response.status_code == 400 and entry["duration_ms"] < 1000
    error = response.json()["error"]
    assert (
        error["code"] == "reply_too_large"
        and "'echo'" in error["message"]
        and "--max-rendered-chars" in error["message"]
    )
    response, _ = ask(http, "x" * 100)
    assert response.json()["choices"][0]["message"]["content"] == "x" * 100 * 200
