"""`reply:`, `fail:` and `sequence:` mappings → Action objects (templates compiled here, once)."""

from __future__ import annotations

from typing import Any

from emulator.exchange import UsageOverride
from emulator.headers import header_problem
from emulator.scenarios.actions import (
    Action,
    Attached,
    ChoiceSpec,
    FailAction,
    ReplyAction,
    SequenceAction,
    TemplatedJson,
    Then,
    ToolCallSpec,
)
from emulator.scenarios.checks import INVALID, Checker, Invalid, shown, words
from emulator.scenarios.parse_extras import fault_at, timing_at
from emulator.scenarios.problems import Pos
from emulator.scenarios.schema import ANSWERS, FINISH_REASONS, KEYS, THEN_MODES
from emulator.scenarios.yamlpos import YList, YMap

_PER_CHOICE = KEYS["choice"]  # reply keys that move into each choice when `choices` is used


def parse_action(check: Checker, rule: YMap, seed: str = "") -> Action | None:
    """The rule's one action, with its timing and fault; None when it has none or several (the problem is logged).

    A rule with only a `fault` answers with a generated reply, for the fault to break.
    """
    given = [key for key in ANSWERS if key in rule]
    extras = _extras(check, rule, seed)
    if not given and "fault" in rule:
        return None if extras is INVALID else Attached(GENERATED, *extras)
    if len(given) != 1:
        found = f", found {words([repr(k) for k in given], 'and')}" if given else ""
        check.error(
            rule.key_at(given[1]) if given else rule.pos, f"a rule needs exactly one of reply, fail or sequence{found}"
        )
        return None
    key = given[0]
    if "then" in rule and key != "sequence":
        check.error(rule.key_at("then"), "'then' only applies to a sequence")
    action = _sequence(check, rule, seed) if key == "sequence" else _step(check, key, rule[key], rule.at(key))
    return _attached(action, extras)


GENERATED = ReplyAction((ChoiceSpec(),), repeat=True)  # `reply: {}`


def _extras(check: Checker, data: YMap, seed: str) -> Any:
    """(timing, fault) of a rule or a step, each None when not given; INVALID when either is wrong."""
    timing = timing_at(check, data) if "timing" in data else None
    fault = fault_at(check, data, f"{seed}:fault") if "fault" in data else None
    return INVALID if INVALID in (timing, fault) else (timing, fault)


def _attached(action: Action | None, extras: Any) -> Action | None:
    if action is None or extras is INVALID:
        return None
    return Attached(action, *extras) if extras != (None, None) else action


def _step(check: Checker, key: str, value: Any, pos: Pos) -> Action | None:
    return parse_reply(check, value, pos) if key == "reply" else parse_fail(check, value, pos)


def _sequence(check: Checker, rule: YMap, seed: str) -> Action | None:
    then: Then | Invalid = "repeat_last"
    if "then" in rule:
        then = check.choice(rule["then"], rule.at("then"), "'then'", THEN_MODES)
    steps_list = check.items(rule["sequence"], rule.at("sequence"), "'sequence'")
    if steps_list is None:
        return None
    steps: list[Action | None] = []
    for index, item in enumerate(steps_list):
        pos = steps_list.at(index)
        data = check.mapping(item, pos, "a sequence step", " with reply or fail")
        if data is None:
            steps.append(None)
            continue
        known = check.keys(data, KEYS["step"], "in sequence step")
        given = [key for key in ("reply", "fail") if key in data]
        extras = _extras(check, data, f"{seed}/{index + 1}")
        if not given and "fault" in data:
            steps.append(_attached(GENERATED, extras))
            continue
        if len(given) != 1:
            if known or given:
                check.error(data.pos, "a sequence step needs exactly one of reply or fail")
            steps.append(None)
            continue
        steps.append(_attached(_step(check, given[0], data[given[0]], data.at(given[0])), extras))
    if isinstance(then, Invalid) or None in steps:
        return None
    return SequenceAction(tuple(s for s in steps if s is not None), then)


# ---------------------------------------------------------------- reply


def parse_reply(check: Checker, value: Any, pos: Pos) -> ReplyAction | None:
    if isinstance(value, str):  # `reply: Hello` — the text of the answer, most likely
        shown_text = value if value and all(c.isalnum() or c in " .,!?'-" for c in value) else repr(value)
        check.error(
            pos,
            f"'reply' must be a mapping, got the text {value!r}; to answer with it write "
            f"'reply: {{content: {shown_text}}}' (or 'reply: {{}}' for a generated reply)",
        )
        return None
    data = check.mapping(value, pos, "'reply'", " (write 'reply: {}' for a generated reply)")
    if data is None:
        return None
    check.keys(data, KEYS["reply"], "in reply")
    usage = _usage(check, data["usage"], data.at("usage")) if "usage" in data else UsageOverride()
    if "choices" not in data:
        choice = _choice(check, data)
        return None if choice is None or usage is None else ReplyAction((choice,), repeat=True, usage=usage)
    for key in _PER_CHOICE:
        if key in data:
            check.error(data.key_at(key), f"'{key}' cannot be combined with 'choices'; put it inside each choice")
    items = check.items(data["choices"], data.at("choices"), "'choices'")
    if items is None:
        return None
    choices = []
    for index, item in enumerate(items):
        choice_map = check.mapping(item, items.at(index), "each choice")
        if choice_map is not None:
            check.keys(choice_map, KEYS["choice"], "in choice")
            choices.append(_choice(check, choice_map))
    if usage is None or None in choices or len(choices) != len(items):
        return None
    return ReplyAction(tuple(c for c in choices if c is not None), repeat=False, usage=usage)


