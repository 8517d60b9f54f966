"""JSON decoded a slice at a time, for bodies whose decoding would hold the event loop.

`json.loads` is C and fast, but it never lets go: nine megabytes of `{},{},…` (three million objects) take it
about 200 ms, during which no other request is answered. A body that dense is decoded here instead — by a
state machine that handles `STEPS` tokens, then lets the event loop run, and goes on. Scalars and strings are
still read by the C scanner `json` itself uses, so values (numbers, escapes, NaN, duplicate keys: the last one
wins) come out exactly as `json.loads` makes them; only containers are walked in Python, a few times slower in
all but never in one piece.
"""

from __future__ import annotations

import asyncio
import json
from json.decoder import scanstring  # type: ignore[attr-defined]  # the C scanner json.loads uses; not in the stubs
from typing import Any

STEPS = 2_000  # tokens per slice: about a millisecond
MAX_DEPTH = 1_000  # as deep as json.loads goes before it gives up (the interpreter's recursion limit)
DENSE = 100_000  # a body with more `{` and `[` than this is decoded in slices (json.loads: ~6 ms per 100,000)
LARGE = 1024 * 1024  # bodies smaller than this are decoded at once, whatever they hold
_WHITESPACE = frozenset(" \t\n\r")
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__; not in the stubs


def dense(body: bytes | bytearray) -> bool:
    """Whether decoding `body` at once would hold the loop long: many containers (braces in strings count too)."""
    return body.count(b"{") + body.count(b"[") > DENSE


async def loads(text: str) -> Any:
    """`json.loads(text)`, a slice at a time; the same value, or JSONDecodeError / RecursionError as it raises."""
    decoder = _Decoder(text)
    while not decoder.run(STEPS):
        await asyncio.sleep(0)
    return decoder.result


_freeing: set[asyncio.Task[None]] = set()


def free_in_slices(value: Any) -> None:
    """Let go of a large decoded value a slice at a time, in a task of its own.

    Freeing three million objects at once (the last reference dropped) stops the interpreter for about 50 ms;
    the caller drops its references after this call, and the task takes the value apart, STEPS * 50 items at a
    time, with the event loop running in between.
    """
    task = asyncio.get_running_loop().create_task(_take_apart(value))
    _freeing.add(task)
    task.add_done_callback(_freeing.discard)


async def _take_apart(value: Any) -> None:
    pending = [value]
    del value
    slice_size = STEPS * 50
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            while node:
                cut = node[-slice_size:]
                del node[-slice_size:]
                pending.extend(item for item in cut if isinstance(item, list | dict) and len(item) > slice_size)
                del cut
                await asyncio.sleep(0)
        elif isinstance(node, dict):
            for key in list(node):
                item = node.pop(key)
                if isinstance(item, list | dict) and len(item) > slice_size:
                    pending.append(item)
            await asyncio.sleep(0)


VALUE, OBJECT_FIRST, OBJECT_KEY, OBJECT_COLON, OBJECT_NEXT, ARRAY_FIRST, ARRAY_NEXT, END = range(8)


class _Decoder:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.state = VALUE
        self.stack: list[tuple[Any, str | None]] = []  # open containers, each with the key its value goes under
        self.key: str | None = None
        self.result: Any = None

    def _fail(self, message: str, at: int) -> json.JSONDecodeError:
        return json.JSONDecodeError(message, self.text, at)

    def run(self, steps: int) -> bool:
        """Up to `steps` tokens; True once the whole text is decoded."""
        text, at, state, stack = self.text, self.at, self.state, self.stack
        end = len(text)
        for _ in range(steps):
            while at < end and text[at] in _WHITESPACE:
                at += 1
            char = text[at] if at < end else ""
            if state == VALUE:
                if char == "{" or char == "[":  # not `char in "{["`: that holds for "" too
                    if len(stack) >= MAX_DEPTH:
                        raise RecursionError("maximum JSON nesting depth exceeded")
                    stack.append(({} if char == "{" else [], self.key))
                    at, state = at + 1, OBJECT_FIRST if char == "{" else ARRAY_FIRST
                    continue
                try:
                    value, at = _scan(text, at)
                except StopIteration as stop:
                    raise self._fail("Expecting value", stop.value) from None
                state = self._attach(value)
            elif state in (OBJECT_FIRST, OBJECT_KEY):
                if char == "}" and state == OBJECT_FIRST:
                    value, self.key = stack.pop()
                    at, state = at + 1, self._attach(value)
                elif char == '"':
                    self.key, at = scanstring(text, at + 1)
                    state = OBJECT_COLON
                else:
                    raise self._fail("Expecting property name enclosed in double quotes", at)
            elif state == OBJECT_COLON:
                if char != ":":
                    raise self._fail("Expecting ':' delimiter", at)
                at, state = at + 1, VALUE
            elif state == OBJECT_NEXT:
                if char == ",":
                    at, state = at + 1, OBJECT_KEY
                elif char == "}":
                    value, self.key = stack.pop()
                    at, state = at + 1, self._attach(value)
                else:
                    raise self._fail("Expecting ',' delimiter", at)
            elif state == ARRAY_FIRST:
                if char == "]":
                    value, self.key = stack.pop()
                    at, state = at + 1, self._attach(value)
                else:
                    state = VALUE
            elif state == ARRAY_NEXT:
                if char == ",":
                    at, state = at + 1, VALUE
                elif char == "]":
                    value, self.key = stack.pop()
                    at, state = at + 1, self._attach(value)
                else:
                    raise self._fail("Expecting ',' delimiter", at)
            else:  # END
                if at != end:
                    raise self._fail("Extra data", at)
                self.at, self.state = at, state
                return True
        self.at, self.state = at, state
        return False

    def _attach(self, value: Any) -> int:
        """Put a finished value where it belongs; the state that follows."""
        if not self.stack:
            self.result = value
            return END
        container = self.stack[-1][0]
        if isinstance(container, list):
            container.append(value)
            return ARRAY_NEXT
        container[self.key] = value
        return OBJECT_NEXT
