"""The fixture's strict mode, call counts and the all-used check, as a user meets them: a suite in a temporary
folder, run by `python -m pytest` in a subprocess (the installed plugin, nothing else)."""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.helpers.subpytest import outcomes, run_pytest_in

SCENARIO = """
rules:
  - name: greet
    when: {last_user: hello}
    reply: {content: Hello!}
  - name: weather
    when: {last_user: {contains: weather}, model: glm-5}
    reply: {content: Sunny.}
"""

HELPERS = """
import pytest


def ask(tokenhub_emulator, text, model="glm-5"):
    reply = tokenhub_emulator.openai().chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}]
    )
    return reply.choices[0].message.content
"""


def run_suite(tmp_path: Path, tests: str, *args: str, ini: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yaml").write_text(SCENARIO)
    (tmp_path / "test_suite.py").write_text(HELPERS + textwrap.dedent(tests))
    return run_pytest_in(tmp_path, *args, ini=ini)


STRICT_SUITE = """
@pytest.mark.tokenhub_scenario("rules.yaml")
def test_a_miss_fails_the_test(tokenhub_emulator):
    ask(tokenhub_emulator, "what about the wether?")  # a typo: no rule matches, a generated reply comes back


@pytest.mark.tokenhub_scenario("rules.yaml")
def test_a_failing_test_also_gets_the_explanation(tokenhub_emulator):
    assert ask(tokenhub_emulator, "helo") == "Hello!"


@pytest.mark.tokenhub_scenario("rules.yaml")
@pytest.mark.tokenhub_allow_unmatched
def test_allowed_by_the_marker(tokenhub_emulator):
    ask(tokenhub_emulator, "anything at all")


def test_no_rules_loaded_means_nothing_to_miss(tokenhub_emulator):
    ask(tokenhub_emulator, "generated, as asked")


@pytest.mark.tokenhub_scenario("rules.yaml")
def test_hits_pass(tokenhub_emulator):
    assert ask(tokenhub_emulator, "hello") == "Hello!"


def test_the_error_fallback_is_a_miss_too(tokenhub_emulator):
    import openai

    tokenhub_emulator.load("settings: {fallback: error}\\nrules: [{name: only, when: {last_user: x}, reply: {content: y}}]")
    with pytest.raises(openai.BadRequestError):
        ask(tokenhub_emulator, "not x")
"""


def test_a_request_that_matched_no_rule_fails_the_test_with_the_nearest_rules(tmp_path):
    result = run_suite(tmp_path, STRICT_SUITE)
    assert result.returncode == 1, result.stdout + result.stderr
    assert outcomes(result) == {
        "test_a_miss_fails_the_test": "FAILED",
        "test_a_failing_test_also_gets_the_explanation": "FAILED",
        "test_allowed_by_the_marker": "PASSED",
        "test_no_rules_loaded_means_nothing_to_miss": "PASSED",
        "test_hits_pass": "PASSED",
        "test_the_error_fallback_is_a_miss_too": "FAILED",
    }
    failure = result.stdout.split("_ test_a_miss_fails_the_test _")[1].split("_ test_a_failing")[0]
    assert "1 request of this test matched no scenario rule" in failure
    assert "last user message 'what about the wether?'" in failure
    assert "- 'weather' (rules.yaml:6): last_user 'what about the wether?' does not contain 'weather'" in failure
    assert "@pytest.mark.tokenhub_allow_unmatched" in failure
    # the server's warning line for the miss is in the test's captured log
    assert re.search(r"WARNING .*generated — no rule matched; nearest: 'weather' \(rules\.yaml:6", failure)

    failing = result.stdout.split("_ test_a_failing_test_also_gets_the_explanation _")[1].split("short test summary")[0]
    assert "AssertionError" in failing  # the test's own failure comes first ...
    assert (
        "tokenhub-emulator" in failing and "'greet' (rules.yaml:3): last_user 'helo' does not equal 'hello'" in failing
    )

    fallback = result.stdout.split("_ test_the_error_fallback_is_a_miss_too _")[1]
    assert "got the error fallback's 400; nearest rules:" in fallback
    assert "- 'only' (test_the_error_fallback_is_a_miss_too:2): last_user 'not x' does not equal 'x'" in fallback


def test_strict_mode_can_be_turned_off_for_the_session(tmp_path):
    suite = STRICT_SUITE.split("@pytest.mark.tokenhub_scenario", 2)
    one_miss = "@pytest.mark.tokenhub_scenario" + suite[1]  # test_a_miss_fails_the_test alone
    result = run_suite(tmp_path, one_miss, ini="tokenhub_allow_unmatched = true")  # or --tokenhub-allow-unmatched
    assert outcomes(result) == {"test_a_miss_fails_the_test": "PASSED"}, result.stdout


ALL_USED_SUITE = '''
SEQUENCE = """
rules:
  - name: flaky
    when: {last_user: go}
    sequence:
      - fail: {status: 503}
      - reply: {content: done}
  - name: never
    when: {last_user: never asked}
    reply: {content: unused}
"""


@pytest.mark.tokenhub_assert_all_used
def test_unused_rule_and_unfinished_sequence(tokenhub_emulator):
    tokenhub_emulator.load(SEQUENCE)
    with pytest.raises(Exception):
        ask(tokenhub_emulator, "go")  # step 1 of 2: the 503


@pytest.mark.tokenhub_assert_all_used
def test_everything_used(tokenhub_emulator):
    tokenhub_emulator.load(SEQUENCE)
    client = tokenhub_emulator.openai(max_retries=1)
    client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "go"}])
    ask(tokenhub_emulator, "never asked")
    assert tokenhub_emulator.calls("flaky") == 2
    assert tokenhub_emulator.call_counts == {"flaky": 2, "never": 1}


def test_not_checked_without_asking(tokenhub_emulator):
    tokenhub_emulator.load(SEQUENCE)


def test_call_counts_and_rule_names(tokenhub_emulator):
    tokenhub_emulator.load("rules: [{when: {last_user: a}, reply: {content: A}}, {when: {last_user: b}, reply: {content: B}}]")
    tokenhub_emulator.load({"rules": [{"name": "own name", "when": {"last_user": "c"}, "reply": {"content": "C"}}]})
    for text in ("a", "a", "c"):
        ask(tokenhub_emulator, text)
    assert tokenhub_emulator.call_counts == {
        "test_call_counts_and_rule_names#1": 2,
        "test_call_counts_and_rule_names#2": 0,
        "own name": 1,
    }
    assert tokenhub_emulator.calls("own name") == 1
    with pytest.raises(KeyError, match="no rule named 'nope' is loaded for this test"):
        tokenhub_emulator.calls("nope")
    assert [r.rule for r in tokenhub_emulator.requests] == ["test_call_counts_and_rule_names#1"] * 2 + ["own name"]
'''


@pytest.mark.parametrize("how", ["marker", "flag"])
def test_the_all_used_check(tmp_path, how):
    suite = ALL_USED_SUITE if how == "marker" else ALL_USED_SUITE.replace("@pytest.mark.tokenhub_assert_all_used\n", "")
    args = ("--tokenhub-assert-all-used",) if how == "flag" else ()  # or ini tokenhub_assert_all_used = true
    result = run_suite(tmp_path, suite, *args)
    expected = {
        "test_unused_rule_and_unfinished_sequence": "FAILED",
        "test_everything_used": "PASSED",
        "test_not_checked_without_asking": "PASSED" if how == "marker" else "FAILED",
        "test_call_counts_and_rule_names": "PASSED" if how == "marker" else "FAILED",
    }
    assert outcomes(result) == expected, result.stdout
    failure = result.stdout.split("_ test_unused_rule_and_unfinished_sequence _")[1]
    assert "not every rule this test loaded was used" in failure
    assert "- rule 'flaky' answered 1 of its 2 sequence steps" in failure
    assert "- rule 'never' answered no request" in failure