def _choice(check: Checker, data: YMap) -> ChoiceSpec | None:
    texts: dict[str, Any] = {}
    for key in ("content", "reasoning", "refusal"):
        texts[key] = check.template(data[key], data.at(key), f"'{key}'") if key in data else None
    finish = None
    if "finish_reason" in data:
        finish = check.choice(data["finish_reason"], data.at("finish_reason"), "'finish_reason'", FINISH_REASONS)
    calls: Any = ()
    if "tool_calls" in data:
        calls = _tool_calls(check, data["tool_calls"], data.at("tool_calls"))
    if INVALID in (*texts.values(), finish, calls):
        return None
    return ChoiceSpec(tool_calls=calls, finish_reason=finish, **texts)


def _tool_calls(check: Checker, value: Any, pos: Pos) -> Any:
    items = check.items(value, pos, "'tool_calls'")
    if items is None:
        return INVALID
    calls = [_tool_call(check, item, items.at(index)) for index, item in enumerate(items)]
    return INVALID if INVALID in calls else tuple(calls)


def _tool_call(check: Checker, value: Any, pos: Pos) -> Any:
    data = check.mapping(value, pos, "each tool call", " with name, arguments and id")
    if data is None:
        return INVALID
    check.keys(data, KEYS["toolCall"], "in tool call")
    if "name" in data:
        name = check.text(data["name"], data.at("name"), "'name' in tool call", allow_empty=False)
    else:
        name = check.error(data.pos, "a tool call needs a 'name'")
    call_id = check.text(data["id"], data.at("id"), "'id' in tool call", allow_empty=False) if "id" in data else None
    arguments: Any = None
    arguments_text: Any = None
    if "arguments" in data:
        raw, at = data["arguments"], data.at("arguments")
        if isinstance(raw, str):
            arguments_text = check.template(raw, at, "'arguments'")
        elif isinstance(raw, YMap):
            arguments = _templated_json(check, raw, at)
        else:
            arguments = check.error(at, f"'arguments' must be a mapping or a JSON string, got {shown(raw)}")
    if INVALID in (name, call_id, arguments, arguments_text):
        return INVALID
    return ToolCallSpec(name=name, arguments=arguments, arguments_text=arguments_text, id=call_id)


def _templated_json(check: Checker, value: Any, pos: Pos) -> Any:
    """Mappings and lists stay, strings become templates, other scalars are kept as they are."""
    if isinstance(value, YMap):
        result: dict[str, TemplatedJson] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                check.error(value.key_at(key), f"argument names must be text, got {shown(key)}")
                continue
            result[key] = _templated_json(check, item, value.at(key))
        return INVALID if INVALID in result.values() else result
    if isinstance(value, YList):
        items = [_templated_json(check, item, value.at(i)) for i, item in enumerate(value)]
        return INVALID if INVALID in items else items
    if isinstance(value, str):
        return check.template(value, pos, "'arguments'")
    return value


def _usage(check: Checker, value: Any, pos: Pos) -> UsageOverride | None:
    data = check.mapping(value, pos, "'usage'", " of token counts")
    if data is None:
        return None
    check.keys(data, KEYS["usage"], "in usage")
    counts = {key: check.integer(data[key], data.at(key), f"'{key}'", low=0) for key in KEYS["usage"] if key in data}
    return None if INVALID in counts.values() else UsageOverride(**counts)


# ---------------------------------------------------------------- fail


def parse_fail(check: Checker, value: Any, pos: Pos) -> FailAction | None:
    data = check.mapping(value, pos, "'fail'", " with at least a status")
    if data is None:
        return None
    check.keys(data, KEYS["fail"], "in fail")
    if "status" not in data:
        check.error(data.pos, "'fail' needs a 'status' (an integer between 400 and 599)")
        return None
    status = check.integer(data["status"], data.at("status"), "'status'", 400, 599)
    message: Any = None
    if "message" in data:
        message = check.template(data["message"], data.at("message"), "'message'")
    fields = {
        key: check.text(data[key], data.at(key), f"'{key}'", allow_empty=False) if key in data else None
        for key in ("type", "code", "param")
    }
    headers = _headers(check, data["headers"], data.at("headers")) if "headers" in data else ()
    if INVALID in (status, message, headers, *fields.values()):
        return None
    return FailAction(status=status, message=message, headers=headers, **fields)


def _headers(check: Checker, value: Any, pos: Pos) -> Any:
    data = check.mapping(value, pos, "'headers' in fail", " of header names to values")
    if data is None:
        return INVALID
    headers = []
    for name, item in data.items():
        if not isinstance(name, str) or not name.strip():
            check.error(data.key_at(name), f"a header name must be text, got {shown(name)}")
        elif isinstance(item, str) or (isinstance(item, int | float) and not isinstance(item, bool)):
            problem = header_problem(name, str(item))
            if problem is None:
                headers.append((name, str(item)))
            else:
                check.error(data.at(name), problem)
        else:
            check.error(data.at(name), f"header {name!r} must be text or a number, got {shown(item)}")
    return tuple(headers) if len(headers) == len(data) else INVALID
