"""Prompt caching for the Messages route: `cache_control` breakpoints, and the prefixes earlier requests wrote.

The prompt is read as blocks in the API's cache order — tools, system, messages — each with an identity
(`cache_control` left out, so moving a breakpoint does not change the prefix it marks) and its share of the
token estimate. A request reads the longest prefix an earlier request wrote (looking up to 20 blocks back from
each breakpoint, as the API does) and writes the prefixes of its breakpoints beyond it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from emulator.errors import ApiError
from emulator.exchange import Tool
from emulator.protocols import anthropic_messages_models as m
from emulator.tokens import (
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    OTHER_PART_TOKENS,
    TOOL_CALL_OVERHEAD,
    TOOL_OVERHEAD,
    count_messages,
    count_text,
)

MAX_CACHE_BREAKPOINTS = 4
CACHE_LOOKBACK_BLOCKS = 20  # how far before a breakpoint the API looks for an earlier cache hit
CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class Breakpoint:
    end: int  # how many prompt blocks it caches
    ttl: str  # "5m" | "1h"


@dataclass(frozen=True)
class CachePlan:
    """The prompt as blocks in cache order (tools, system, messages): a digest and a token count per prefix."""

    owner: tuple[str, str, str]  # test id, api key, model: caches are never shared across them
    digests: tuple[str, ...]  # digests[k] identifies the first k blocks
    tokens: tuple[int, ...]  # tokens[k]: their estimated tokens
    breakpoints: tuple[Breakpoint, ...]


@dataclass(frozen=True)
class CacheUsage:
    read: int = 0
    written_5m: int = 0
    written_1h: int = 0

    @property
    def written(self) -> int:
        return self.written_5m + self.written_1h


@dataclass(frozen=True)
class PromptBlock:
    """One cacheable block: a tool, a system block or a message content block."""

    path: str
    data: Any  # what identifies it, cache_control removed
    tokens: int
    cache_control: m.CacheControl | None


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def _identity(block: BaseModel) -> Any:
    """What a block is for the cache: moving a breakpoint must not change the prefix it marks."""
    return _without_cache_control(block.model_dump(mode="json", exclude_none=True))


def _block_tokens(block: Any) -> int:
    """The block's share of `tokens.count_messages`, so that cached + uncached adds up to the prompt."""
    if isinstance(block, m.TextBlock):
        return count_text(block.text)
    if isinstance(block, m.ToolUseBlock):
        return TOOL_CALL_OVERHEAD + count_text(block.name) + count_text(json.dumps(block.input, ensure_ascii=False))
    if isinstance(block, m.ToolResultBlock):
        return MESSAGE_OVERHEAD + count_text(m.result_text(block.content))
    if isinstance(block, m.ImageBlock):
        return IMAGE_TOKENS
    if isinstance(block, m.ThinkingBlock | m.RedactedThinkingBlock | m.ServerBlock):
        return 0
    return OTHER_PART_TOKENS


def _mark(block: Any) -> m.CacheControl | None:
    """The block's breakpoint; one set on a part inside a tool result (or search result) counts for the block."""
    if not isinstance(block, m.Cacheable):
        return None
    parts = getattr(block, "content", None)
    inner = (
        [p.cache_control for p in parts if isinstance(p, m.Cacheable) and p.cache_control]
        if isinstance(parts, list)
        else []
    )
    return block.cache_control or (inner[-1] if inner else None)


