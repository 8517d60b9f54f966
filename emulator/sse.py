"""Server-sent events: one event, its bytes on the wire, and the parts and ending of a scheduled stream.

Every protocol's stream is a list of `SseEvent`s; the timing plan gives each its offset (a `Part` is its
bytes and that offset); a stream `Ending` says how the response closes: complete, closed mid-way (FIN),
or reset (RST). emulator/server/delivery.py writes them to the socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Ending = Literal["complete", "close", "reset"]
Part = tuple[bytes, float]  # body bytes, seconds from the stream start
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
SSE_HEADERS: dict[str, str] = {
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-accel-buffering": "no",
    "content-type": "text/event-stream; charset=utf-8",
}


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event: `data` is the payload text (JSON, or `[DONE]`); `event` names it when the protocol does.

    `tokens` is how many generated tokens the event carries (0 for framing events such as a role chunk,
    `message_start` or `[DONE]`): the timing plan spends time-to-first-token and the per-token pace on them.
    """

    data: str
    event: str | None = None
    tokens: int = 0


def encode(event: SseEvent) -> bytes:
    """`event: x` when named, one `data:` line per line of data, a blank line (LF, as the gateways send)."""
    head = "" if event.event is None else f"event: {_LINE_BREAK.sub('', event.event)}\n"
    data = event.data
    if "\n" in data or "\r" in data:
        body = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    else:
        body = f"data: {data}\n"
    return f"{head}{body}\n".encode()
