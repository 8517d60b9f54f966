"""The rule index keeps first-match order while skipping rules whose exact `last_user` cannot match."""

from __future__ import annotations

from emulator.generate import Generator
from emulator.scenarios import Engine, parse_scenario
from tests.helpers.scenarios import ask

RULES = """
rules:
  - {name: exact-a, when: {last_user: hello}, reply: {content: A}}
  - {name: contains, when: {last_user: {contains: hel}}, reply: {content: B}}
  - {name: exact-c, when: {last_user: hello there}, reply: {content: C}}
  - {name: folded, when: {last_user: {equals: HOWDY, ignore_case: true}}, reply: {content: D}}
  - {name: exact-e, when: {all: [{last_user: howdy}, {model: glm-5}]}, reply: {content: E}}
"""


def engine(text: str = RULES) -> Engine:
    return Engine([parse_scenario(text, "s.yaml")], generator=Generator(seed=1))


def answer(subject: Engine, text: str) -> str | None:
    rule = subject.match(ask(text))
    return rule.name if rule else None


def test_first_match_order_is_kept_across_indexed_and_unindexed_rules():
    subject = engine()
    assert answer(subject, "hello") == "exact-a"
    assert answer(subject, "hello there") == "contains"  # the unindexed rule above it wins
    assert answer(subject, "howdy") == "folded"  # case-insensitive rules are never filed under a text
    assert answer(subject, "bye") is None


def test_ten_thousand_exact_rules_pick_the_right_one():
    rules = "\n".join(
        f"  - {{name: r{i}, when: {{last_user: 'question {i}'}}, reply: {{content: 'answer {i}'}}}}"
        for i in range(10_000)
    )
    subject = engine("rules:\n" + rules + "\n")
    assert answer(subject, "question 9876") == "r9876"
    assert subject.respond(ask("question 42")).choices[0].content == "answer 42"
