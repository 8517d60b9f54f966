"""The engine: first matching rule answers, sequences keep state per scope, and the fallback."""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

import pytest

from emulator.exchange import Choice, Exchange, Failure, Message, Reply, Tool, ToolResult, UsageOverride
from emulator.profiles import PROFILES
from emulator.scenarios import (
    DeclaredModel,
    Engine,
    Scenario,
    ScenarioSettings,
    load_scenario_file,
    merged_settings,
    parse_scenario,
)
from tests.helpers.scenarios import ask
from tests.helpers.servers import ROOT

CALL_ID = re.compile(r"call_[a-z0-9]{24}")


class StandInGenerator:
    """Records what the engine asks for and answers predictably."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def text(self, *keys: Any, sentences: tuple[int, int] = (1, 3), locale: str | None = None) -> str:
        self.calls.append(("text", keys, {"sentences": sentences, "locale": locale}))
        return f"generated {sentences[0]}-{sentences[1]}"

    def from_schema(self, schema: Any, *keys: Any) -> Any:
        self.calls.append(("from_schema", keys, {"schema": schema}))
        return {"city": "Generated City"}


def fallback_reply(
    exchange: Exchange, generator: Any, *, sentences: tuple[int, int] = (1, 3), tool_calls: str = "forced"
) -> Reply:
    return Reply(choices=[Choice(content=f"fallback {sentences}" + ("" if tool_calls == "forced" else " tools"))])


def scenario(text: str, file: str = "s.yaml") -> Scenario:
    return parse_scenario(textwrap.dedent(text), file)


def engine(*texts: str, fallback: str | None = None) -> Engine:
    scenarios = [scenario(text, f"s{i}.yaml") for i, text in enumerate(texts)]
    return Engine(scenarios, generator=StandInGenerator(), fallback=fallback, reply_generator=fallback_reply)




def reply_of(outcome: Reply | Failure) -> Reply:
    assert isinstance(outcome, Reply), outcome
    return outcome


def content(outcome: Reply | Failure) -> str | None:
    return reply_of(outcome).choices[0].content


WEATHER = Tool("get_weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}})


# ---------------------------------------------------------------- matching order


def test_the_first_matching_rule_answers_in_file_then_rule_order() -> None:
    subject = engine(
        """\
        rules:
          - {name: greet, when: {last_user: hi}, reply: {content: hello}}
          - {name: weather, when: {last_user: {contains: weather}}, reply: {content: sunny}}
        """,
        "rules: [{name: later, when: {last_user: {contains: e}}, reply: {content: from file 2}}]\n",
    )
    assert reply_of(subject.respond(ask("hi"))).rule == "greet"
    assert content(subject.respond(ask("weather?"))) == "sunny"
    assert content(subject.respond(ask("hey"))) == "from file 2"
    assert subject.match(ask("nothing")) is None
    assert [rule.name for rule in subject.rules] == ["greet", "weather", "later"]


# ---------------------------------------------------------------- reply


def test_reply_fields_and_templates() -> None:
    subject = engine(
        """\
        rules:
          - name: full
            when: {last_user: {regex: '^echo (?P<word>\\w+)'}}
            reply:
              content: "You said {{ match.word | upper }} on turn {{ turn }}"
              reasoning: "thinking about {{ last_user }}"
              refusal: "no {{ model }}"
              finish_reason: length
              usage: {prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, cached_tokens: 2, reasoning_tokens: 1}
        """
    )
    outcome = reply_of(subject.respond(ask("first", "echo parrot")))
    assert outcome.rule == "full"
    assert outcome.choices == [
        Choice(
            content="You said PARROT on turn 2",
            reasoning="thinking about echo parrot",
            refusal="no glm-5",
            finish_reason="length",
        )
    ]
    assert outcome.usage == UsageOverride(10, 5, 15, 2, 1)


def test_one_reply_is_repeated_for_n_and_choices_are_used_as_given() -> None:
    subject = engine(
        """\
        rules:
          - {when: {turn: 1}, reply: {content: same}}
          - when: {turn: 2}
            reply: {choices: [{content: a}, {content: b, finish_reason: stop}]}
        """
    )
    assert [c.content for c in reply_of(subject.respond(ask("x", n=3))).choices] == ["same"] * 3
    two = reply_of(subject.respond(ask("x", "y", n=1))).choices
    assert [(c.content, c.finish_reason) for c in two] == [("a", None), ("b", "stop")]


def test_a_reply_without_content_tool_calls_or_refusal_gets_generated_text() -> None:
    subject = engine(
        """\
        settings: {sentences: [2, 4], locale: de_DE}
        rules: [{reply: {reasoning: why}}]
        """
    )
    outcome = reply_of(subject.respond(ask("hi")))
    assert outcome.choices[0].content == "generated 2-4" and outcome.choices[0].reasoning == "why"
    kind, keys, options = subject.generator.calls[0]
    assert kind == "text" and options == {"sentences": (2, 4), "locale": "de_DE"}
    assert keys[0] == "content" and keys[1] == "s0#1"  # the file stem, not its folder


def test_explicit_empty_content_stays_empty() -> None:
    assert content(engine("rules: [{reply: {content: ''}}]\n").respond(ask("hi"))) == ""


# ---------------------------------------------------------------- tool calls


def test_tool_call_arguments_mapping_is_templated_and_keeps_json_types() -> None:
    subject = engine(
        """\
        rules:
          - when: {tool_result: absent}
            reply:
              tool_calls:
                - name: get_weather
                  arguments:
                    city: "{{ last_user | default: Beijing }}"
                    days: "{{ body.days }}"
                    units: [c, "{{ body.unit | default: f }}"]
                    fixed: 3
                    text: "{{ body.days }} days"
                  id: call_abc123
        """
    )
    outcome = reply_of(subject.respond(ask("", tools=(WEATHER,), body={"days": 3})))
    call = outcome.choices[0].tool_calls[0]
    assert (call.id, call.name) == ("call_abc123", "get_weather")
    assert json.loads(call.arguments) == {
        "city": "Beijing",
        "days": 3,
        "units": ["c", "f"],
        "fixed": 3,
        "text": "3 days",
    }


def test_tool_call_arguments_as_a_json_string_are_sent_as_written() -> None:
    subject = engine('rules: [{reply: {tool_calls: [{name: f, arguments: \'{"q": "{{ last_user }}"\'}]}}]\n')
    assert reply_of(subject.respond(ask("hi"))).choices[0].tool_calls[0].arguments == '{"q": "hi"'


def test_omitted_arguments_are_generated_from_the_offered_tools_schema() -> None:
    subject = engine("rules: [{reply: {tool_calls: [{name: get_weather}, {name: not_offered}]}}]\n")
    calls = reply_of(subject.respond(ask("weather", tools=(WEATHER,)))).choices[0].tool_calls
    assert json.loads(calls[0].arguments) == {"city": "Generated City"}
    assert calls[1].name == "not_offered" and calls[1].arguments == "{}"  # still sent, on purpose
    kind, keys, options = subject.generator.calls[0]
    assert kind == "from_schema" and options["schema"] == dict(WEATHER.parameters) and keys[0] == "arguments"


def test_default_call_ids_are_deterministic_and_distinct() -> None:
    text = "rules: [{reply: {tool_calls: [{name: a, arguments: {}}, {name: b, arguments: {}}]}}]\n"
    first = reply_of(engine(text).respond(ask("hi", n=2)))
    again = reply_of(engine(text).respond(ask("hi", n=2)))
    other = reply_of(engine(text).respond(ask("hello", n=2)))
    ids = [call.id for choice in first.choices for call in choice.tool_calls]
    assert all(CALL_ID.fullmatch(call_id) for call_id in ids)
    assert len(set(ids)) == 4  # per choice and per call
    assert ids == [call.id for choice in again.choices for call in choice.tool_calls]
    assert ids[0] != other.choices[0].tool_calls[0].id  # depends on the conversation


def test_a_tool_round_trip() -> None:
    subject = engine(
        """\
        rules:
          - name: ask weather
            when: {tools: [get_weather], tool_result: absent}
            reply: {tool_calls: [{name: get_weather, arguments: {city: Paris}}]}
          - name: answer
            when: {tool_result: {name: get_weather}}
            reply: {content: "It is {{ tool_result.weather }} and {{ tool_result.temperature }}°C."}
        """
    )
    first = reply_of(subject.respond(ask("weather?", tools=(WEATHER,))))
    call = first.choices[0].tool_calls[0]
    follow_up = ask("weather?", tools=(WEATHER,))
    follow_up.messages += [
        Message("assistant", tool_calls=[call]),
        Message("tool", tool_result=ToolResult(call.id, "get_weather", '{"weather": "sunny", "temperature": 22}')),
    ]
    assert content(subject.respond(follow_up)) == "It is sunny and 22°C."


# ---------------------------------------------------------------- fail


def test_fail_with_defaults_and_with_every_field() -> None:
    subject = engine(
        """\
        rules:
          - {name: limited, when: {turn: 1}, fail: {status: 429}}
          - name: custom
            when: {turn: 2}
            fail: {status: 503, message: "busy for {{ model }}", type: overloaded, code: busy, param: model,
                   headers: {retry-after: 2}}
        """
    )
    limited = subject.respond(ask("x"))
    assert limited == Failure(status=429, message="", rule="limited")  # the adapter words it, as the profile does
    custom = subject.respond(ask("x", "y"))
    assert custom == Failure(
        status=503,
        message="busy for glm-5",
        type="overloaded",
        code="busy",
        param="model",
        headers={"retry-after": "2"},
        rule="custom",
    )


def test_unlisted_statuses_get_their_http_phrase() -> None:
    outcome = engine("rules: [{fail: {status: 418}}]\n").respond(ask("x"))
    assert isinstance(outcome, Failure) and outcome.message == ""  # worded by the profile, as a fault is
    for profile in PROFILES.values():
        assert profile.error_kind(418).message == "I'm a Teapot."
        assert profile.error_kind(599).message == "The request failed with status 599."


# ---------------------------------------------------------------- sequences and state

SEQUENCE = """\
rules:
  - name: flaky
    when: {last_user: {regex: "^retry\\\\b"}}
    sequence:
      - fail: {status: 429}
      - fail: {status: 503, message: upstream busy}
      - reply: {content: ok}
    then: {then}
