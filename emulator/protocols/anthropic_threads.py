"""Server-held conversations of the Messages API (threads): `thread: {type: create}` and `{type: continue}`.

A request with `thread: {"type": "create"}` asks the server to keep the conversation under the reply's `id`;
a later one with `{"type": "continue", "previous_message_id": id}` sends only the new turn's messages, and the
server puts the kept ones (and the kept `system` and `tools`) in front of them. The Anthropic SDKs' tool runners
work this way by default.

Each kept reply is one turn of a chain (emulator/protocols/chain_store.py): the messages its request added and its answer,
kept once, pointing at the reply it continues; the whole conversation that led to it is read along the chain, so
scenario rules see every turn, a thread still continues after older replies were evicted, and a thread of n turns
costs n turns' messages, not n conversations. It is kept when the reply is decided, before the first byte is
sent: a client that drops the stream can still continue from it. Each reply is continued at most once
(`thread_already_continued`), as the API allows. The store is bounded in replies and in bytes (least recently
used out first, `--store-bytes`) and scoped by test id: a test never continues another test's thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.errors import ApiError
from emulator.protocols import anthropic_messages_models as m
from emulator.protocols.chain_store import DEFAULT_BYTES, DEFAULT_LINKS, ChainedStore
from emulator.protocols.shared_turns import note

DEFAULT_LIMIT = DEFAULT_LINKS
CREATE_ONLY_FIELDS = ("system", "tools")  # a `continue` takes these from the thread


@dataclass(frozen=True)
class KeptReply:
    """One reply of a thread: the conversation up to and including it, and what the thread was created with."""

    id: str
    messages: tuple[Any, ...]  # validated messages (InputMessage / SystemMessage), the reply last
    system: Any
    tools: Any
    test_id: str = ""
    continued: bool = field(default=False, compare=False)


def thread_error(status: int, message: str, error_code: str) -> ApiError:
    """The API's thread errors carry `error.details.error_code`, which the SDKs branch on (a lost thread is
    replayed under a new one)."""
    return ApiError(status, message, code=error_code, param="thread.previous_message_id")


@dataclass
class _Turn:
    """What a kept reply's link holds besides its messages."""

    system: Any
    tools: Any
    continued: bool = False


class ThreadStore(ChainedStore[_Turn]):
    def __init__(self, limit: int = DEFAULT_LIMIT, max_bytes: int = DEFAULT_BYTES) -> None:
        super().__init__(limit, max_bytes, item_id=lambda message: None)  # messages have no ids to look up

    def continued_request(self, request: m.MessagesRequest, test_id: str) -> tuple[m.MessagesRequest, int]:
        """The request as the model sees it: the kept conversation, then the new messages, with the thread's
        `system` and `tools`; and how many messages came from the thread."""
        thread = request.thread
        assert isinstance(thread, m.ThreadContinue)
        previous = self.get(thread.previous_message_id, test_id)
        if previous is None:
            raise thread_error(
                404,
                f"thread.previous_message_id: no thread state found for '{thread.previous_message_id}'. Replay the "
                'full conversation with `thread: {"type": "create"}` to start a new thread.',
                "thread_not_found",
            )
        if previous.continued:
            raise thread_error(
                400,
                f"thread.previous_message_id: '{previous.id}' has already been continued, and each response can be "
                "continued only once. Continue from the thread's most recent response `id`.",
                "thread_already_continued",
            )
        stored = {"system": previous.system, "tools": previous.tools}
        changed = [
            name
            for name in CREATE_ONLY_FIELDS
            if name in request.model_fields_set and getattr(request, name) != stored[name]
        ]
        if changed:
            names = " and ".join(f"`{name}`" for name in changed)
            raise thread_error(
                400,
                f"{names} must stay the same across a thread's turns: leave {'them' if len(changed) > 1 else 'it'} "
                "out of a `continue` request (the thread keeps them), or replay the full conversation with `thread: "
                '{"type": "create"}` to change them.',
                "thread_fingerprint_mismatch",
            )
        whole = request.model_copy(update={"messages": [*previous.messages, *request.messages], **stored})
        return whole, len(previous.messages)

    def keep(self, reply: KeptReply, continues: str | None) -> None:
        """Keep `reply` (its conversation: what the reply it continues holds, then its own messages); the reply it
        continues (if any) may not be continued again."""
        parent = self._chains.get(continues, reply.test_id) if continues is not None else None
        if parent is not None:
            parent.value.continued = True
        own = reply.messages[parent.length :] if parent is not None else reply.messages
        self._chains.put(reply.id, own, _Turn(reply.system, reply.tools), parent=parent, test_id=reply.test_id)
        note(
            "threads",
            reply.id,
            {"key": reply.id, "previous": continues, "test_id": reply.test_id, **_dumped(reply, own)},
        )

    def adopt(self, record: Mapping[str, Any], continued: bool) -> None:
        """A turn another replica kept (emulator/protocols/shared_turns.py), validated again as a request's parts."""
        parent = self._chains.get(record["previous"], record["test_id"]) if record.get("previous") else None
        parts = m.MessagesRequest.model_validate(
            {
                "model": "-",
                "max_tokens": 1,
                "messages": record["messages"],
                "system": record["system"],
                "tools": record["tools"],
            }
        )
        turn = _Turn(parts.system, parts.tools, continued)
        messages: tuple[Any, ...] = tuple(parts.messages)
        self._chains.put(record["key"], messages, turn, parent=parent, test_id=record["test_id"])

    def holds(self, message_id: str) -> bool:
        return self._chains.get(message_id) is not None

    def set_continued(self, message_id: str, test_id: str) -> None:
        link = self._chains.get(message_id, test_id)
        if link is not None:
            link.value.continued = True

    def get(self, message_id: str, test_id: str) -> KeptReply | None:
        link = self._chains.get(message_id, test_id)
        if link is None:
            return None
        turn = link.value
        return KeptReply(link.key, tuple(link.conversation()), turn.system, turn.tools, link.test_id, turn.continued)


def _dumped(reply: KeptReply, own: tuple[Any, ...]) -> dict[str, Any]:
    """A turn's messages, system and tools as JSON, as a request would send them."""

    def dump(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [dump(item) for item in value]
        return value.model_dump(mode="json", exclude_none=True) if hasattr(value, "model_dump") else value

    return {"messages": dump(own), "system": dump(reply.system), "tools": dump(reply.tools)}
