"""Reading upstream answers into scenario actions, and SSE captures into events and timing (no network)."""

from __future__ import annotations

import gzip
import json

from emulator.protocols.anthropic_messages import MessagesAdapter
from emulator.protocols.openai_chat import ChatAdapter
from emulator.record.capture import Capture
from emulator.record.cassette import Cassette, write_atomically
from emulator.record.convert import literal, outcome_for
from emulator.scenarios import parse_scenario
from emulator.scenarios.templates import compile_template


def test_literal_text_renders_as_recorded():
    text = 'a {{ b }} c {{"{{"}} }} {{'
    assert compile_template(literal(text)).render({}) == text


def test_chat_with_two_choices_and_pinned_usage():
    body = {
        "choices": [
            {"index": 1, "message": {"content": "Tails"}, "finish_reason": "stop"},
            {"index": 0, "message": {"content": "Heads"}, "finish_reason": "weird"},
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "prompt_tokens_details": None},
    }
    reply = outcome_for(ChatAdapter(), 200, {}, body, [])["reply"]
    assert reply == {
        "choices": [{"content": "Heads"}, {"content": "Tails", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def test_chat_stream_deltas_are_folded():
    events = [
        (None, {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
        (None, {"choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}]}),
        (
            None,
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}}]
                        },
                    }
                ]
            },
        ),
        (None, {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]}),
        (None, {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        (None, {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}}),
    ]
    reply = outcome_for(ChatAdapter(), 200, {}, None, events)["reply"]
    assert reply == {
        "reasoning": "hm",
        "tool_calls": [{"name": "f", "arguments": '{"a": 1}', "id": "call_1"}],
        "finish_reason": "tool_calls",
        "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10},
    }


def test_an_error_status_becomes_a_fail_with_its_retry_header():
    body = {"error": {"message": "Busy {{ now }}", "type": "rate_limit_exceeded", "code": None, "param": None}}
    fail = outcome_for(ChatAdapter(), 429, {"retry-after": "3", "authorization": "x"}, body, [])["fail"]
    assert fail == {
        "status": 429,
        "message": 'Busy {{ "{{" }} now }}',
        "type": "rate_limit_exceeded",
        "headers": {"retry-after": "3"},
    }
    assert outcome_for(MessagesAdapter(), 500, {}, "not json", [])["fail"] == {"status": 500}


def test_capture_splits_events_across_chunks_and_times_them():
    capture = Capture(200, {"content-type": "text/event-stream"})
    role = {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
    delta = {"choices": [{"index": 0, "delta": {"content": "x"}}]}
    frames = [
        f"data: {json.dumps(role)}\r\n\r\n",
        f"data: {json.dumps(delta)}",
        "\r\n\r\n",
        f"data: {json.dumps(delta)}\n\n",
    ]
    for at, frame in zip((5.0, 100.0, 101.0, 130.0), frames, strict=True):
        capture.add(at, frame.encode())
    capture.add(131.0, b"data: [DONE]\n\n")
    assert [at for at, _ in capture.events()] == [5.0, 101.0, 130.0]
    assert capture.timing() == {"ttft_ms": 101.0, "chunk_delay_ms": 29.0}


def test_capture_reads_gzip_json():
    capture = Capture(200, {"content-type": "application/json", "content-encoding": "gzip"})
    capture.add(12.0, gzip.compress(b'{"ok": true}'))
    assert capture.json() == {"ok": True} and capture.timing() == {"latency_ms": 12.0}


def test_cassette_turns_a_repeat_into_a_sequence_and_loads(tmp_path):
    cassette = Cassette.open(tmp_path / "c.yaml", "http://up")
    when = {"endpoint": "chat", "model": "my-model", "last_user": {"equals": "hi"}, "tool_result": "absent"}
    cassette.add(when, {"reply": {"content": "one"}}, {"latency_ms": 5.0})
    cassette.add(when, {"reply": {"content": "two"}}, {})
    scenario = cassette.save()
    [rule] = scenario.rules
    assert rule.name == "chat #1: hi"
    assert cassette.data["models"] == [{"id": "my-model"}]  # unknown to the catalog: declared
    assert cassette.rules[0]["sequence"] == [
        {"reply": {"content": "one"}, "timing": {"latency_ms": 5.0}},
        {"reply": {"content": "two"}},
    ]
    reopened = Cassette.open(tmp_path / "c.yaml", "http://up")
    reopened.add(when, {"reply": {"content": "three"}}, {})
    assert len(reopened.rules[0]["sequence"]) == 3
    parse_scenario(reopened.text(), "c.yaml")


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "out.yaml"
    write_atomically(target, "a: 1\n")
    write_atomically(target, "a: 2\n")
    assert target.read_text() == "a: 2\n" and [p.name for p in tmp_path.iterdir()] == ["out.yaml"]
