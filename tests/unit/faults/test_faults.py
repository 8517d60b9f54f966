"""Faults: reading them (scenario, header, JSON), when they fire (seeded patterns), what they do to a stream,
and the run-time control API. How each SDK sees them is in test_faults_sdk.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from emulator.errors import ApiError
from emulator.faults.book import FaultBook
from emulator.faults.kinds import KINDS, Fault
from emulator.faults.rules import FaultRule, Pattern, Who, header_to_mapping, parse_fault_json
from emulator.ratelimit import anthropic_limit_headers, openai_limit_headers
from emulator.scenarios import ScenarioError, parse_scenario
from emulator.sse import SseEvent
from tests.helpers.servers import ROOT

SCHEMA = Draft202012Validator(json.loads((ROOT / "emulator" / "data" / "scenario.schema.json").read_text()))

# ---------------------------------------------------------------- reading


def test_header_syntax() -> None:
    assert header_to_mapping("stall=2000; after=3") == {"stall": 2000, "after": 3}
    assert header_to_mapping("reset") == {"reset": True}
    assert header_to_mapping("error=429;retry_after=1.5; should_retry=false") == {
        "error": 429,
        "retry_after": 1.5,
        "should_retry": False,
    }
    assert header_to_mapping("error=503; window=5-10; model=glm-5,qwen-*") == {
        "error": 503,
        "window": [5, 10],
        "model": ["glm-5", "qwen-*"],
    }


def book_rule(text: str) -> FaultRule:
    rule = FaultBook().from_header({"x-emulator-fault": text})
    assert rule is not None
    return rule


def test_a_header_fault() -> None:
    rule = book_rule("error=429; retry_after_ms=250; first=2")
    assert rule.fault == Fault("error", 429.0, retry_after_ms=250.0)
    assert rule.pattern == Pattern(first=2)
    assert rule.source == "header"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "a fault needs exactly one kind"),
        ("stal=3", "unknown key 'stal' in fault; did you mean 'stall'?"),
        ("reset; stall=5", "a fault needs exactly one kind: error, latency, hang, reset, empty, truncate, "),
        ("error=200", "'error' must be an integer between 400 and 599, got 200"),
        ("error", "'error' must be an integer between 400 and 599, got true"),
        ("reset=5", "'reset' must be true, got 5"),
        ("reset; after=2", "'after' does not apply to a reset fault"),
        ("error=429; retry_after=1; retry_after_ms=5", "give either 'retry_after' or 'retry_after_ms', not both"),
        ("stall=-1", "'stall' must be a number of at least 0 (milliseconds), got -1"),
        ("disconnect_after=1.5", "'disconnect_after' must be an integer of at least 0, got 1.5"),
        ("reset; probability=2", "'probability' must be a number between 0 and 1, got 2"),
        ("reset; every=0", "'every' must be a positive integer, got 0"),
        ("reset; window=9-3", "'window' must be [from, to]: seconds of the run, from < to, got [9, 3]"),
        ("error_event=200", "'error_event' must be an integer between 400 and 599"),
    ],
)
def test_a_bad_header_fault_is_a_400_naming_the_header(text: str, says: str) -> None:
    with pytest.raises(ApiError) as caught:
        FaultBook().from_header({"x-emulator-fault": text})
    failure = caught.value.failure
    assert failure.status == 400 and failure.param == "x-emulator-fault"
    assert failure.message.startswith("Invalid header 'x-emulator-fault': ")
    assert says in failure.message


def test_json_faults() -> None:
    rule, problems = parse_fault_json({"disconnect_after": 3, "model": "glm-*", "probability": 0.5}, fault_id="f")
    assert problems == [] and rule is not None
    assert rule.fault == Fault("disconnect_after", 3.0) and rule.pattern == Pattern(probability=0.5, model=("glm-*",))
    assert rule.as_dict() == {
        "id": "f",
        "source": "runtime",
        "label": "disconnect_after 3",
        "disconnect_after": 3.0,
        "probability": 0.5,
        "model": ["glm-*"],
    }
    assert parse_fault_json([1], fault_id="f")[1] == ["the body must be a JSON object describing a fault, got a list"]
    assert parse_fault_json({"error": 429, "firts": 1}, fault_id="f")[1] == [
        "unknown key 'firts' in fault; did you mean 'first'?"
    ]


def problems_of(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "f.yaml")
    return [f"{p.line}:{p.column}: {p.message}" for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules:\n  - fault: {reste: true}\n", "2:13: unknown key 'reste' in fault; did you mean 'reset'?"),
        ("rules:\n  - fault: rest\n", "2:12: a fault written as a word must be hang, reset, empty, truncate, "),
        ("rules:\n  - fault: {error: 600}\n", "2:20: 'error' must be an integer between 400 and 599, got 600"),
        ("rules:\n  - fault: {stall: 5, after: x}\n", "2:30: 'after' must be an integer of at least 0, got 'x'"),
        ("rules:\n  - fault: {reset: true, bytes: 3}\n", "2:26: 'bytes' does not apply to a reset fault"),
        (
            "rules:\n  - sequence:\n      - fault: {latncy: 5}\n",
            "3:17: unknown key 'latncy' in fault; did you mean 'latency'?",
        ),
        ("settings:\n  faults: {reset: true}\n", "2:11: 'faults' must be a list, got a mapping"),
        ("settings:\n  faults:\n    - {error: 503, probabilty: 0.5}\n", "did you mean 'probability'?"),
        ("settings:\n  rate_limits: {requests: 0}\n", "2:27: 'requests' must be a positive integer, got 0"),
        ("settings:\n  rate_limits: {rpm: 5}\n", "2:17: unknown key 'rpm' in rate_limits"),
        ("settings:\n  rate_limits: {per: user}\n", "'per' must be key, model, a list of them, or []"),
        ("rules:\n  - timing: {ttft_ms: 5}\n", "a rule needs exactly one of reply, fail or sequence"),
    ],
)
def test_scenario_fault_problems_are_positioned(text: str, expected: str) -> None:
    found = problems_of(text)
    assert any(expected in problem for problem in found), found


def test_scenario_faults_are_read() -> None:
    scenario = parse_scenario(
        "settings:\n  faults: [reset, {error: 503, every: 3}]\n"
        "rules:\n"
        "  - fault: {disconnect_after: 2}\n    when: {turn: 1}\n"
        "  - when: {turn: 2}\n    sequence:\n      - fault: empty\n      - {reply: {content: ok}, fault: {latency: 5}}\n",
        "f.yaml",
    )
    background = scenario.settings.faults
    assert [rule.fault.label for rule in background] == ["reset", "error 503"]
    assert background[1].pattern == Pattern(every=3)
    assert background[1].id == "f:faults[1]"


# ---------------------------------------------------------------- firing


WHO = Who(model="glm-5", requested_model="glm-5", key="sk-1", test_id="", stream=True)


def fires(pattern: Pattern, calls: int, who: Who = WHO, seed: int = 0) -> list[bool]:
    book = FaultBook(seed=seed)
    rule = FaultRule("f", Fault("reset"), pattern)
    return [book.pick([rule], who) is rule for _ in range(calls)]


def test_first_n_then_through() -> None:
    assert fires(Pattern(first=2), 5) == [True, True, False, False, False]


def test_every_nth() -> None:
    assert fires(Pattern(every=3), 7) == [False, False, True, False, False, True, False]


def test_a_probability_is_seeded() -> None:
    runs = fires(Pattern(probability=0.5), 200)
    assert runs == fires(Pattern(probability=0.5), 200)
    assert runs != fires(Pattern(probability=0.5), 200, seed=1)
    assert 60 < sum(runs) < 140


def test_filters() -> None:
    other = Who(model="qwen-plus", requested_model="alibaba/qwen-plus", key="sk-2", test_id="t", stream=True)
    assert fires(Pattern(model=("glm-*",)), 1, other) == [False]
    assert fires(Pattern(model=("alibaba/*",)), 1, other) == [True]
    assert fires(Pattern(key="sk-1"), 1, other) == [False]
    assert fires(Pattern(test_id="t"), 1, other) == [True]


def test_an_outage_window_counts_seconds_of_the_run() -> None:
    book = FaultBook()
    rule = FaultRule("f", Fault("error", 503.0), Pattern(window=(10.0, 20.0)))
    assert book.pick([rule], WHO) is None
    book.started -= 15
    assert book.pick([rule], WHO) is rule
    book.started -= 10
    assert book.pick([rule], WHO) is None


def test_counters_are_kept_per_test_id_and_reset() -> None:
    book = FaultBook()
    rule = FaultRule("f", Fault("reset"), Pattern(first=1))
    a, b = (Who("m", "m", "k", test_id, True) for test_id in ("a", "b"))
    assert book.pick([rule], a) is rule and book.pick([rule], a) is None
    assert book.pick([rule], b) is rule
    book.reset("a")
    assert book.pick([rule], a) is rule and book.pick([rule], b) is None


def test_stream_faults_only_apply_to_streams_and_truncate_only_to_json() -> None:
    json_call = Who("m", "m", "k", "", stream=False)
    assert FaultRule("f", Fault("stall", 5.0)).applies_to(json_call) is False
    assert FaultRule("f", Fault("truncate")).applies_to(json_call) is True
    assert FaultRule("f", Fault("truncate")).applies_to(WHO) is False


def test_every_candidate_counts_the_call_and_the_first_that_fires_wins() -> None:
    book = FaultBook()
    first = FaultRule("a", Fault("reset"), Pattern(every=2))
    second = FaultRule("b", Fault("empty"), Pattern(every=3))
    picked = [book.pick([first, second], WHO) for _ in range(6)]
    assert [p.id if p else None for p in picked] == [None, "a", "b", "a", None, "a"]


def error_failure(fault: Fault, family: Any) -> Any:
    return KINDS["error"].replacement(fault, {}, family)


def test_an_error_fault_has_the_gateways_headers() -> None:
    failure = error_failure(Fault("error", 429.0, retry_after_ms=1500.0, should_retry=True), openai_limit_headers)
    assert failure.status == 429 and failure.message == ""
    assert failure.headers["retry-after"] == "2" and failure.headers["retry-after-ms"] == "1500"
    assert failure.headers["x-should-retry"] == "true"
    assert failure.headers["x-ratelimit-remaining-requests"] == "0"
    assert failure.headers["x-ratelimit-reset-requests"] == "1.5s"
    anthropic = error_failure(Fault("error", 429.0), anthropic_limit_headers).headers
    assert anthropic["anthropic-ratelimit-requests-remaining"] == "0" and anthropic["retry-after"] == "1"
    assert "retry-after" not in error_failure(Fault("error", 503.0), openai_limit_headers).headers


# ---------------------------------------------------------------- breaking streams

STREAM = [SseEvent("{}", tokens=0)] + [SseEvent(f'{{"t":"{i}"}}', tokens=1) for i in range(4)] + [SseEvent("[DONE]")]


def broken(fault: Fault) -> tuple[list[str], list[float], str]:
    schedule = ((event, index * 0.1) for index, event in enumerate(STREAM))
    parts, ending = fault.spec.broken(fault, schedule, lambda failure: SseEvent('{"error":{}}'), 500)
    items = list(parts)
    return [body.decode().removeprefix("data: ").strip() for body, _ in items], [at for _, at in items], ending


def test_disconnect_after_n_events() -> None:
    data, _, ending = broken(Fault("disconnect_after", 2.0))
    assert data == ["{}", '{"t":"0"}'] and ending == "close"


def test_no_terminator_drops_the_last_event() -> None:
    data, _, ending = broken(Fault("no_terminator"))
    assert data[-1] == '{"t":"3"}' and "[DONE]" not in data and ending == "complete"


def test_a_stall_shifts_what_follows() -> None:
    _, offsets, _ = broken(Fault("stall", 2000.0, after=2))
    assert offsets == pytest.approx([0, 0.1, 2.2, 2.3, 2.4, 2.5])


def test_a_malformed_chunk_is_invalid_json() -> None:
    data, _, _ = broken(Fault("malformed", after=0))
    assert data[0] == "{}"  # framing is left alone
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[1])
    assert data[2:] == ['{"t":"1"}', '{"t":"2"}', '{"t":"3"}', "[DONE]"]


def test_an_error_event_ends_the_stream() -> None:
    data, _, ending = broken(Fault("error_event", after=3))
    assert data == ["{}", '{"t":"0"}', '{"t":"1"}', '{"error":{}}'] and ending == "complete"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FAULT_WORDS = st.sampled_from(["error", "stall", "after", "window", "probability", "first", "model", "reset", "x"])
HEADER_TEXT = st.lists(
    st.tuples(FAULT_WORDS, st.sampled_from(["", "=", "=1", "=-1", "=1e400", "=nan", "=a-b", "=2-1", "=true", "=, "])),
    max_size=4,
).map(lambda parts: "; ".join(name + value for name, value in parts)) | st.text(max_size=20)


@settings(max_examples=300, deadline=None)
@given(HEADER_TEXT)
def test_any_fault_header_is_a_fault_or_a_400(text: str) -> None:
    try:
        FaultBook().from_header({"x-emulator-fault": text})
    except ApiError as error:
        assert error.failure.status == 400 and error.failure.param == "x-emulator-fault"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["error", "stall", "after", "window", "model", "probability", "bytes"]), JSON))
def test_any_json_body_is_a_fault_or_problems(body: dict[str, Any]) -> None:
    rule, problems = parse_fault_json(body, fault_id="f")
    assert (rule is None) == bool(problems)


# ---------------------------------------------------------------- the JSON Schema agrees


VALID_DOCS = [
    "settings:\n  timing: {ttft_ms: 1, tokens_per_second: 5, jitter: none, chunk: [a, b], latency_ms: 0}\n",
    "settings:\n  faults: [reset, {error: 429, retry_after: 1, first: 2, model: [a, b]}, {window: [0, 5], empty: true}]\n",
    "settings:\n  rate_limits: {requests: 5, tokens: 100, window_s: 0.5, concurrency: 1, per: []}\n",
    "rules:\n  - fault: {stall: 5, after: 0, probability: 0.5}\n",
    "rules:\n  - fault: {error_event: 529, after: 2, message: busy}\n    reply: {content: hi}\n",
    "rules:\n  - sequence: [{fault: hang}, {fault: {truncate: true, bytes: 1}, reply: {}}, {fail: {status: 500}}]\n",
    "rules:\n  - timing: {jitter: {lognormal: {mu: 1, sigma: 0.5}}, chunk: {chars: 3}}\n    fail: {status: 503}\n",
]
INVALID_DOCS = [
    "rules:\n  - fault: {reset: true, error: 500}\n",
    "rules:\n  - fault: {error: 600}\n",
    "rules:\n  - fault: explode\n",
    "rules:\n  - fault: {disconnect_after: -1}\n",
    "rules:\n  - fault: reset\n    reply: {}\n    fail: {status: 500}\n",
    "settings:\n  faults: [{probability: 2, reset: true}]\n",
    "settings:\n  timing: {chunk_delay_ms: 1, tokens_per_second: 1}\n",
    "settings:\n  timing: {jitter: {uniform: {low: 1}}}\n",
    "settings:\n  timing: {chunk: {tokens: 1, chars: 1}}\n",
    "settings:\n  rate_limits: {per: [user]}\n",
]


@pytest.mark.parametrize("text", VALID_DOCS)
def test_the_schema_accepts_what_the_loader_accepts(text: str) -> None:
    parse_scenario(text, "ok.yaml")
    assert SCHEMA.is_valid(yaml.safe_load(text)), list(SCHEMA.iter_errors(yaml.safe_load(text)))


@pytest.mark.parametrize("text", INVALID_DOCS)
def test_the_schema_rejects_what_the_loader_rejects(text: str) -> None:
    with pytest.raises(ScenarioError):
        parse_scenario(text, "bad.yaml")
    assert not SCHEMA.is_valid(yaml.safe_load(text))