def prompt_blocks(request: m.CountTokensRequest, tools: Sequence[Tool]) -> list[PromptBlock]:
    """Tools, then system blocks, then every message's content blocks; the first of a message bears its overhead."""
    blocks = []
    tool_tokens = {t.name: count_messages([], [t]) - count_messages([]) for t in tools}
    for index, tool in enumerate(request.tools or ()):
        tokens = tool_tokens.get(tool.name or "", TOOL_OVERHEAD + count_text(tool.name or tool.type or ""))
        blocks.append(PromptBlock(f"tools.{index}", _identity(tool), tokens, tool.cache_control))
    if isinstance(request.system, str):
        blocks.append(PromptBlock("system", request.system, MESSAGE_OVERHEAD + count_text(request.system), None))
    for index, block in enumerate(request.system if isinstance(request.system, list) else ()):
        overhead = MESSAGE_OVERHEAD if index == 0 else 0
        tokens = overhead + _block_tokens(block)
        blocks.append(PromptBlock(f"system.{index}", _identity(block), tokens, block.cache_control))
    for index, message in enumerate(request.messages):
        for position, block in enumerate(m.as_blocks(message.content)):
            overhead = MESSAGE_OVERHEAD if position == 0 else 0
            path = f"messages.{index}.content.{position}"
            tokens = overhead + _block_tokens(block)
            blocks.append(PromptBlock(path, [message.role, _identity(block)], tokens, _mark(block)))
    return blocks


def breakpoints(request: m.CountTokensRequest, blocks: Sequence[PromptBlock]) -> tuple[Breakpoint, ...]:
    """The request's breakpoints in prompt order; more than 4 is the API's 400, naming the fifth."""
    marked = [(b.path + ".cache_control", i + 1, b.cache_control) for i, b in enumerate(blocks) if b.cache_control]
    if request.cache_control is not None and blocks:  # automatic caching: the last block, one of the 4 slots
        marked.append(("cache_control", len(blocks), request.cache_control))
    if len(marked) > MAX_CACHE_BREAKPOINTS:
        path = marked[MAX_CACHE_BREAKPOINTS][0]
        raise ApiError.invalid(
            f"{path}: A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(marked)}.",
            param=path,
        )
    return tuple(Breakpoint(end, mark.ttl or "5m") for _, end, mark in marked)


def cache_plan(request: m.CountTokensRequest, tools: Sequence[Tool], owner: tuple[str, str, str]) -> CachePlan:
    """What `PromptCache.settle` needs; `owner` (test id, api key, model) keeps caches apart."""
    blocks = prompt_blocks(request, tools)
    marks = breakpoints(request, blocks)
    running = hashlib.sha256()
    digests, tokens, total = [running.hexdigest()], [0], 0
    for block in blocks:
        running.update(json.dumps(block.data, sort_keys=True, ensure_ascii=False).encode())
        running.update(b"\x00")
        total += block.tokens
        digests.append(running.hexdigest())
        tokens.append(total)
    return CachePlan(owner, tuple(digests), tuple(tokens), marks)


class PromptCache:
    """Prompt prefixes earlier requests wrote, in least-recently-used order, bounded."""

    def __init__(self, limit: int = CACHE_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def settle(self, plan: CachePlan, prompt_tokens: int) -> CacheUsage:
        """Read the longest cached prefix, write the breakpoints beyond it: what `usage` reports."""

        def tokens(end: int) -> int:  # the estimate per block may overshoot the prompt's; never report more
            return min(plan.tokens[end], prompt_tokens)

        with self._lock:
            read_end = start = self._longest_hit(plan)
            written = {"5m": 0, "1h": 0}
            for point in plan.breakpoints:
                if point.end > start:
                    written[point.ttl] += tokens(point.end) - tokens(start)
                    self._store((*plan.owner, plan.digests[point.end]))
                    start = point.end
            return CacheUsage(read=tokens(read_end), written_5m=written["5m"], written_1h=written["1h"])

    def _longest_hit(self, plan: CachePlan) -> int:
        read_end = 0
        for point in plan.breakpoints:
            for end in range(point.end, max(read_end, point.end - CACHE_LOOKBACK_BLOCKS), -1):
                key = (*plan.owner, plan.digests[end])
                if key in self._entries:
                    self._entries.move_to_end(key)
                    read_end = end
                    break
        return read_end

    def _store(self, key: tuple[str, ...]) -> None:
        self._entries[key] = None
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def reset(self, test_id: str | None = None) -> None:
        with self._lock:
            if test_id is None:
                self._entries.clear()
                return
            for key in [k for k in self._entries if k[0] == test_id]:
                del self._entries[key]
