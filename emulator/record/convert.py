"""An upstream answer → the scenario rule action that replays it; a request → the `when` that recognises it.

Each protocol's adapter reads its answer (JSON body, or the SSE events of a stream) back into the neutral
terms (emulator/protocols/base.py `reply_from`, `body_from`); here they become the scenario's own — content,
reasoning, tool calls, refusal, finish reason, usage — or a `fail` for an error status. Text that goes into
templates has its `{{` escaped, so it replays exactly as recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from emulator.exchange import Choice, Exchange, Reply
from emulator.protocols.base import Adapter, RecordedEvent

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter"})
KEPT_ERROR_HEADERS = ("retry-after", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
Event = RecordedEvent  # (SSE event name, parsed JSON data or the raw text)


def literal(text: str) -> str:
    """Template text that renders as `text`."""
    return text.replace("{{", '{{ "{{" }}')


# ---------------------------------------------------------------- requests


def when_for(exchange: Exchange) -> dict[str, Any]:
    """Conditions that hold for this request and, in practice, for no other conversation."""
    when: dict[str, Any] = {
        "endpoint": exchange.protocol,
        "model": exchange.requested_model or exchange.model,
        "last_user": {"equals": exchange.last_user_text},
    }
    if exchange.system:
        when["system"] = {"equals": exchange.system}
    when["messages"] = {"count": len(exchange.messages)}
    tools = sorted(tool.name for tool in exchange.tools)
    when["tools"] = tools if tools else {"none": True}
    results = exchange.tool_results
    if results:
        last = results[-1]
        when["tool_result"] = {"call_id": last.call_id, "content": {"equals": last.content}}
    else:
        when["tool_result"] = "absent"
    # streamed and plain answers are recorded apart: each keeps its own timing
    if exchange.stream:
        when["body"] = {"stream": True}
    else:
        when["not"] = {"body": {"stream": True}}
    return when


# ---------------------------------------------------------------- answers


def outcome_for(
    adapter: Adapter, status: int, headers: Mapping[str, str], body: Any, events: Sequence[Event]
) -> dict[str, Any]:
    """`{"reply": …}` or `{"fail": …}` for one upstream answer of `adapter`'s protocol (`events` when it
    streamed)."""
    if status >= 400:
        return {"fail": _failure(status, headers, body)}
    if events:
        body = adapter.body_from(events)
    return {"reply": _reply_of(adapter.reply_from(body))}


def _failure(status: int, headers: Mapping[str, str], body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    fail: dict[str, Any] = {"status": status}
    if isinstance(error.get("message"), str):
        fail["message"] = literal(error["message"])
    for key in ("type", "code", "param"):
        if isinstance(error.get(key), str) and error[key]:
            fail[key] = error[key]
    kept = {name: headers[name] for name in KEPT_ERROR_HEADERS if name in headers}
    if kept:
        fail["headers"] = kept
    return fail


def _choice(choice: Choice) -> dict[str, Any]:
    content, tool_calls, refusal = choice.content, choice.tool_calls, choice.refusal
    out: dict[str, Any] = {}
    if content or (content is not None and not tool_calls and not refusal):
        out["content"] = literal(content)
    if choice.reasoning:
        out["reasoning"] = literal(choice.reasoning)
    if tool_calls:
        out["tool_calls"] = [{"name": c.name, "arguments": literal(c.arguments), "id": c.id} for c in tool_calls]
    if refusal:
        out["refusal"] = literal(refusal)
    if choice.finish_reason in FINISH_REASONS:
        out["finish_reason"] = choice.finish_reason
    if not out.keys() & {"content", "tool_calls", "refusal"}:
        out["content"] = ""
    return out


def _reply_of(reply: Reply) -> dict[str, Any]:
    choices = [_choice(choice) for choice in reply.choices]
    out: dict[str, Any] = dict(choices[0]) if len(choices) == 1 else {"choices": choices}
    usage = {name: count for name, count in asdict(reply.usage).items() if count is not None}
    if usage:
        out["usage"] = usage
    return out
