"""Conditions: each `when` key, the combinators, and the explanations of why a rule did not match."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.exchange import Exchange, Message, Tool, ToolCall, ToolResult
from emulator.scenarios import parse_scenario
from emulator.scenarios.matchers import Condition
from emulator.scenarios.textmatch import TextMatcher, json_equal


def when(yaml_text: str) -> Condition:
    """The condition of a one-rule scenario whose `when` is `yaml_text`."""
    text = "rules:\n  - when:\n" + textwrap.indent(textwrap.dedent(yaml_text), "      ") + "    reply: {}\n"
    return parse_scenario(text).rules[0].when


def exchange(
    *texts: str,
    system: str = "",
    model: str = "glm-5",
    requested: str = "",
    protocol: str = "chat",
    tools: tuple[str, ...] = (),
    results: tuple[tuple[str, str | None, str], ...] = (),  # (call_id, name, content)
    headers: dict[str, str] | None = None,
    body: dict | None = None,
) -> Exchange:
    messages = [Message("system", system)] if system else []
    for index, text in enumerate(texts):
        if index:
            messages.append(Message("assistant", "ok"))
        messages.append(Message("user", text))
    for call_id, name, content in results:
        messages.append(Message("assistant", tool_calls=[ToolCall(call_id, name or "", "{}")]))
        messages.append(Message("tool", tool_result=ToolResult(call_id, name, content)))
    return Exchange(
        protocol=protocol,  # type: ignore[arg-type]
        model=model,
        requested_model=requested or model,
        messages=messages,
        tools=[Tool(name) for name in tools],
        headers=headers or {},
        body=body or {},
    )


def check(condition: Condition, request: Exchange, reason: str | None) -> None:
    """The condition matches exactly when there is no reason, and explains itself with `reason`."""
    assert condition.matches(request) is (reason is None)
    assert condition.explain(request) == reason


# ---------------------------------------------------------------- text matchers


@pytest.mark.parametrize(
    ("spec", "text", "matches"),
    [
        ("hello", "hello", True),
        ("hello", "Hello", False),
        ("{equals: hello, ignore_case: true}", "HeLLo", True),
        ("{contains: weather}", "what's the weather?", True),
        ("{contains: [weather, Paris]}", "weather in Paris", True),
        ("{contains: [weather, Paris]}", "weather in Rome", False),
        ("{contains: WEATHER, ignore_case: true}", "the weather", True),
        ("{starts_with: Hi}", "Hi there", True),
        ("{starts_with: Hi}", "Oh Hi", False),
        ("{ends_with: '?'}", "really?", True),
        ("{regex: '^retry\\b'}", "retry now", True),
        ("{regex: '^retry\\b'}", "retrying", False),
        ("{regex: 'paris', ignore_case: true}", "Weather in PARIS", True),
        ("{regex: 'b'}", "abc", True),  # search, not match
        ("{equals: ''}", "", True),
    ],
)
def test_text_matchers(spec: str, text: str, matches: bool) -> None:
    assert when(f"last_user: {spec}\n").matches(exchange(text)) is matches


def test_text_matcher_explains_with_the_words_written() -> None:
    matcher = TextMatcher.build("contains", ("Weather", "Paris"), ignore_case=True)
    assert matcher.describe() == "contains 'Weather' and 'Paris' (ignoring case)"
    assert matcher.explain("last_user", "hi") == "last_user 'hi' does not contain 'Weather' and 'Paris' (ignoring case)"
    long = "x" * 100
    assert TextMatcher.build("equals", ("a",)).explain("system", long) == f"system '{'x' * 59}…' does not equal 'a'"


def test_regex_groups_are_captured_by_number_and_name() -> None:
    condition = when("last_user: {regex: '^(?P<verb>\\w+) (\\w+)'}\n")
    assert condition.captures(exchange("book Paris now")) == {
        "0": "book Paris",
        "1": "book",
        "2": "Paris",
        "verb": "book",
    }
    assert when("system: {regex: '(a)'}\n").captures(exchange("x", system="a")) == {}


# ---------------------------------------------------------------- each condition


def test_model_exact_glob_and_list() -> None:
    check(when("model: glm-5\n"), exchange("x"), None)
    check(when("model: 'glm-*'\n"), exchange("x", model="glm-5-turbo"), None)
    check(
        when("model: [qwen-plus, 'kimi-*']\n"), exchange("x"), "model is 'glm-5', expected one of 'qwen-plus', 'kimi-*'"
    )
    check(when("model: 'glm-*'\n"), exchange("x", model="glm"), "model is 'glm', expected 'glm-*'")


def test_model_also_matches_the_id_the_client_sent() -> None:
    request = exchange("x", model="glm-5", requested="ep-a1b2c3d4")
    check(when("model: ep-a1b2c3d4\n"), request, None)
    check(when("model: qwen-plus\n"), request, "model is 'glm-5' (requested as 'ep-a1b2c3d4'), expected 'qwen-plus'")


def test_endpoint() -> None:
    check(when("endpoint: chat\n"), exchange("x"), None)
    check(
        when("endpoint: [responses, messages]\n"),
        exchange("x"),
        "endpoint is 'chat', expected one of 'responses', 'messages'",
    )
    check(when("endpoint: messages\n"), exchange("x", protocol="messages"), None)


def test_last_user_is_the_last_user_message() -> None:
    check(when("last_user: second\n"), exchange("first", "second"), None)
    check(when("last_user: first\n"), exchange("first", "second"), "last_user 'second' does not equal 'first'")
    check(when("last_user: ''\n"), exchange(), None)


def test_system_is_the_joined_system_prompt() -> None:
    request = exchange("x", system="You are terse.")
    check(when("system: {starts_with: You are}\n"), request, None)
    check(when("system: {contains: pirate}\n"), request, "system 'You are terse.' does not contain 'pirate'")


def test_tools() -> None:
    request = exchange("x", tools=("get_weather", "search"))
    check(when("tools: [get_weather]\n"), request, None)
    check(when("tools: get_weather\n"), request, None)
    check(when("tools: {includes: [search, get_weather]}\n"), request, None)
    check(
        when("tools: [book, get_weather, pay]\n"),
        request,
        "tools 'book', 'pay' are not offered (offered: get_weather, search)",
    )
    check(when("tools: [book]\n"), exchange("x"), "tool 'book' is not offered (offered: none)")
    check(when("tools: {none: true}\n"), exchange("x"), None)
    check(when("tools: {none: true}\n"), request, "tools are offered (get_weather, search), expected none")
    check(when("tools: {none: false}\n"), exchange("x"), "no tools are offered, expected some")


def test_tool_result_presence() -> None:
    with_result = exchange("x", results=(("call_1", "get_weather", '{"weather": "sunny"}'),))
    check(when("tool_result: absent\n"), exchange("x"), None)
    check(when("tool_result: absent\n"), with_result, "the conversation has 1 tool result, expected none")
    check(when("tool_result: present\n"), with_result, None)
    check(when("tool_result: present\n"), exchange("x"), "the conversation has no tool result")


def test_tool_result_matches_if_any_result_matches() -> None:
    request = exchange("x", results=(("call_1", "search", "no hits"), ("call_2", "get_weather", '{"temperature": 22}')))
    check(when("tool_result: {name: search}\n"), request, None)
    check(when("tool_result: {name: get_weather, call_id: call_2}\n"), request, None)
    check(
        when("tool_result: {name: book}\n"), request, "no tool result is named 'book' (found 'search', 'get_weather')"
    )
    check(
        when("tool_result: {call_id: call_9}\n"),
        request,
        "no tool result answers call 'call_9' (found 'call_1', 'call_2')",
    )
    check(when("tool_result: {content: {contains: hits}}\n"), request, None)
    check(
        when("tool_result: {name: search, content: {contains: found}}\n"),
        request,
        "tool result 'search' 'no hits' does not contain 'found'",
    )


def test_tool_result_content_as_json_fields() -> None:
    request = exchange("x", results=(("c", "get_weather", '{"temperature": 22, "sky": {"state": "Sunny"}}'),))
    check(when("tool_result: {content: {json: {temperature: 22}}}\n"), request, None)
    check(when("tool_result: {content: {json: {sky.state: {equals: sunny, ignore_case: true}}}}\n"), request, None)
    check(when("tool_result: {content: {json: {wind: {exists: false}}}}\n"), request, None)
    check(
        when("tool_result: {content: {json: {temperature: 30}}}\n"),
        request,
        "tool result 'get_weather' field temperature is 22, expected 30",
    )
    not_json = exchange("x", results=(("c", "f", "plain"),))
    check(when("tool_result: {content: {json: {a: 1}}}\n"), not_json, "tool result 'f' 'plain' is not JSON")


def test_turn_counts_user_messages() -> None:
    check(when("turn: 2\n"), exchange("a", "b"), None)
    check(when("turn: 2\n"), exchange("a"), "turn is 1, expected 2")
    check(when("turn: {min: 2}\n"), exchange("a"), "turn is 1, expected at least 2")
    check(when("turn: {max: 1}\n"), exchange("a", "b"), "turn is 2, expected at most 1")
    check(when("turn: {min: 2, max: 3}\n"), exchange("a", "b", "c", "d"), "turn is 4, expected between 2 and 3")


def test_messages_count() -> None:
    check(when("messages: {count: 2}\n"), exchange("x", system="s"), None)
    check(when("messages: {count: {min: 3}}\n"), exchange("x"), "message count is 1, expected at least 3")


def test_headers() -> None:
    request = exchange("x", headers={"x-team": "Blue", "user-agent": "OpenAI/Python 1.40"})
    check(when("headers: {x-team: Blue}\n"), request, None)
    check(when("headers: {X-Team: Blue}\n"), request, None)  # names are compared lower-cased
    check(when("headers: {user-agent: {starts_with: OpenAI/}}\n"), request, None)
    check(when("headers: {x-team: present, x-debug: absent}\n"), request, None)
    check(when("headers: {x-debug: present}\n"), request, "header 'x-debug' is missing, expected it to be present")
    check(when("headers: {x-team: absent}\n"), request, "header 'x-team' is present, expected it to be absent")
    check(when("headers: {x-team: red}\n"), request, "header 'x-team' 'Blue' does not equal 'red'")
    check(when("headers: {x-debug: '1'}\n"), request, "header 'x-debug' is missing")


def test_body_fields_by_dotted_path() -> None:
    body = {
        "metadata": {"user_id": "u-42"},
        "messages": [{"role": "system"}, {"role": "user"}],
        "temperature": 0.2,
        "stream": False,
        "n": 1,
    }
    request = exchange("x", body=body)
    check(when("body: {metadata.user_id: u-42}\n"), request, None)
    check(when("body: {messages.0.role: system, messages.-1.role: user}\n"), request, None)
    check(when("body: {temperature: 0.2, stream: false}\n"), request, None)
    check(when("body: {metadata.user_id: {starts_with: u-}}\n"), request, None)
    check(when("body: {metadata: {equals: {user_id: u-42}}}\n"), request, None)
    check(when("body: {seed: {exists: false}, n: {exists: true}}\n"), request, None)
    check(when("body: {stream: 0}\n"), request, "body.stream is false, expected 0")  # JSON false is not 0
    check(when("body: {n: true}\n"), request, "body.n is 1, expected true")
    check(when("body: {metadata.team: blue}\n"), request, "body.metadata.team is missing")
    check(when("body: {messages.5.role: user}\n"), request, "body.messages.5.role is missing")
    check(
        when("body: {temperature: {contains: '0'}}\n"), request, "body.temperature is 0.2, not text that contains '0'"
    )
    check(when("body: {seed: {exists: true}}\n"), request, "body.seed is missing, expected it to be present")


def test_json_equal_is_strict_about_booleans() -> None:
    assert json_equal(1, 1.0) and json_equal({"a": [1, True]}, {"a": [1.0, True]})
    assert not json_equal(True, 1) and not json_equal(0, False) and not json_equal("1", 1)
    assert not json_equal({"a": 1}, {"a": 1, "b": 2}) and not json_equal([1], [1, 1])


# ---------------------------------------------------------------- combinators


def test_all_listed_keys_must_hold_and_all_explains_each_miss() -> None:
    condition = when("model: qwen-plus\nlast_user: hi\nturn: 1\n")
    check(condition, exchange("hello"), "model is 'glm-5', expected 'qwen-plus'; last_user 'hello' does not equal 'hi'")


def test_all_any_not() -> None:
    check(when("all: [{turn: 1}, {last_user: {contains: a}}]\n"), exchange("a"), None)
    any_of = when("any: [{last_user: hi}, {last_user: hello}]\n")
    check(any_of, exchange("hello"), None)
    check(
        any_of,
        exchange("hey"),
        "none of the alternatives matched: (last_user 'hey' does not equal 'hi') or (last_user 'hey' does not equal 'hello')",
    )
    negated = when("not: {tool_result: present}\n")
    check(negated, exchange("x"), None)
    check(negated, exchange("x", results=(("c", "f", "r"),)), "expected not: a tool result")
    check(when("not: {model: 'glm-*', turn: 1}\n"), exchange("x"), "expected not: model is 'glm-*' and turn is 1")


def test_captures_come_through_combinators() -> None:
    assert when("all: [{last_user: {regex: '(\\d+)'}}]\n").captures(exchange("order 66")) == {"0": "66", "1": "66"}
    any_of = when("any: [{last_user: {regex: '^no (\\w+)'}}, {last_user: {regex: '^(\\w+)'}}]\n")
    assert any_of.captures(exchange("yes please"))["1"] == "yes"


def test_an_empty_when_matches_everything() -> None:
    condition = when("{}\n")
    check(condition, exchange(), None)
    assert condition.describe() == "every request"


# ---------------------------------------------------------------- matches and explain never disagree

CONDITIONS = [
    when(text)
    for text in (
        "model: 'glm-*'\n",
        "endpoint: [chat, messages]\n",
        "last_user: {contains: [a, b], ignore_case: true}\n",
        "last_user: {regex: '^a.*b$'}\n",
        "system: {ends_with: x}\n",
        "tools: [f, g]\n",
        "tools: {none: true}\n",
        "tool_result: {name: f, content: {json: {a: 1}}}\n",
        "tool_result: absent\n",
        "turn: {min: 2, max: 3}\n",
        "messages: {count: {max: 3}}\n",
        "headers: {x-a: {equals: A, ignore_case: true}, x-b: absent}\n",
        "body: {a.b: 1, c: {exists: true}}\n",
        "any: [{turn: 1}, {not: {last_user: {contains: a}}}]\n",
    )
]
WORDS = st.sampled_from(["a", "b", "ab", "x", "A", "axb", ""])


@st.composite
def requests(draw: st.DrawFn) -> Exchange:
    return exchange(
        *draw(st.lists(WORDS, max_size=4)),
        system=draw(WORDS),
        model=draw(st.sampled_from(["glm-5", "qwen-plus"])),
        protocol=draw(st.sampled_from(["chat", "responses", "messages"])),
        tools=tuple(draw(st.lists(st.sampled_from(["f", "g", "h"]), max_size=3, unique=True))),
        results=tuple(
            draw(
                st.lists(st.tuples(st.just("c"), st.sampled_from(["f", "g"]), st.sampled_from(['{"a": 1}', "[]", "a"])))
            )
        ),
        headers=draw(st.dictionaries(st.sampled_from(["x-a", "x-b"]), WORDS)),
        body=draw(
            st.fixed_dictionaries(
                {}, optional={"a": st.fixed_dictionaries({"b": st.sampled_from([1, True, "1"])}), "c": st.none()}
            )
        ),
    )


@settings(max_examples=300, deadline=None)
@given(requests())
def test_matches_exactly_when_explain_finds_no_reason(request: Exchange) -> None:
    for condition in CONDITIONS:
        assert condition.matches(request) is (condition.explain(request) is None), condition.describe()
