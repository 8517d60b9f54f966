import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from emulator.exchange import Exchange, Message, ResponseFormat, Tool, ToolChoice, ToolResult
from emulator.generate import Generator, generated_reply
from tests.helpers.generate import PERSON

FORMATS = Draft202012Validator.FORMAT_CHECKER


def assert_valid(schema: Any, value: Any) -> None:
    Draft202012Validator(schema, format_checker=FORMATS).validate(value)


WEATHER = Tool(
    "get_weather",
    "Get the weather forecast in a given location",
    {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["location"],
        "additionalProperties": False,
    },
)
STOCK = Tool(
    "lookup_stock",
    "Look up the latest share price of a listed company",
    {
        "type": "object",
        "properties": {"ticker": {"type": "string", "pattern": "^[A-Z]{3,4}$"}},
        "required": ["ticker"],
    },
)
MAIL = Tool(
    "send_email",
    "Send an email message",
    {
        "type": "object",
        "properties": {"to": {"type": "string", "format": "email"}, "body": {"type": "string", "maxLength": 50}},
        "required": ["to", "body"],
        "additionalProperties": False,
    },
)
TOOLS = [WEATHER, STOCK, MAIL]
CALL_ID = re.compile(r"call_[0-9a-f]{24}")
COLORS: dict[str, Any] = {
    "definitions": {"color": {"enum": ["red", "blue"]}},
    "type": "object",
    "properties": {"fg": {"$ref": "#/definitions/color"}, "bg": {"$ref": "#/definitions/color"}},
    "required": ["fg", "bg"],
}

SCHEMAS: list[dict[str, Any]] = [
    {},
    {"type": "object"},
    {"type": "null"},
    {"type": ["string", "null"]},
    {"const": {"a": [1, 2]}},
    {"enum": ["red", "green", 3, None]},
    {"type": "string", "minLength": 30, "maxLength": 40},
    {"type": "string", "maxLength": 3},
    {"type": "string", "pattern": "^[A-Z]{3}$"},
    {"type": "string", "pattern": r"^\d{3}-\d{4}$"},
    {"type": "string", "pattern": r"^(foo|bar)_[a-z0-9]+$", "maxLength": 10},
    {"type": "string", "pattern": r"^[^a-z\s]{2,5}$"},
    {"type": "string", "pattern": r"^v\d+\.\d+(\.\d+)?(-[a-z]+)?$"},
    {"type": "string", "pattern": "ab"},
    {"type": "integer", "minimum": -5, "maximum": 5},
    {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 2},
    {"type": "integer", "minimum": 10, "multipleOf": 7},
    {"type": "number", "minimum": 0.5, "maximum": 0.75},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "multipleOf": 0.01},
    {"type": "number", "maximum": -1000},
    {"type": "boolean"},
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 4}, "uniqueItems": True, "minItems": 5},
    {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    {"type": "array", "maxItems": 0},
    *({"type": "string", "format": name} for name in ("date-time", "date", "time", "email", "uri", "uuid", "ipv4")),
    *({"type": "string", "format": name} for name in ("ipv6", "hostname", "duration")),
    PERSON,
    {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
    {"type": "object", "properties": {"a": {"type": "string"}}, "minProperties": 1, "maxProperties": 1},
    {"type": "object", "required": ["id"], "properties": {"id": {"type": "string", "format": "uuid"}}},
    {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "integer", "minimum": 100}]},
    {"oneOf": [{"type": "boolean"}, {"type": "null"}]},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"required": ["b"]}]},
    {"allOf": [{"type": "integer", "minimum": 0}, {"maximum": 3}, {"multipleOf": 2}]},
    {
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
        "type": "array",
        "items": {"$ref": "#/$defs/point"},
        "minItems": 1,
    },
    COLORS,
    {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["value", "children"],
            }
        },
        "$ref": "#/$defs/node",
    },
    {
        "$defs": {
            "list": {
                "anyOf": [
                    {"type": "null"},
                    {"type": "object", "properties": {"next": {"$ref": "#/$defs/list"}}, "required": ["next"]},
                ]
            }
        },
        "$ref": "#/$defs/list",
    },
    WEATHER.parameters,
    STOCK.parameters,
    MAIL.parameters,
]


