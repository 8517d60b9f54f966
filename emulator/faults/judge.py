"""What a client did with a misbehaving model's answer, judged from the next request it sent.

For each journaled request a behaviour fault broke (emulator/faults/behaviour.py recorded what it sent), the
next request from the same client (same test id and key) says what happened:

- `retried`: the same request again — the client threw the answer away and asked anew;
- `re-asked`: the bad answer is in the conversation, followed by the client's complaint (a tool result or a
  user message that names an error: pydantic-ai's "Fix the errors and try again", a validation message …);
- `repaired`: the bad tool call is in the conversation with other arguments — the client fixed them itself;
- `gave up`: nothing more came, or something that does not carry the answer (the client dropped it);
- `passed on`: the bad answer is in the conversation and what follows does not complain — a tool result
  built on the bad arguments, or the conversation simply going on. That is the one a report flags.

The bad answer is found in any protocol's body by what it carries: a tool call by its id (`call_…`,
`toolu_…`: the same id under each protocol's prefix) and arguments (`arguments` text or Anthropic's `input`
object), a tool result by the call id it answers, a text by its words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from emulator.journal import Entry

HANDLED = ("retried", "re-asked", "repaired", "gave up")
PASSED_ON = "passed on"
COMPLAINT = re.compile(
    r"\b(error|errors|invalid|validation|validate|fix|try again|retry|not valid|unknown tool|no tool|"
    r"not found|could not parse|failed to parse|malformed|refus\w*|missing|required|schema)\b",
    re.IGNORECASE,
)
RESULT_KEYS = ("tool_call_id", "call_id", "tool_use_id")


def _suffix(call_id: str) -> str:
    return call_id.split("_", 1)[-1]


def _walk(value: Any) -> Iterator[Any]:
    """Every dict and string in a JSON value, in document order."""
    if isinstance(value, Mapping):
        yield value
        for member in value.values():
            yield from _walk(member)
    elif isinstance(value, list):
        for member in value:
            yield from _walk(member)
    elif isinstance(value, str):
        yield value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _same_arguments(sent: str, seen: Any) -> bool:
    if isinstance(seen, str) and seen == sent:
        return True
    try:
        parsed_sent = json.loads(sent)
    except ValueError:
        return False  # sent broken: only the same text is the same
    try:
        parsed_seen = json.loads(seen) if isinstance(seen, str) else seen
    except ValueError:
        return False
    return bool(parsed_seen == parsed_sent)


def _call_in(body: Any, call: Mapping[str, Any]) -> tuple[Any, str | None] | None:
    """The arguments the body's copy of `call` carries, and the text of the tool result that answers it."""
    wanted = _suffix(call["id"])
    found: tuple[Any, str | None] | None = None
    result: str | None = None
    for item in _walk(body):
        if not isinstance(item, Mapping):
            continue
        function = item.get("function")
        named = isinstance(function, Mapping) or "name" in item
        ids = [item.get(k) for k in ("id", "call_id")]
        if named and any(isinstance(i, str) and _suffix(i) == wanted for i in ids):
            if isinstance(function, Mapping):
                found = (function.get("arguments"), None)
            else:
                found = (item.get("arguments", item.get("input")), None)
            continue
        answers = [item.get(k) for k in RESULT_KEYS]
        if not named and any(isinstance(i, str) and _suffix(i) == wanted for i in answers):
            result = _text(item.get("content", item.get("output", "")))
    return None if found is None else (found[0], result)


def _strings_after(body: Any, text: str) -> list[str] | None:
    """The strings that follow the first one holding `text`, or None when none holds it."""
    strings = [s for s in _walk(body) if isinstance(s, str)]
    for index, value in enumerate(strings):
        if text in value:
            return strings[index + 1 :]
    return None


def judge(faulted: Entry, detail: Mapping[str, Any], later: Entry | None) -> tuple[str, str]:
    """(verdict, why) for one misbehaving answer and the next request of the same client (None: none came)."""
    if later is None:
        return "gave up", "no request followed"
    if later.body == faulted.body:
        return "retried", f"entry {later.id} sent the same request again"
    for call in detail.get("calls") or ():
        seen = _call_in(later.body, call)
        if seen is None:
            continue
        arguments, result = seen
        if not _same_arguments(call["arguments"], arguments):
            return "repaired", f"entry {later.id} carries {call['name']} with other arguments"
        if result is not None and COMPLAINT.search(result):
            return "re-asked", f"entry {later.id} answers {call['name']} with an error: {result[:120]!r}"
        if result is not None:
            return PASSED_ON, f"entry {later.id} answers {call['name']} with a tool result built on the bad call"
        return PASSED_ON, f"entry {later.id} carries the bad call of {call['name']} on"
    text = detail.get("text")
    if text:
        after = _strings_after(later.body, text)
        if after is not None:
            complaint = next((s for s in after if COMPLAINT.search(s)), None)
            if complaint is not None:
                return "re-asked", f"entry {later.id} answers it with: {complaint[:120]!r}"
            return PASSED_ON, f"entry {later.id} carries the answer on without a complaint"
    return "gave up", f"entry {later.id} does not carry the answer on"


def behaviour_report(entries: list[Entry], misbehaved: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per misbehaving answer in `entries`: what was sent, what the client did next, and why."""
    rows = []
    for index, entry in enumerate(entries):
        detail = misbehaved.get(entry.id)
        if detail is None or not detail.get("applied", True):
            continue
        client = (entry.test_id, _key(entry))
        later = next((e for e in entries[index + 1 :] if (e.test_id, _key(e)) == client), None)
        verdict, why = judge(entry, detail, later)
        label = detail["kind"] + (f" {detail['way']}" if detail.get("way") else "")
        rows.append({"entry": entry.id, "test_id": entry.test_id, "fault": label, "client": verdict, "why": why})
    return rows


def _key(entry: Entry) -> str:
    return entry.headers.get("authorization", entry.headers.get("x-api-key", ""))
