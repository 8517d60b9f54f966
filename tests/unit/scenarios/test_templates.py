"""Templates: paths, filters, typed values in tool arguments, load-time errors, and nothing dangerous."""

from __future__ import annotations

import pytest

from emulator.exchange import Exchange, Message, ToolCall, ToolResult
from emulator.scenarios.templates import Expr, TemplateError, compile_template, template_context


def context(**extra: object) -> dict[str, object]:
    request = Exchange(
        protocol="chat",
        model="glm-5",
        messages=[
            Message("system", "Be brief."),
            Message("user", "  weather in Paris  "),
            Message("assistant", tool_calls=[ToolCall("call_1", "get_weather", '{"city": "Paris"}')]),
            Message("tool", tool_result=ToolResult("call_1", "get_weather", '{"weather": "sunny", "temperature": 22}')),
        ],
        headers={"x-team": "blue"},
        body={"metadata": {"user_id": "u-42"}, "tags": ["a", "b"], "temperature": 0.5},
    )
    values = template_context(request, {"0": "weather in", "1": "weather", "city": "Paris"})
    values.update(extra)
    return values


def render(source: str, **extra: object) -> str:
    return compile_template(source).render(context(**extra))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ("{{ last_user }}", "  weather in Paris  "),
        ("{{last_user|trim|upper}}", "WEATHER IN PARIS"),
        ("{{ system }} / {{ model }} / turn {{ turn }}", "Be brief. / glm-5 / turn 1"),
        ("It is {{ tool_result.weather }} and {{ tool_result.temperature }}°C.", "It is sunny and 22°C."),
        ("{{ tool_result.name }} {{ tool_result.call_id }}", "get_weather call_1"),
        ("{{ tool_result }}", '{"weather": "sunny", "temperature": 22}'),
        ("{{ tool_result.content | length }}", "39"),
        ("{{ body.metadata.user_id }} {{ body.tags.1 }} {{ body.tags.-1 }}", "u-42 b b"),
        ("{{ body.tags }}", '["a", "b"]'),
        ("{{ body.tags | length }}", "2"),
        ("{{ headers.x-team }} {{ headers.X-Team }}", "blue blue"),
        ("{{ match.1 }} in {{ match.city }}", "weather in Paris"),
        ("{{ match.9 }}", ""),
        ("{{ body.nope }}", ""),
        ("{{ body.nope | default: Beijing }}", "Beijing"),
        ("{{ body.nope | default: 'a | b' }}", "a | b"),
        ('{{ body.nope | default: "quoted" | upper }}', "QUOTED"),
        ("{{ body.metadata.user_id | default: x }}", "u-42"),
        ("{{ last_user | trim | title }}", "Weather In Paris"),
        ("{{ body.metadata | json }}", '{"user_id": "u-42"}'),
        ("{{ tool_result.weather | json }}", '"sunny"'),
        ("{{ body.nope | json }}", '""'),
        ("{{ body.nope | length }}", "0"),
        ("{{ '{{' }} literal {{ \"}}\" }}", "{{ literal }}"),
        ("closing }} alone is text", "closing }} alone is text"),
        ("{{ body.temperature }} {{ tool_result.missing | default: 3 }}", "0.5 3"),
    ],
)
def test_render(source: str, expected: str) -> None:
    assert render(source) == expected


def test_default_applies_to_empty_text_too() -> None:
    assert render("{{ last_user | default: hi }}", last_user="") == "hi"


def test_without_tool_results_tool_result_is_empty() -> None:
    request = Exchange(protocol="chat", model="m", messages=[Message("user", "hi")])
    template = compile_template("[{{ tool_result }}{{ tool_result.name }}{{ tool_result.x | default: none }}]")
    assert template.render(template_context(request)) == "[none]"


def test_tool_result_meta_fields_win_over_json_fields_of_the_same_name() -> None:
    request = Exchange(
        protocol="chat",
        model="m",
        messages=[Message("tool", tool_result=ToolResult("c1", "f", '{"name": "inner", "city": "Oslo"}'))],
    )
    values = template_context(request)
    assert compile_template("{{ tool_result.name }} {{ tool_result.city }}").render(values) == "f Oslo"


def test_render_value_keeps_json_types_for_a_single_expression() -> None:
    values = context()
    assert compile_template("{{ tool_result.temperature }}").render_value(values) == 22
    assert compile_template("{{ body.temperature }}").render_value(values) == 0.5
    assert compile_template("{{ body.tags }}").render_value(values) == ["a", "b"]
    assert compile_template("{{ body.nope | default: 7 }}").render_value(values) == 7
    assert compile_template("{{ body.nope | default: true }}").render_value(values) is True
    assert compile_template("{{ body.nope | default: '7' }}").render_value(values) == "7"
    assert compile_template("{{ body.nope }}").render_value(values) == ""
    assert compile_template("{{ tool_result.temperature }}°").render_value(values) == "22°"
    assert compile_template(" {{ tool_result.temperature }}").render_value(values) == " 22"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ last_usr }}", "unknown template variable 'last_usr'; did you mean 'last_user'?"),
        ("{{ last_user | uper }}", "unknown filter 'uper'; did you mean 'upper'?"),
        ("{{ last_user", "'{{' is never closed with '}}'"),
        ("{{ }}", "'{{ }}' is empty; write a variable such as {{ last_user }}"),
        ("{{ last_user | default }}", "filter 'default' needs a value"),
        ("{{ last_user | default: }}", "filter 'default' needs a value"),
        ("{{ last_user | upper: x }}", "filter 'upper' takes no argument"),
        ("{{ last_user.text }}", "'last_user' is a plain value and has no fields"),
        ("{{ match }}", "'match' needs a group number or name"),
        ("{{ body..a }}", "'body..a' is not a variable path"),
        ("{{ body[0] }}", "'body[0]' is not a variable path"),
        ("{{ last_user() }}", "'last_user()' is not a variable path"),
        ("{{ __class__ }}", "unknown template variable '__class__'"),
        ("{{ ''.__class__ }}", "is not a variable path"),  # a literal cannot be dug into
        ("{{ import os }}", "'import os' is not a variable path"),
    ],
)
def test_malformed_templates_are_load_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template(source)
    assert str(caught.value).startswith(message) or message in str(caught.value)


class Spy:
    """Any attribute access on this object would be noticed."""

    touched: list[str] = []

    def __getattr__(self, name: str) -> object:
        Spy.touched.append(name)
        raise AttributeError(name)


@pytest.mark.parametrize(
    "source",
    [
        "{{ body.__class__ }}",
        "{{ body.__class__.__mro__ }}",
        "{{ tool_result.__init__.__globals__ }}",
        "{{ headers.__dict__ }}",
        "{{ body.spy.__class__ }}",
        "{{ body.spy.anything }}",
        "{{ match.__len__ }}",
    ],
)
def test_python_internals_are_just_missing_keys(source: str) -> None:
    Spy.touched.clear()
    values = context(body={"spy": Spy()})
    assert compile_template(source).render(values) == ""
    assert Spy.touched == []


def test_templates_are_parsed_once_into_a_tiny_ast() -> None:
    template = compile_template("Hi {{ last_user | trim | default: you }}!")
    assert template.parts[0] == "Hi " and template.parts[2] == "!"
    expr = template.parts[1]
    assert isinstance(expr, Expr) and expr.path == ("last_user",)
    assert [f.name for f in expr.filters] == ["trim", "default"] and expr.filters[1].argument == "you"
    assert not template.is_static and compile_template("static").is_static