def exchange(*messages: Message, **fields: Any) -> Exchange:
    return Exchange(protocol="chat", model="test-model", messages=list(messages), **fields)


def user(text: str) -> Message:
    return Message("user", text)


# -- Generator ------------------------------------------------------------------------------------------------------


def test_rng_is_deterministic_per_seed_and_keys() -> None:
    generator = Generator(7)
    assert generator.rng("a", 1).random() == generator.rng("a", 1).random()
    assert generator.rng("a", 1).random() != generator.rng("a", 2).random()
    assert generator.rng("a", 1).random() != Generator(8).rng("a", 1).random()


def test_text_is_deterministic_and_varies_with_keys() -> None:
    generator = Generator(3)
    assert generator.text("x", 1) == generator.text("x", 1)
    assert generator.text("x", 1) != generator.text("x", 2)
    assert generator.text("x", 1) != Generator(4).text("x", 1)


def test_text_sentence_count_and_locale() -> None:
    text = Generator(1).text("k", sentences=(3, 3))
    assert text.count(".") == 3
    assert re.search(r"[\u4e00-\u9fff]", Generator(1).text("k", locale="zh_CN"))


@pytest.mark.parametrize("schema", SCHEMAS)
def test_from_schema_values_validate(schema: dict[str, Any]) -> None:
    generator = Generator(11)
    for key in range(25):
        assert_valid(schema, generator.from_schema(schema, key))


@pytest.mark.parametrize("schema", SCHEMAS)
def test_from_schema_is_deterministic(schema: dict[str, Any]) -> None:
    assert Generator(2).from_schema(schema, "same") == Generator(2).from_schema(schema, "same")


def test_from_schema_varies_with_keys() -> None:
    schema = PERSON
    values = {json.dumps(Generator(1).from_schema(schema, key), sort_keys=True) for key in range(10)}
    assert len(values) == 10


def test_from_schema_uses_property_names_as_hints() -> None:
    value = Generator(1).from_schema(
        {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}
    )
    assert "@" in value["email"]


def test_from_schema_includes_optional_properties_sometimes() -> None:
    schema = WEATHER.parameters
    seen = set().union(*(Generator(1).from_schema(schema, key) for key in range(30)))
    assert seen == {"location", "unit", "days"}


def test_unsatisfiable_pattern_falls_back_without_crashing() -> None:
    assert isinstance(Generator(1).from_schema({"type": "string", "pattern": r"(?(1)a|b)"}), str)


