"""Mid-conversation `role: "system"` messages on the Messages route, and `last_user` as what the user typed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from emulator.exchange import Exchange, Message

# Claude Code's own test for "the API refuses mid-conversation system messages, drop them and retry"
# (its bundle's `/(?:messages\.(\d{1,6}): )?(?:role .{0,2}system.{0,2} must …|use the top-level …)/i`)
CLAUDE_CODE_FALLBACK = re.compile(
    r"(?:messages\.(\d{1,6}): )?(?:role .{0,2}system.{0,2} must (?:precede an|follow a)|use the top-level "
    r".{0,2}system.{0,2} parameter for the initial system prompt)",
    re.IGNORECASE,
)
TOOL = {"name": "lookup", "description": "Look a word up", "input_schema": {"type": "object", "properties": {}}}


def post(test: Any, **body: Any) -> tuple[int, dict[str, Any]]:
    with test.http(headers={"anthropic-version": "2023-06-01"}) as http:
        response = http.post("/v1/messages", json={"model": "glm-5", "max_tokens": 200, **body})
    return response.status_code, response.json()


def test_a_system_message_mid_conversation_is_read_as_system_text(tokenhub_emulator):
    tokenhub_emulator.load(
        {"rules": [{"when": {"system": {"contains": "Answer in French."}}, "reply": {"content": "Bonjour."}}]}
    )
    messages = [
        {"role": "user", "content": "hello"},
        {"role": "system", "content": [{"type": "text", "text": "Answer in French."}], "clear_at": "next_user_message"},
    ]
    status, body = post(tokenhub_emulator, system="You are terse.", messages=messages)
    assert status == 200 and body["content"][0]["text"] == "Bonjour."
    reply = tokenhub_emulator.anthropic().beta.messages.create(
        model="glm-5",
        max_tokens=50,
        messages=[*messages, {"role": "system", "content": [], "output_config": {"effort": "low"}}],
    )
    assert reply.content[0].text == "Bonjour."


@pytest.mark.parametrize(
    ("messages", "path", "words"),
    [
        ([{"role": "system", "content": "Be nice."}, {"role": "user", "content": "hi"}], "messages.0", "top-level"),
        ([{"role": "user", "content": "hi"}, {"role": "system", "content": []}], "messages.1", "`output_config`"),
        (
            [{"role": "user", "content": "hi"}, {"role": "system", "content": [{"type": "image", "source": {}}]}],
            "messages.1.content.0",
            "'text', 'tool_addition', 'tool_removal'",
        ),
    ],
)
def test_misplaced_or_empty_system_messages_are_refused_naming_the_message(tokenhub_emulator, messages, path, words):
    status, body = post(tokenhub_emulator, messages=messages)
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(f"{path}: ") and words in body["error"]["message"]


def test_the_first_position_refusal_is_worded_so_that_claude_codes_fallback_fires(tokenhub_emulator):
    _, body = post(tokenhub_emulator, messages=[{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}])
    match = CLAUDE_CODE_FALLBACK.search(body["error"]["message"])
    assert match is not None and match[1] == "0"


def test_tool_changes_in_system_messages_change_the_offered_tools(tokenhub_emulator):
    added = {**TOOL, "name": "define"}
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "system",
            "content": [
                {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "lookup"}},
                {"type": "tool_addition", "tool": {"type": "tool_definition", "definition": added}},
            ],
        },
    ]
    status, body = post(tokenhub_emulator, tools=[TOOL], messages=messages, tool_choice={"type": "any"})
    assert status == 200 and [block["name"] for block in body["content"]] == ["define"]
    status, body = post(
        tokenhub_emulator, tools=[TOOL], messages=messages, tool_choice={"type": "tool", "name": "lookup"}
    )
    assert status == 400 and "Tool 'lookup' not found" in body["error"]["message"]


def exchange(*texts: str) -> Exchange:
    return Exchange(protocol="messages", model="glm-5", messages=[Message("user", text) for text in texts])


@pytest.mark.parametrize(
    ("texts", "typed"),
    [
        (["<system-reminder>\nToday is Monday.\n</system-reminder>\nhello"], "hello"),
        (["hello\n<system-reminder>todo list is empty</system-reminder>"], "hello"),
        (["hello", "<system-reminder>only a reminder</system-reminder>"], "hello"),  # passed over
        (["  spaced  "], "  spaced  "),  # no reminder: the text as sent
    ],
)
def test_last_user_is_what_the_user_typed(texts, typed):
    assert exchange(*texts).last_user_text == typed


@pytest.mark.tokenhub_allow_unmatched  # the second request must miss the rule: that is what it checks
def test_a_system_message_cleared_at_the_next_user_message_is_gone_once_one_follows(tokenhub_emulator):
    tokenhub_emulator.load({"rules": [{"when": {"system": {"contains": "Only now."}}, "reply": {"content": "seen"}}]})
    brief = {"role": "system", "content": "Only now.", "clear_at": "next_user_message"}
    first = [{"role": "user", "content": "hi"}, brief]
    assert post(tokenhub_emulator, messages=first)[1]["content"][0]["text"] == "seen"
    later = [*first, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "again"}]
    assert post(tokenhub_emulator, messages=later)[1]["content"][0]["text"] != "seen"
