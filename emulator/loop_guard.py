"""The agent-loop guard: a client that sends the same conversation state again and again, or whose model keeps
making the same tool call, is flagged in the journal (and named by the resilience report); past an optional
limit, its next request is answered with an error in the protocol's envelope, so a runaway agent in CI stops
instead of spinning until the job's timeout.

Two signs of a loop, counted per client (its test id, else its API key):

- the same conversation state: a request whose model, messages and tools are those of the client's previous
  request, its answer a success (an SDK's retry after a failure is not a loop);
- the same tool call: the conversation ends in assistant turns that each make the same calls (names and
  arguments), whatever the tool results between them said — read from the request itself.

Off unless configured: `settings.loop_guard` in a scenario, or `--loop-guard-repeats` / `--loop-guard-stop-after`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from emulator.exchange import Exchange, Failure
from emulator.journal import Entry
from emulator.names import TEST_ID_HEADER
from emulator.specparse import INVALID, SpecReader

LOOP_GUARD_KEYS = ("repeats", "stop_after", "status", "message")
DEFAULT_REPEATS = 3
DEFAULT_STATUS = 400  # not retried by the SDKs: the agent stops, which is the point
LOOP_CODE = "agent_loop_detected"
CLIENTS_KEPT = 4096  # clients whose last request is remembered; the least recently seen go first


@dataclass(frozen=True)
class LoopGuard:
    repeats: int = DEFAULT_REPEATS  # flagged once the same state or tool call comes back this many times in a row
    stop_after: int | None = None  # the request after this many repeats is answered with the error instead
    status: int = DEFAULT_STATUS
    message: str | None = None


@dataclass(frozen=True)
class Loop:
    """A loop seen in one request: what repeats and how many times in a row."""

    kind: str  # same_state | same_tool_call
    repeats: int
    what: str

    def flag(self, guard: LoopGuard, stopped: bool) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "repeats": self.repeats,
            "what": self.what,
            "first": self.repeats == guard.repeats,  # the request that first crossed the threshold
            "stopped": stopped,
        }

    def failure(self, guard: LoopGuard) -> Failure:
        message = guard.message or (
            f"Agent loop detected: {self.what}. The emulator's loop guard stops it "
            f"(loop_guard.stop_after: {guard.stop_after})."
        )
        return Failure(status=guard.status, message=message, code=LOOP_CODE)


def repeated_calls(exchange: Exchange) -> tuple[int, str]:
    """How many assistant turns in a row, at the end of the conversation, make the same tool calls; and which."""
    last: list[tuple[str, str]] | None = None
    count = 0
    for message in reversed(exchange.messages):
        if message.role == "tool" or (message.role == "user" and not message.text.strip()):
            continue  # the tool results between the calls
        if message.role != "assistant" or not message.tool_calls:
            break
        calls = [(call.name, _canonical(call.arguments)) for call in message.tool_calls]
        if last is not None and calls != last:
            break
        last = calls
        count += 1
    shown = ", ".join(f"{name}({arguments})" for name, arguments in last or ())
    return count, shown


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True, ensure_ascii=False)
    except ValueError:
        return arguments


def _answered(entry: Entry, answering_faults: Collection[str]) -> bool:
    """Whether the model answered (a misbehaving answer too): a request sent again after that is no SDK retry."""
    if entry.status is None or entry.status >= 400:
        return False
    return entry.fault is None or entry.fault.split()[0] in answering_faults


def state_digest(exchange: Exchange) -> str:
    """The conversation state: model, messages and tools (not the stream flag or other options)."""
    body = exchange.body
    state = {k: body.get(k) for k in ("model", "messages", "input", "system", "instructions", "tools")}
    return hashlib.blake2b(json.dumps(state, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


class LoopWatch:
    """The guard's memory: each client's last state, how many times in a row it came, and the entry it was."""

    def __init__(self, answering_faults: Collection[str] = ()) -> None:
        self.answering_faults = answering_faults  # fault kinds after which the model still answered (behaviour)
        self._last: OrderedDict[str, tuple[str, int, Entry | None]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, guard: LoopGuard, exchange: Exchange, entry: Entry | None) -> Failure | None:
        """Flag a loop in the journal entry; the failure to answer with when the guard's limit is passed."""
        client = exchange.headers.get(TEST_ID_HEADER) or exchange.api_key
        digest = state_digest(exchange)
        retry = exchange.headers.get("x-stainless-retry-count", "0") != "0"
        with self._lock:
            previous = self._last.pop(client, None)
            same = 1
            if previous is not None and previous[0] == digest:
                before = previous[2]
                answered = before is None or _answered(before, self.answering_faults)
                same = previous[1] + (0 if retry or not answered else 1)
            self._last[client] = (digest, same, entry)
            while len(self._last) > CLIENTS_KEPT:
                self._last.popitem(last=False)
        loops = []
        if same >= guard.repeats:
            loops.append(Loop("same_state", same, f"the same conversation state was sent {same} times in a row"))
        calls, shown = repeated_calls(exchange)
        if calls >= guard.repeats:
            loops.append(Loop("same_tool_call", calls, f"the same tool call came back {calls} times in a row: {shown}"))
        if not loops:
            return None
        loop = max(loops, key=lambda found: found.repeats)
        stop = guard.stop_after is not None and loop.repeats > guard.stop_after
        if entry is not None:
            entry.loop = loop.flag(guard, stop)
        return loop.failure(guard) if stop else None

    def reset(self, test_id: str | None = None) -> None:
        with self._lock:
            if test_id is None:
                self._last.clear()
            else:
                self._last.pop(test_id, None)


def parse_loop_guard(reader: SpecReader, data: Mapping[str, Any], where: str = "in loop_guard") -> Any:
    """A LoopGuard from a mapping (scenario `settings.loop_guard`); INVALID when it is wrong."""
    ok = reader.keys(data, LOOP_GUARD_KEYS, where)
    values: dict[str, Any] = {}
    if "repeats" in data:
        values["repeats"] = reader.integer(data, "repeats", low=2)
    if "stop_after" in data:
        values["stop_after"] = reader.integer(data, "stop_after", low=2)
    if "status" in data:
        values["status"] = reader.integer(data, "status", 400, 599)
    if "message" in data:
        values["message"] = reader.text(data, "message")
    if not ok or INVALID in values.values():
        return INVALID
    if "repeats" not in values and values.get("stop_after", DEFAULT_REPEATS) < DEFAULT_REPEATS:
        values["repeats"] = values["stop_after"]  # flagged no later than stopped
    guard = LoopGuard(**values)
    if guard.stop_after is not None and guard.stop_after < guard.repeats:
        return reader.error(
            data, "stop_after", f"'stop_after' ({guard.stop_after}) must be at least 'repeats' ({guard.repeats})"
        )
    return guard