def _simple_schemas() -> st.SearchStrategy[dict[str, Any]]:
    lengths = st.tuples(st.integers(0, 10), st.integers(0, 10)).map(sorted)
    bounds = st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)).map(sorted)
    leaves = st.one_of(
        lengths.map(lambda b: {"type": "string", "minLength": b[0], "maxLength": b[1]}),
        st.sampled_from(["^[a-z]+$", "^[A-Z]{2,4}-\\d{2}$", "^(yes|no)$", "^\\w{3}$", "x+y?"]).map(
            lambda p: {"type": "string", "pattern": p}
        ),
        st.sampled_from(["date", "date-time", "email", "uuid", "ipv4"]).map(lambda f: {"type": "string", "format": f}),
        bounds.map(lambda b: {"type": "integer", "minimum": b[0], "maximum": b[1]}),
        bounds.map(lambda b: {"type": "number", "exclusiveMinimum": b[0] - 1, "maximum": b[1]}),
        st.integers(1, 9).map(lambda m: {"type": "integer", "multipleOf": m}),
        st.just({"type": "boolean"}),
        st.just({"type": "null"}),
        st.lists(st.one_of(st.integers(), st.text(max_size=5)), min_size=1, max_size=4).map(lambda e: {"enum": e}),
    )

    def containers(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        properties = st.dictionaries(st.sampled_from(["name", "city", "id", "a", "b", "when"]), children, max_size=4)
        objects = st.builds(
            lambda props, closed, data: {
                "type": "object",
                "properties": props,
                "required": [k for k in props if data.draw(st.booleans())],
                "additionalProperties": not closed,
            },
            properties,
            st.booleans(),
            st.data(),
        )
        arrays = st.builds(
            lambda items, size, unique: {
                "type": "array",
                "items": items,
                "minItems": size[0],
                "maxItems": size[1],
                **({"uniqueItems": True} if unique and size[0] <= 1 else {}),  # more may be unsatisfiable
            },
            children,
            st.tuples(st.integers(0, 3), st.integers(0, 5)).map(sorted),
            st.booleans(),
        )
        any_of = st.lists(children, min_size=1, max_size=3).map(lambda options: {"anyOf": options})
        return st.one_of(objects, arrays, any_of)

    return st.recursive(leaves, containers, max_leaves=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_simple_schemas(), st.integers(0, 2**32))
def test_from_schema_validates_for_generated_schemas(schema: dict[str, Any], key: int) -> None:
    assert_valid(schema, Generator(0).from_schema(schema, key))


# -- generated_reply ------------------------------------------------------------------------------------------------


def test_plain_text_reply() -> None:
    reply = generated_reply(exchange(user("Hello, please introduce yourself")), Generator(1))
    [choice] = reply.choices
    assert choice.content and not choice.tool_calls
    assert choice.reasoning is None and choice.finish_reason is None
    assert reply.usage.prompt_tokens is None


def test_reply_is_deterministic_per_request() -> None:
    request = exchange(user("Tell me a story"))
    assert generated_reply(request, Generator(1)) == generated_reply(request, Generator(1))
    assert generated_reply(request, Generator(1)) != generated_reply(exchange(user("Tell me a joke")), Generator(1))
    assert generated_reply(request, Generator(1)) != generated_reply(request, Generator(2))
    seeded = generated_reply(exchange(user("Tell me a story"), seed=42), Generator(1))
    assert seeded != generated_reply(request, Generator(1))


def test_n_choices_differ() -> None:
    reply = generated_reply(exchange(user("Hi"), n=3), Generator(1))
    assert len({choice.content for choice in reply.choices}) == 3


def test_named_function_is_called_with_valid_arguments() -> None:
    request = exchange(user("Hi"), tools=TOOLS, tool_choice=ToolChoice("function", "send_email"))
    [call] = generated_reply(request, Generator(1)).choices[0].tool_calls
    assert call.name == "send_email"
    assert CALL_ID.fullmatch(call.id)
    assert_valid(MAIL.parameters, json.loads(call.arguments))


def test_required_calls_one_or_two_distinct_tools() -> None:
    counts = set()
    for seed in range(20):
        request = exchange(user(f"Request {seed}"), tools=TOOLS, tool_choice=ToolChoice("required"))
        choice = generated_reply(request, Generator(seed)).choices[0]
        assert choice.content is None
        names = [call.name for call in choice.tool_calls]
        assert len(set(names)) == len(names)
        counts.add(len(names))
        for call in choice.tool_calls:
            tool = next(tool for tool in TOOLS if tool.name == call.name)
            assert_valid(tool.parameters, json.loads(call.arguments))
    assert counts == {1, 2}


def test_required_without_parallel_calls_one_tool() -> None:
    for seed in range(10):
        request = exchange(
            user("Hi"), tools=TOOLS, tool_choice=ToolChoice("required"), parallel_tool_calls=False, seed=seed
        )
        assert len(generated_reply(request, Generator(1)).choices[0].tool_calls) == 1


def test_required_prefers_the_mentioned_tool() -> None:
    request = exchange(user("What's the share price of ACME?"), tools=TOOLS, tool_choice=ToolChoice("required"))
    assert generated_reply(request, Generator(1)).choices[0].tool_calls[0].name == "lookup_stock"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What's the weather like in Paris?", ["get_weather"]),
        ("Please call send_email for me", ["send_email"]),
        ("Check the weather in Oslo and the share price of ACME", ["get_weather", "lookup_stock"]),
        ("What is the current time?", []),  # "current" is too common to count
        ("Tell me a joke", []),
    ],
)
def test_auto_with_generated_tool_calls_on_calls_mentioned_tools(text: str, expected: list[str]) -> None:
    choice = generated_reply(exchange(user(text), tools=TOOLS), Generator(1), tool_calls="auto").choices[0]
    assert [call.name for call in choice.tool_calls] == expected
    assert (choice.content is None) == bool(expected)