"""


def statuses(subject: Engine, times: int, **headers: str) -> list[int | str]:
    outcomes = [subject.respond(ask("retry now", headers=headers)) for _ in range(times)]
    return [o.status if isinstance(o, Failure) else o.choices[0].content or "" for o in outcomes]


def test_sequence_repeats_the_last_step_by_default() -> None:
    subject = engine(SEQUENCE.replace("    then: {then}\n", ""))
    assert statuses(subject, 5) == [429, 503, "ok", "ok", "ok"]


def test_sequence_can_cycle() -> None:
    subject = engine(SEQUENCE.replace("{then}", "cycle"))
    assert statuses(subject, 7) == [429, 503, "ok", 429, 503, "ok", 429]


def test_a_sequence_only_counts_requests_that_it_answers() -> None:
    subject = engine(SEQUENCE.replace("{then}", "repeat_last"))
    subject.respond(ask("something else"))
    assert statuses(subject, 1) == [429]


def test_scopes_keep_separate_counters_and_reset_clears_one_or_all() -> None:
    subject = engine(SEQUENCE.replace("{then}", "repeat_last"))
    assert statuses(subject, 2, **{"x-emulator-test-id": "a"}) == [429, 503]
    assert statuses(subject, 1, **{"x-emulator-test-id": "b"}) == [429]
    assert statuses(subject, 1) == [429]
    subject.reset("a")
    assert statuses(subject, 1, **{"x-emulator-test-id": "a"}) == [429]
    assert statuses(subject, 1, **{"x-emulator-test-id": "b"}) == [503]
    subject.reset()
    assert statuses(subject, 1, **{"x-emulator-test-id": "b"}) + statuses(subject, 1) == [429, 429]


def test_replace_loads_new_rules_and_starts_counters_over() -> None:
    subject = engine(SEQUENCE.replace("{then}", "repeat_last"))
    assert statuses(subject, 2) == [429, 503]
    subject.replace([scenario("rules: [{reply: {content: new}}]\n"), *subject.scenarios])
    assert content(subject.respond(ask("retry now"))) == "new"
    subject.replace(subject.scenarios[1:])
    assert statuses(subject, 1) == [429]


def test_each_sequence_step_gets_its_own_call_ids() -> None:
    subject = engine("rules: [{sequence: [{reply: {tool_calls: [{name: f}]}}, {reply: {tool_calls: [{name: f}]}}]}]\n")
    first, second = (reply_of(subject.respond(ask("x"))).choices[0].tool_calls[0].id for _ in range(2))
    assert first != second


# ---------------------------------------------------------------- fallback

RULES_FOR_NEAREST = """\
rules:
  - {name: two misses, when: {model: qwen-plus, turn: 3, endpoint: chat}, reply: {}}
  - {name: one miss, when: {model: glm-5, last_user: bye}, reply: {}}
  - {name: far, when: {model: x, turn: 9}, reply: {}}
  - {name: farthest, when: {any: [{turn: 7}, {turn: 8}]}, reply: {}}
