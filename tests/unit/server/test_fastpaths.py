"""The request path's shortcuts say exactly what the general code they stand in for says (issue 6).

Non-streamed bodies and stream chunks are written from templates, JSON is encoded and decoded with the
decoder/encoder made once, the journal entry is filled in without its dataclass __init__, headers are read
into a dict once: each is checked here against the plain version, byte for byte.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import fields
from typing import Any

import pytest
from starlette.responses import Response
from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.exchange import Choice, ToolCall
from emulator.http import dumps, json_response
from emulator.ids import uuid4_hex, uuid4_int, uuid4_str
from emulator.journal import Entry, Journal
from emulator.protocols import openai_chat
from emulator.protocols.openai_chat import ChatOptions, completion_body, completion_json, stream_events
from emulator.server.app import build_app
from emulator.server.delivery import _Pump
from emulator.shaping import Shaped, Usage, shape
from emulator.tokens import count_text, split_tokens

AUTH = {"authorization": "Bearer sk-test-abcdef-1234567890"}
ODD_TEXT = 'quote " backslash \\ newline \n tab \t nul \x00 line-sep \u2028 é 你好 🙂'


def plain_dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


SHAPES = [
    [Choice("1+1=2", finish_reason="stop")],
    [Choice(ODD_TEXT, reasoning="think " + ODD_TEXT, refusal=None, finish_reason="length")],
    [Choice(None, tool_calls=[ToolCall("call_1", "f", '{"a": [1, 2]}')], refusal="no", finish_reason="tool_calls")],
    [Choice("", finish_reason=None), Choice("second", reasoning="", finish_reason="stop")],
]


@pytest.mark.parametrize("choices", SHAPES)
def test_a_completion_body_is_written_as_dumping_it_would(monkeypatch, choices):
    monkeypatch.setattr(openai_chat, "completion_id", lambda: "chatcmpl-fixed")
    for usage in (Usage(9, 5, 14), Usage(1, 2, 3, cached_tokens=4, reasoning_tokens=5), Usage(1, 2.5, True)):  # type: ignore[arg-type]
        shaped = Shaped(choices=choices, usage=usage)
        for model in ("glm-5", 'a "model" é'):
            assert completion_json(shaped, model, 1700000000) == plain_dumps(completion_body(shaped, model, 1700000000))


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_chunks_are_the_chunk_dicts_dumped(monkeypatch, include_usage):
    monkeypatch.setattr(openai_chat, "completion_id", lambda: "chatcmpl-fixed")
    choices = [Choice("Hello " + ODD_TEXT, reasoning="hmm", finish_reason="stop"), SHAPES[2][0]]
    shaped = Shaped(choices=choices, usage=Usage(3, 4, 7))
    events = list(stream_events(shaped, "glm-5", ChatOptions(include_usage=include_usage), created=5))
    head = {"id": "chatcmpl-fixed", "object": "chat.completion.chunk", "created": 5, "model": "glm-5"}
    for event in events[:-1]:
        chunk = json.loads(event.data)
        assert event.data == plain_dumps(chunk)  # compact, unescaped, in the order the dict was built
        assert list(chunk)[:5] == [*head, "choices"]
        assert {k: chunk[k] for k in head} == head
        assert ("usage" in chunk) is include_usage
    contents = [json.loads(e.data)["choices"][0]["delta"].get("content") for e in events if '"content":' in e.data]
    assert "".join(c for c in contents if c) == choices[0].content
    piece = next(e for e in events if '"content":"Hello"' in e.data)
    delta = {"index": 0, "delta": {"content": "Hello"}, "logprobs": None, "finish_reason": None}
    tail = {"usage": None} if include_usage else {}
    assert piece.data == plain_dumps({**head, "choices": [delta], **tail}) and piece.tokens == 1
    assert events[-1].data == "[DONE]"


@pytest.mark.parametrize(
    "payload",
    [{"a": [1, 2.5, None, True, False, {"b": ODD_TEXT}]}, ODD_TEXT, 3, 1e300, [], {}, None, {"x": float("nan")}],
)
def test_dumps_is_json_dumps(payload):
    assert dumps(payload) == plain_dumps(payload)


@pytest.mark.parametrize("status, headers", [(200, None), (201, None), (429, {"retry-after": "1"}), (204, None)])
def test_json_responses_carry_what_starlette_would(status, headers):
    ours = json_response({"ok": ODD_TEXT}, status, headers)
    theirs = Response(plain_dumps({"ok": ODD_TEXT}).encode(), status, dict(headers or {}), "application/json")
    assert (ours.status_code, ours.body, ours.raw_headers) == (theirs.status_code, theirs.body, theirs.raw_headers)


def test_ids_have_the_bits_of_uuid4():
    for _ in range(200):
        for text in (uuid4_str(), uuid4_hex()):
            parsed = uuid.UUID(text)
            assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert uuid.UUID(int=uuid4_int()).version == 4
    text = uuid4_str()
    assert str(uuid.UUID(text)) == text  # hyphens where str(uuid) puts them
    assert len({uuid4_hex() for _ in range(10_000)}) == 10_000


def test_a_journal_entry_is_the_entry_its_dataclass_would_make():
    headers = {"authorization": "Bearer sk-1234567890abcdef7890", "x-emulator-test-id": "t-1", "host": "x"}
    opened = Journal().open("POST", "/v1/chat/completions", headers, "chat", "req_1")
    made = Entry(
        id=opened.id,
        request_id="req_1",
        time=opened.time,
        method="POST",
        path="/v1/chat/completions",
        protocol="chat",
        test_id="t-1",
        headers={"authorization": "Bearer sk-…7890", "x-emulator-test-id": "t-1", "host": "x"},
        started=opened.started,
    )
    assert opened == made and opened.as_dict() == made.as_dict() and repr(opened) == repr(made)
    held = ["_" + f.name if isinstance(getattr(Entry, f.name, None), property) else f.name for f in fields(Entry)]
    assert opened.size and not made.size  # what the journal counts the entry as: not part of what it is
    assert list(vars(opened)) == held  # every field, and only those: Journal.open lists them one by one
    opened.response_headers = {"a": "b"}
    assert opened.as_dict()["response_headers"] == {"a": "b"}


def test_counted_texts_count_as_before():
    for text in ["", "   ", "hello world", "Hello, world!", "你好世界", "gpt-4o", "2024-01-31", "x" * 5000]:
        for _ in range(2):  # the second time from the cache
            assert count_text(text) == len(split_tokens(text)) or not text.strip()


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


@pytest.mark.anyio
async def test_parts_due_together_leave_in_one_write():
    transport = _Transport()
    written = []
    parts = [(b"a", 0.0), (b"bb", 0.0), (b"c", 0.03), (b"d", 0.03)]
    assert await _Pump(transport, parts, lambda: written.append(1)).run()  # type: ignore[arg-type]
    assert transport.writes == [b"1\r\na\r\n2\r\nbb\r\n", b"1\r\nc\r\n1\r\nd\r\n"] and len(written) == 4


def test_a_repeated_header_keeps_every_value_where_it_did():
    app = build_app(Settings())
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as http:
        scenario = "rules:\n  - when: {last_user: dup}\n    reply: {content: '{{ headers.x-dup }}'}\n"
        assert http.post(
            "/_emulator/scenarios", content=scenario, headers={"content-type": "application/yaml"}
        ).is_success
        body = {"model": "glm-5", "messages": [{"role": "user", "content": "dup"}]}
        headers = [*AUTH.items(), ("x-dup", "first"), ("x-dup", "last"), ("content-type", "application/json")]
        response = http.post("/v1/chat/completions", content=json.dumps(body), headers=headers)
        assert response.json()["choices"][0]["message"]["content"] == "last"  # templates: the last value
        entry = http.get("/_emulator/journal").json()["data"][-1]
        assert entry["headers"]["x-dup"] == "last" and entry["headers"]["authorization"].startswith("Bearer sk-")
        assert response.headers["x-request-id"] == entry["request_id"] == response.headers["request-id"]


def test_shaping_keeps_the_choice_it_was_given():
    reply_choice = Choice("hello", finish_reason=None)
    from emulator.exchange import Exchange, Message, Reply

    exchange = Exchange(protocol="chat", model="glm-5", messages=[Message("user", "hi")])
    shaped = shape(Reply([reply_choice]), exchange)
    assert reply_choice.finish_reason is None and shaped.choices[0].finish_reason == "stop"
    assert shaped.choices[0].content == "hello" and shaped.usage.completion_tokens == 1