@pytest.mark.parametrize("text", ["What's the weather like in Paris?", "Please call send_email for me", "run Bash"])
def test_auto_answers_with_text_unless_tool_calls_are_switched_on(text: str) -> None:
    """An agent runs what it is handed: under `auto` a generated reply never invents a call (the default)."""
    bash = Tool("Bash", "Run a shell command", {"type": "object", "properties": {"command": {"type": "string"}}})
    choice = generated_reply(exchange(user(text), tools=[*TOOLS, bash]), Generator(1)).choices[0]
    assert choice.content and not choice.tool_calls


def test_tool_names_match_whole_words_only() -> None:
    tool = Tool("get", "Fetch a page", {"type": "object", "properties": {}})
    request = exchange(user("Let us work together"), tools=[tool])
    assert not generated_reply(request, Generator(1), tool_calls="auto").choices[0].tool_calls
    request = exchange(user("please use get"), tools=[tool])
    [call] = generated_reply(request, Generator(1), tool_calls="auto").choices[0].tool_calls
    assert call.arguments == "{}"


def test_auto_answers_a_tool_result_with_text_that_mentions_it() -> None:
    request = exchange(user("Weather in Paris?"), tools=TOOLS)
    call = generated_reply(request, Generator(1), tool_calls="auto").choices[0].tool_calls[0]
    result = Message("tool", tool_result=ToolResult(call.id, "get_weather", '{"temperature": 21, "sky": "clear"}'))
    request = exchange(user("Weather in Paris?"), Message("assistant", tool_calls=[call]), result, tools=TOOLS)
    choice = generated_reply(request, Generator(1), tool_calls="auto").choices[0]
    assert not choice.tool_calls
    assert "get_weather" in choice.content and '"temperature": 21' in choice.content


def test_none_never_calls_tools() -> None:
    request = exchange(user("What's the weather in Paris?"), tools=TOOLS, tool_choice=ToolChoice("none"))
    choice = generated_reply(request, Generator(1)).choices[0]
    assert choice.content and not choice.tool_calls


def test_json_object_format() -> None:
    request = exchange(user("Describe a user"), response_format=ResponseFormat("json_object"))
    assert isinstance(json.loads(generated_reply(request, Generator(1)).choices[0].content), dict)


@pytest.mark.parametrize("schema", [PERSON, COLORS, WEATHER.parameters])
def test_json_schema_format_validates(schema: dict[str, Any]) -> None:
    for seed in range(10):
        request = exchange(user("Go"), response_format=ResponseFormat("json_schema", schema, "out"), seed=seed)
        assert_valid(schema, json.loads(generated_reply(request, Generator(1)).choices[0].content))


def test_reasoning_comes_with_content() -> None:
    choice = generated_reply(exchange(user("Think about it"), reasoning=True), Generator(1)).choices[0]
    assert choice.reasoning and choice.content


def test_unique_items_that_cannot_all_be_unique_stay_valid_when_the_budget_runs_out() -> None:
    """Found by the fuzzer: unique arrays of unique arrays of "" spent the value budget on retries and kept a None."""
    inner = {"type": "array", "items": {"type": "string", "maxLength": 0}, "maxItems": 3, "uniqueItems": True}
    schema = {"type": "array", "items": inner, "maxItems": 3, "uniqueItems": True}
    for key in range(20):
        assert_valid(schema, Generator(0).from_schema(schema, key))
