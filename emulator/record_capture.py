"""What came back from upstream, byte by byte with arrival times: read as JSON or as SSE events, and timed.

Timing follows the scenario's `timing` keys (emulator/timing.py): a stream's `ttft_ms` (request sent → first
event that carries generated text) and `chunk_delay_ms` (median gap between later such events); a plain
JSON answer's `latency_ms`.
"""

from __future__ import annotations

import json
import statistics
import zlib
from dataclasses import dataclass, field
from typing import Any

from emulator.record_convert import Event

# SSE events that carry no generated text: they go out before the first token or after the last.
FRAMING = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_item.done",
        "response.content_part.done",
        "response.output_text.done",
        "response.completed",
        "response.incomplete",
    }
)


@dataclass
class Capture:
    status: int
    headers: dict[str, str]
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # (ms since the request was sent, bytes)
    complete: bool = False  # the upstream answer was read to its end

    def add(self, at_ms: float, data: bytes) -> None:
        self.chunks.append((at_ms, data))

    @property
    def streamed(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")

    def body_bytes(self) -> bytes:
        raw = b"".join(data for _, data in self.chunks)
        encoding = self.headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "deflate"):
            return zlib.decompress(raw, 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        return raw

    def json(self) -> Any:
        try:
            return json.loads(self.body_bytes())
        except ValueError:
            return None

    def events(self) -> list[tuple[float, Event]]:
        """SSE events with the time the chunk that completed each arrived; `[DONE]` and comments left out."""
        found: list[tuple[float, Event]] = []
        buffer = ""
        for at_ms, data in self.chunks:
            buffer += data.decode("utf-8", "replace").replace("\r\n", "\n")
            while "\n\n" in buffer:
                frame, buffer = buffer.split("\n\n", 1)
                event = _parse_frame(frame)
                if event is not None:
                    found.append((at_ms, event))
        if buffer.strip() and (event := _parse_frame(buffer)) is not None:
            found.append((self.chunks[-1][0], event))
        return found

    def timing(self) -> dict[str, float]:
        if not self.chunks:
            return {}
        if not self.streamed:
            return {"latency_ms": round(self.chunks[-1][0], 1)}
        token_times = [at for at, (name, data) in self.events() if _carries_text(name, data)]
        if not token_times:
            return {}
        timing = {"ttft_ms": round(token_times[0], 1)}
        gaps = [b - a for a, b in zip(token_times, token_times[1:], strict=False)]
        if gaps:
            timing["chunk_delay_ms"] = round(statistics.median(gaps), 1)
        return timing


def _parse_frame(frame: str) -> Event | None:
    name: str | None = None
    lines = []
    for line in frame.split("\n"):
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
    if not lines:
        return None
    text = "\n".join(lines)
    if text.strip() == "[DONE]":
        return None
    try:
        return name, json.loads(text)
    except ValueError:
        return name, text


def _carries_text(name: str | None, data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    kind = name or data.get("type")
    if kind in FRAMING:
        return False
    if kind is not None and kind != "chat.completion.chunk" and "choices" not in data:
        return kind.endswith(".delta") or kind == "content_block_delta"
    for choice in data.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls") or delta.get("refusal"):
            return True
    return False
