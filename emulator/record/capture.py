"""What came back from upstream, byte by byte with arrival times: read as JSON or as SSE events, and timed.

The bytes go to a temporary file as they come, not to memory, and no more than `max_bytes` of them: past that
the capture is `too_large` and is not recorded. A compressed answer is inflated within the same bound, so a
small answer that inflates to gigabytes is refused, not inflated.

Timing follows the scenario's `timing` keys (emulator/timing.py): a stream's `ttft_ms` (request sent → first
event that carries generated text) and `chunk_delay_ms` (median gap between later such events); a plain
JSON answer's `latency_ms`.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from emulator.record import DEFAULT_MAX_BYTES
from emulator.record.convert import Event

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


TIMES_KEPT = 100_000  # arrival times kept (one per chunk); later chunks share the last one's
READ_AT_ONCE = 1024 * 1024


class TooLarge(Exception):
    """The upstream answer is larger than a recording may be."""


@dataclass
class Capture:
    status: int
    headers: dict[str, str]
    max_bytes: int = DEFAULT_MAX_BYTES
    complete: bool = False  # the upstream answer was read to its end
    size: int = 0
    times: list[tuple[float, int]] = field(default_factory=list)  # (ms since the request was sent, bytes so far)
    _file: IO[bytes] | None = field(default=None, repr=False)

    def add(self, at_ms: float, data: bytes) -> None:
        """Keep a chunk; TooLarge past `max_bytes`."""
        if self.size + len(data) > self.max_bytes:
            raise TooLarge(f"the upstream answer is larger than {self.max_bytes} bytes")
        if self._file is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close(), lives as long as the capture
        self._file.write(data)
        self.size += len(data)
        if len(self.times) < TIMES_KEPT:
            self.times.append((at_ms, self.size))
        else:
            self.times[-1] = (at_ms, self.size)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def streamed(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")

    def chunks(self) -> Iterator[tuple[float, bytes]]:
        """(arrival in ms, bytes) in order, read back from the file."""
        if self._file is None:
            return
        self._file.seek(0)
        start = 0
        for at_ms, end in self.times:
            while start < end:
                data = self._file.read(min(end - start, READ_AT_ONCE))
                if not data:
                    return
                start += len(data)
                yield at_ms, data

    def body_bytes(self) -> bytes:
        """The body, inflated if it came compressed — within `max_bytes` (TooLarge past it)."""
        raw = b"".join(data for _, data in self.chunks())
        encoding = self.headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "deflate"):
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
            body = inflater.decompress(raw, self.max_bytes + 1)
            if len(body) > self.max_bytes or inflater.unconsumed_tail:
                raise TooLarge(f"the upstream answer inflates to more than {self.max_bytes} bytes")
            return body
        if encoding not in ("identity", ""):
            raise ValueError(f"the upstream answer is {encoding}-encoded, which the recorder does not read")
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
        last_ms = 0.0
        for at_ms, data in self.chunks():
            last_ms = at_ms
            buffer += data.decode("utf-8", "replace").replace("\r\n", "\n")
            if "\n\n" not in buffer:
                continue
            *frames, buffer = buffer.split("\n\n")  # all at once: one split per chunk, not one per event
            for frame in frames:
                event = _parse_frame(frame)
                if event is not None:
                    found.append((at_ms, event))
        if buffer.strip() and (event := _parse_frame(buffer)) is not None:
            found.append((last_ms, event))
        return found

    def timing(self) -> dict[str, float]:
        if not self.times:
            return {}
        if not self.streamed:
            return {"latency_ms": round(self.times[-1][0], 1)}
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
