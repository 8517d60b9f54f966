"""Deterministic token estimates behind `usage`, `max_tokens` truncation and per-token streaming.

No real tokenizer is involved; the rule is simple, fast and the same on every run. Text is cut into
tokens, each the longest match of the first fitting kind:

* one CJK ideograph, kana or hangul character (Chinese, Japanese and Korean text cost one token per character);
* up to 12 consecutive letters (any alphabet), so nearly every word is one token and only very long
  words or identifiers cost more, one token per started 12 letters;
* up to 3 consecutive digits, as real tokenizers group numbers ("2024" is 2 tokens);
* any other single non-space character: punctuation, symbols, emoji, underscores.

Whitespace is free: it travels with the token that follows it (" world"), and trailing whitespace with the
last token. So "hello world" is 2 tokens, "Hello, world!" 4, "你好世界" 4, "gpt-4o" 4, "2024-01-31" 6.

Prompts add OpenAI-style framing: 2 tokens per message (its role header and end marker), 3 to prime the
reply, 3 per tool call plus its name and arguments, 3 per offered tool plus its name, description and
JSON parameters, 85 per image part (OpenAI's low-detail price) and 256 per other non-text part (files,
audio). Earlier reasoning is not counted, as gateways drop it from the prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from emulator.exchange import Message, Tool

__all__ = ["count_text", "count_messages", "truncate_to_tokens", "split_tokens"]

_CJK = (
    "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003ffff"
)
_ONE_TOKEN = rf"[{_CJK}]|[^\W\d_{_CJK}]{{1,12}}|\d{{1,3}}|\S"
_TOKEN = re.compile(_ONE_TOKEN)
_PIECE = re.compile(rf"\s*(?:{_ONE_TOKEN})")  # a token with the whitespace before it

MESSAGE_OVERHEAD = 2
REPLY_PRIMING = 3
TOOL_CALL_OVERHEAD = 3
TOOL_OVERHEAD = 3
IMAGE_TOKENS = 85
OTHER_PART_TOKENS = 256


COUNTS_KEPT = 4096  # texts whose count is remembered (the cache starts over when full)
COUNTED_UP_TO = 1024  # characters: longer texts are counted every time
SLICE = 64 * 1024  # a text longer than this is counted a slice at a time (see _count_in_slices)


def count_text(text: str) -> int:
    """Estimated number of tokens in `text` (0 for empty or whitespace-only text).

    Short texts are remembered: a conversation sends its earlier messages again on every turn, and a stream
    counts each of its pieces, mostly the same few words.
    """
    if len(text) > COUNTED_UP_TO:
        return len(_TOKEN.findall(text)) if len(text) <= SLICE else _count_in_slices(text)
    count = _counted.get(text)
    if count is None:
        if len(_counted) >= COUNTS_KEPT:
            _counted.clear()
        count = _counted[text] = len(_TOKEN.findall(text))
    return count


_counted: dict[str, int] = {}


def _count_in_slices(text: str) -> int:
    """`count_text` of a long text, a slice of about SLICE characters at a time, each cut at a blank near its end.

    One regex call over megabytes holds the interpreter for hundreds of milliseconds; slices let other threads
    (the event loop) run between them. A word cut by a slice end (only in a stretch of SLICE/16 characters with
    no blank) may count one token more.
    """
    total, start, end = 0, 0, len(text)
    while start < end:
        stop = min(start + SLICE, end)
        if stop < end:
            blank = max(text.rfind(" ", stop - SLICE // 16, stop), text.rfind("\n", stop - SLICE // 16, stop))
            if blank > start:
                stop = blank
        total += len(_TOKEN.findall(text, start, stop))
        start = stop
    return total


def count_messages(messages: Sequence[Message], tools: Sequence[Tool] = ()) -> int:
    """Estimated prompt tokens for a conversation and the tools offered with it."""
    total = REPLY_PRIMING
    for message in messages:
        total += _count_message(message)
    for tool in tools:
        total += _count_tool(tool)
    return total


def _count_message(message: Message) -> int:
    total = MESSAGE_OVERHEAD + count_text(message.text)
    for call in message.tool_calls:
        total += TOOL_CALL_OVERHEAD + count_text(call.name) + count_text(call.arguments)
    if message.tool_result is not None:
        total += count_text(message.tool_result.content)
    for part in message.parts:
        total += _count_part(part)
    return total


def _count_part(part: Mapping[str, Any]) -> int:
    return IMAGE_TOKENS if "image" in str(part.get("type", "")) else OTHER_PART_TOKENS


def _count_tool(tool: Tool) -> int:
    parameters = json.dumps(tool.parameters, ensure_ascii=False) if tool.parameters else ""
    return TOOL_OVERHEAD + count_text(tool.name) + count_text(tool.description) + count_text(parameters)


def truncate_to_tokens(text: str, limit: int) -> str:
    """The first `limit` tokens of `text`: the longest prefix made of whole tokens (see `split_tokens`).

    Whitespace before a token that does not fit is dropped; `text` comes back unchanged when it fits.
    """
    end = 0
    for index, match in enumerate(_PIECE.finditer(text)):
        if index >= limit:
            return text[:end]
        end = match.end()
    return text


def split_tokens(text: str) -> list[str]:
    """`text` cut into one piece per token, whitespace leading each piece; the pieces join back to `text`.

    `len(split_tokens(t)) == count_text(t)`, except that whitespace-only text is a single piece (and "" none).
    """
    pieces = _PIECE.findall(text)
    if not pieces:
        return [text] if text else []
    tail = text[sum(map(len, pieces)) :]
    if tail:
        pieces[-1] += tail
    return pieces
