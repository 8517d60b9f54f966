"""Delivery of a streamed reply: protocol adapters produce SSE events, this writes them to the socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

from sse_starlette.sse import EventSourceResponse


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event: `data` is the payload text (JSON, or `[DONE]`); `event` names it when the protocol does.

    `tokens` is how many generated tokens the event carries (0 for framing events such as a role chunk,
    `message_start` or `[DONE]`): the timing plan spends time-to-first-token and the per-token pace on them.
    """

    data: str
    event: str | None = None
    tokens: int = 0


async def _frames(events: Iterable[SseEvent]) -> AsyncIterator[dict[str, str]]:
    for item in events:
        yield {"data": item.data} if item.event is None else {"event": item.event, "data": item.data}


def sse_response(events: Iterable[SseEvent], headers: Mapping[str, str] | None = None) -> EventSourceResponse:
    """`data: …` frames separated by a blank line (LF, as the gateways send), no-cache, unbuffered by proxies."""
    return EventSourceResponse(_frames(events), sep="\n", headers={"cache-control": "no-cache", **(headers or {})})
