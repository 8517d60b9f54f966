"""An upstream answer → the scenario rule action that replays it; a request → the `when` that recognises it.

Each protocol's answer (JSON body, or the SSE events of a stream) is read into the scenario's own terms —
content, reasoning, tool calls, refusal, finish reason, usage — or into a `fail` for an error status.
Text that goes into templates has its `{{` escaped, so it replays exactly as recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from emulator.exchange import Exchange
from emulator.protocols.anthropic_messages import neutral_tool_id

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter"})
KEPT_ERROR_HEADERS = ("retry-after", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
Event = tuple[str | None, Any]  # (SSE event name, parsed JSON data or the raw text)


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


def outcome_for(protocol: str, status: int, headers: Mapping[str, str], body: Any, events: Sequence[Event]) -> dict:
    """`{"reply": …}` or `{"fail": …}` for one upstream answer (`events` when it streamed)."""
    if status >= 400:
        return {"fail": _failure(status, headers, body)}
    if events:
        body = {"chat": _chat_from_events, "responses": _responses_from_events, "messages": _messages_from_events}[
            protocol
        ](events)
    reader = {"chat": _chat_reply, "responses": _responses_reply, "messages": _messages_reply}[protocol]
    return {"reply": reader(body)}


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


def _choice(
    content: str | None,
    reasoning: str | None,
    tool_calls: list[dict[str, Any]],
    refusal: str | None,
    finish_reason: str | None,
) -> dict[str, Any]:
    choice: dict[str, Any] = {}
    if content or (content is not None and not tool_calls and not refusal):
        choice["content"] = literal(content)
    if reasoning:
        choice["reasoning"] = literal(reasoning)
    if tool_calls:
        choice["tool_calls"] = [
            {"name": c["name"], "arguments": literal(c["arguments"]), "id": c["id"]} for c in tool_calls
        ]
    if refusal:
        choice["refusal"] = literal(refusal)
    if finish_reason in FINISH_REASONS:
        choice["finish_reason"] = finish_reason
    if not choice.keys() & {"content", "tool_calls", "refusal"}:
        choice["content"] = ""
    return choice


def _reply(choices: list[dict[str, Any]], usage: dict[str, int]) -> dict[str, Any]:
    reply = dict(choices[0]) if len(choices) == 1 else {"choices": choices}
    if usage:
        reply["usage"] = usage
    return reply


def _counts(**values: Any) -> dict[str, int]:
    return {k: v for k, v in values.items() if isinstance(v, int) and not isinstance(v, bool)}


# ---- Chat Completions


def _chat_reply(body: Mapping[str, Any]) -> dict[str, Any]:
    choices = []
    for choice in sorted(body.get("choices") or [], key=lambda c: c.get("index", 0)):
        message = choice.get("message") or {}
        calls = [
            {"id": c.get("id", ""), "name": c["function"]["name"], "arguments": c["function"].get("arguments", "")}
            for c in message.get("tool_calls") or []
        ]
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        choices.append(
            _choice(message.get("content"), reasoning, calls, message.get("refusal"), choice.get("finish_reason"))
        )
    usage = body.get("usage") or {}
    return _reply(
        choices or [_choice("", None, [], None, None)],
        _counts(
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            total_tokens=usage.get("total_tokens"),
            cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
            reasoning_tokens=(usage.get("completion_tokens_details") or {}).get("reasoning_tokens"),
        ),
    )


def _chat_from_events(events: Sequence[Event]) -> dict[str, Any]:
    """The chunks folded into one chat.completion body."""
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for _, data in events:
        if not isinstance(data, dict):
            continue
        usage = data.get("usage") or usage
        for chunk in data.get("choices") or []:
            choice = choices.setdefault(chunk.get("index", 0), {"message": {"content": None}, "calls": {}})
            delta = chunk.get("delta") or {}
            message = choice["message"]
            for key in ("content", "reasoning_content", "reasoning", "refusal"):
                if isinstance(delta.get(key), str):
                    message[key] = (message.get(key) or "") + delta[key]
            for call in delta.get("tool_calls") or []:
                slot = choice["calls"].setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            if chunk.get("finish_reason"):
                choice["finish_reason"] = chunk["finish_reason"]
    body_choices = []
    for index, choice in sorted(choices.items()):
        calls = [choice["calls"][i] for i in sorted(choice["calls"])]
        message = choice["message"]
        if calls:
            message["tool_calls"] = [
                {"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls
            ]
        body_choices.append({"index": index, "message": message, "finish_reason": choice.get("finish_reason")})
    return {"choices": body_choices, "usage": usage}


# ---- Responses


def _responses_reply(body: Mapping[str, Any]) -> dict[str, Any]:
    texts, reasoning, calls, refusals = [], [], [], []
    for item in body.get("output") or []:
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    texts.append(part.get("text", ""))
                elif part.get("type") == "refusal":
                    refusals.append(part.get("refusal", ""))
        elif kind == "reasoning":
            reasoning += [s.get("text", "") for s in item.get("summary") or []]
        elif kind == "function_call":
            calls.append(
                {"id": item.get("call_id", ""), "name": item.get("name", ""), "arguments": item.get("arguments", "")}
            )
    reason = (body.get("incomplete_details") or {}).get("reason")
    finish = {"max_output_tokens": "length", "content_filter": "content_filter"}.get(reason or "")
    finish = finish or ("tool_calls" if calls else "stop")
    content = "".join(texts) if texts or not calls else None
    usage = body.get("usage") or {}
    return _reply(
        [_choice(content, "\n".join(reasoning) or None, calls, "".join(refusals) or None, finish)],
        _counts(
            prompt_tokens=usage.get("input_tokens"),
            completion_tokens=usage.get("output_tokens"),
            total_tokens=usage.get("total_tokens"),
            cached_tokens=(usage.get("input_tokens_details") or {}).get("cached_tokens"),
            reasoning_tokens=(usage.get("output_tokens_details") or {}).get("reasoning_tokens"),
        ),
    )


def _responses_from_events(events: Sequence[Event]) -> dict[str, Any]:
    """The finished Response that the last `response.completed` / `response.incomplete` event carries."""
    final: dict[str, Any] = {}
    for name, data in events:
        if isinstance(data, dict) and (name or data.get("type", "")).startswith("response.") and "response" in data:
            final = data["response"]
    return final


# ---- Anthropic Messages


def _messages_reply(body: Mapping[str, Any]) -> dict[str, Any]:
    texts, thinking, calls = [], [], []
    for block in body.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            thinking.append(block.get("thinking", ""))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            calls.append(
                {"id": neutral_tool_id(block.get("id", "")), "name": block.get("name", ""), "arguments": arguments}
            )
    stop = body.get("stop_reason")
    finish = {"max_tokens": "length", "tool_use": "tool_calls", "refusal": "content_filter"}.get(stop or "", "stop")
    text = "\n\n".join(texts)
    refusal = text if stop == "refusal" and text else None
    usage = body.get("usage") or {}
    read, written = usage.get("cache_read_input_tokens") or 0, usage.get("cache_creation_input_tokens") or 0
    prompt = usage.get("input_tokens")
    output = usage.get("output_tokens")
    return _reply(
        [
            _choice(
                None if refusal else (text if texts or not calls else None),
                "".join(thinking) or None,
                calls,
                refusal,
                finish,
            )
        ],
        _counts(
            prompt_tokens=prompt + read + written if isinstance(prompt, int) else None,
            completion_tokens=output,
            cached_tokens=read if read else None,
        ),
    )


def _messages_from_events(events: Sequence[Event]) -> dict[str, Any]:
    """message_start … message_stop folded into one Message body."""
    message: dict[str, Any] = {"content": [], "usage": {}}
    partial: dict[int, str] = {}
    for _, data in events:
        if not isinstance(data, dict):
            continue
        kind = data.get("type")
        if kind == "message_start":
            started = data.get("message") or {}
            message = {
                **started,
                "content": list(started.get("content") or []),
                "usage": dict(started.get("usage") or {}),
            }
        elif kind == "content_block_start":
            block = dict(data.get("content_block") or {})
            index = data.get("index", len(message["content"]))
            while len(message["content"]) <= index:
                message["content"].append({})
            message["content"][index] = block
        elif kind == "content_block_delta":
            index, delta = data.get("index", 0), data.get("delta") or {}
            block = message["content"][index] if index < len(message["content"]) else {}
            if delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif delta.get("type") == "input_json_delta":
                partial[index] = partial.get(index, "") + delta.get("partial_json", "")
        elif kind == "message_delta":
            message.update({k: v for k, v in (data.get("delta") or {}).items() if v is not None})
            message["usage"].update(data.get("usage") or {})
    for index, text in partial.items():
        try:
            message["content"][index]["input"] = json.loads(text) if text else {}
        except (ValueError, IndexError):
            continue
    return message