"""


def test_generate_fallback_uses_the_reply_generator_with_settings_sentences() -> None:
    subject = engine("settings: {sentences: 2}\nrules: [{when: {turn: 5}, reply: {}}]\n")
    assert content(subject.respond(ask("hi"))) == "fallback (2, 2)"


def test_generate_fallback_gets_the_tool_calls_setting_of_the_first_scenario_that_sets_it() -> None:
    assert content(engine("rules: []\n").respond(ask("hi"))) == "fallback (1, 3)"
    subject = engine("settings: {generate: {tool_calls: auto}}\nrules: []\n")
    assert content(subject.respond(ask("hi"))) == "fallback (1, 3) tools"


def test_error_fallback_names_the_nearest_rules_and_why() -> None:
    subject = engine(RULES_FOR_NEAREST, fallback="error")
    outcome = subject.respond(ask("hi"))
    assert isinstance(outcome, Failure) and outcome.status == 400 and outcome.rule is None
    assert outcome.message == (
        "No scenario rule matched this request. Nearest rules: "
        "1) 'one miss' (s0.yaml:3, 1 of 2 conditions hold): last_user 'hi' does not equal 'bye'. "
        "2) 'farthest' (s0.yaml:5, 0 of 1 condition holds): none of the alternatives matched: "
        "(turn is 1, expected 7) or (turn is 1, expected 8). "
        "3) 'two misses' (s0.yaml:2, 1 of 3 conditions hold): model is 'glm-5', expected 'qwen-plus'; "
        "turn is 1, expected 3."
    )


def test_explain_lists_every_miss_fewest_missed_then_most_conditions_held() -> None:
    misses = engine(RULES_FOR_NEAREST).explain(ask("hi"))
    assert [(m.rule, m.satisfied, m.total) for m in misses] == [
        ("one miss", 1, 2),
        ("farthest", 0, 1),
        ("two misses", 1, 3),
        ("far", 0, 2),
    ]
    assert misses[1].reasons[0].startswith("none of the alternatives matched")


def test_explain_ranks_the_closest_expected_text_first_among_equal_misses() -> None:
    subject = engine(
        "rules:\n  - {name: quantum, when: {last_user: {contains: quantum}}, reply: {}}\n"
        "  - {name: sums, when: {last_user: Calculate 1+1}, reply: {}}\n"
    )
    assert [m.rule for m in subject.explain(ask("Calculate 2+2"))] == ["sums", "quantum"]
    assert engine("rules: [{reply: {}}]\n").explain(ask("hi")) == []


def test_error_fallback_without_rules() -> None:
    outcome = engine(fallback="error").respond(ask("hi"))
    assert isinstance(outcome, Failure) and outcome.message.endswith("no rules are loaded.")


def test_the_first_scenario_setting_the_fallback_wins_unless_the_constructor_sets_it() -> None:
    assert engine("settings: {fallback: error}\n", "settings: {fallback: generate}\n").fallback == "error"
    assert engine("rules: []\n", "settings: {fallback: generate}\n", fallback="error").fallback == "error"
    assert engine("settings: {fallback: error}\n").fallback == "error"
    assert engine("rules: []\n", fallback="error").fallback == "error"
    with pytest.raises(ValueError):
        engine(fallback="explode")


def test_merged_settings_take_the_first_value_set() -> None:
    scenarios = [
        scenario("settings: {locale: fr_FR}\n"),
        scenario("settings: {locale: de_DE, sentences: [2, 5], fallback: error, generate: {tool_calls: auto}}\n"),
    ]
    assert merged_settings(scenarios) == ScenarioSettings(
        fallback="error", locale="fr_FR", sentences=(2, 5), tool_calls="auto"
    )
    assert merged_settings([]) == ScenarioSettings(
        fallback="generate", locale=None, sentences=(1, 3), tool_calls="forced"
    )


def test_declared_models_in_order_first_declaration_wins() -> None:
    subject = engine(
        "models: [{id: ep-1, serves: glm-5}, {id: mine, reasoning: true, owned_by: acme}]\n",
        "models: [{id: ep-1, serves: qwen-plus}, {id: other}]\n",
    )
    assert subject.declared_models == [
        DeclaredModel("ep-1", serves="glm-5"),
        DeclaredModel("mine", reasoning=True, owned_by="acme"),
        DeclaredModel("other"),
    ]


# ---------------------------------------------------------------- with the real generator


def test_with_the_real_generator() -> None:
    generate = pytest.importorskip("emulator.generate")
    scenarios = [scenario("rules:\n  - {when: {turn: 1}, reply: {tool_calls: [{name: get_weather}]}}\n  - reply: {}\n")]
    subject = Engine(scenarios, generator=generate.Generator(seed=1))
    call = reply_of(subject.respond(ask("x", tools=(WEATHER,)))).choices[0].tool_calls[0]
    assert isinstance(json.loads(call.arguments), dict) and CALL_ID.fullmatch(call.id)
    text = content(subject.respond(ask("x", "y")))
    assert text and text == content(Engine(scenarios, generator=generate.Generator(seed=1)).respond(ask("x", "y")))
    fallback = Engine([], generator=generate.Generator(seed=1)).respond(ask("x"))
    assert isinstance(fallback, Reply) and fallback.rule is None and fallback.choices[0].content


def test_call_ids_do_not_depend_on_the_folder_a_file_is_loaded_from() -> None:
    text = "rules: [{reply: {tool_calls: [{name: f}]}}]\n"
    here = Engine([scenario(text, "a/s.yaml")], generator=StandInGenerator(), reply_generator=fallback_reply)
    there = Engine([scenario(text, "/b/c/s.yaml")], generator=StandInGenerator(), reply_generator=fallback_reply)
    assert (
        reply_of(here.respond(ask("x"))).choices[0].tool_calls[0].id
        == reply_of(there.respond(ask("x"))).choices[0].tool_calls[0].id
    )


def test_the_every_key_fixture_answers_a_request_that_meets_every_condition() -> None:
    path = ROOT / "tests" / "fixtures" / "scenarios" / "every-key.yaml"
    subject = Engine([load_scenario_file(path)], generator=StandInGenerator(), reply_generator=fallback_reply)
    request = Exchange(
        protocol="responses",
        model="qwen-plus",
        messages=[Message("system", "You are kind."), Message("user", " ALPHA and beta ")],
        headers={"x-team": "team-blue", "user-agent": "test"},
        body={
            "metadata": {"user_id": "u-7"},
            "temperature": 0.5,
            "messages": [{"role": "system"}],
            "response_format": {"type": "text"},
        },
    )
    outcome = reply_of(subject.respond(request))
    assert outcome.rule == "text matchers"
    assert outcome.choices[0].content == "Hi Alpha And Beta on QWEN-PLUS, turn 1; team-blue"
    assert outcome.choices[0].reasoning == "13 characters of system prompt"
    assert subject.fallback == "error" and subject.settings.sentences == (2, 4)
