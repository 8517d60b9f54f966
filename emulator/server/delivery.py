"""Writing replies on a schedule: SSE events at their planned times, and the ways a connection can break.

`Delivery` is a lean ASGI response: headers after an optional delay, then each body part at its offset
from the stream start, each deadline taken from the loop clock at that start (so waits never add up
errors), and an ending — complete, closed mid-way (FIN), or reset (RST). A client that goes away cancels
the work at once: one watcher per response waits for `http.disconnect` and cancels the writer.

A stream served by `tokenhub-emulator serve` (which exposes the connection, see transport.py) is pumped by
loop callbacks that write each chunk straight to the connection, in HTTP/1.1 chunked framing, at its
deadline: no coroutine stack to resume and no middleware to cross per event, which is what keeps a
thousand concurrent streams on time. The headers and the final chunk still go through ASGI, so the server
and the middleware see a normal response; `on_write` lets the journal time each chunk.

When the server stops, its `Drain` (the app's `drain`) tells every open delivery to finish now: a delayed
reply is sent at once, a stream writes the rest of its events at once and ends as its protocol ends it, and
a delivery that has nothing to send (a `hang`) sends its `drained` answer instead — an error in the
protocol's envelope. So a stopping server cuts no stream and answers every request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from emulator.server.transport import close_connection, transport_of
from emulator.sse import Ending, Part

CLOSE_GRACE_S = 2.0  # how long to wait for the server to notice a connection we closed
EARLY_S = 0.001  # a part due within this is written now (loop timers have millisecond resolution)
MAX_BUFFERED = 1 << 20  # a client this far behind is waited for, as the server's own flow control would
BACKLOG_RETRY_S = 0.005
WRITE_AT = 64 * 1024  # parts due at once are written together, this many bytes at most per write



class Drain:
    """The server is stopping: every open delivery registered here is told to finish now."""

    def __init__(self) -> None:
        self.draining = False
        self._wakers: set[Callable[[], None]] = set()

    def add(self, waker: Callable[[], None]) -> None:
        self._wakers.add(waker)

    def discard(self, waker: Callable[[], None]) -> None:
        self._wakers.discard(waker)

    def start(self) -> int:
        """Wake every open delivery; how many there were."""
        self.draining = True
        wakers = list(self._wakers)
        for wake in wakers:
            wake()
        return len(wakers)

    def __len__(self) -> int:
        return len(self._wakers)


class _Watch:
    """Waits for the client to leave; then cancels the writer, unless the writer is closing on purpose."""

    def __init__(self, receive: Callable[[], Any], writer: asyncio.Task[Any]) -> None:
        self.gone = False
        self.closing = False
        self._writer = writer
        self._task = asyncio.get_running_loop().create_task(self._run(receive))

    async def _run(self, receive: Callable[[], Any]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        if not self.closing:
            self._writer.cancel()

    def stop(self) -> None:
        self._task.cancel()

    async def until_gone(self) -> None:
        self.closing = True
        await asyncio.wait([self._task], timeout=CLOSE_GRACE_S)
        self._task.cancel()


class Delivery:
    """An HTTP response written on a schedule; see the module docstring."""

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str] | list[tuple[bytes, bytes]],
        parts: Iterable[Part],
        *,
        delay: float = 0.0,
        send_headers: bool = True,
        ending: Ending = "complete",
        chunked: bool = False,
        on_done: Callable[[bool], None] | None = None,
        on_write: Callable[[], None] | None = None,
        on_chunk: Callable[[float | None], None] | None = None,
        drained: Any = None,
    ) -> None:
        self.status = status
        if isinstance(headers, list):
            self.raw_headers = headers
        else:
            self.raw_headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]
        self.parts = parts
        self.delay = delay
        self.send_headers = send_headers
        self.ending = ending
        self.chunked = chunked  # no content-length: the body may be pumped straight to the connection
        self.on_done = on_done  # called with whether the client went away first
        self.on_write = on_write  # called after each part written by the pump
        self.on_chunk = on_chunk  # called after each part written, with how late it left (None: no planned time)
        self.drained = drained  # the response sent instead, if the server stops before the headers went
        self._draining = False
        self._answered = False  # the drained response went instead
        self._wakeup: asyncio.Future[None] | None = None
        self._pump: _Pump | None = None

    @classmethod
    def of(
        cls,
        response: Any,
        *,
        delay: float = 0.0,
        cut: int | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> Delivery:
        """A built response (status, headers, body) sent after `delay`; `cut`: only that many body bytes, then close."""
        body: bytes = response.body
        parts = [(body if cut is None else body[:cut], 0.0)]
        ending: Ending = "complete" if cut is None else "close"
        return cls(response.status_code, response.raw_headers, parts, delay=delay, ending=ending, on_done=on_done)

    def _wake(self) -> None:
        """The server is stopping: stop waiting, write what is left."""
        self._draining = True
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        if self._pump is not None:
            self._pump.flush()

    async def _sleep(self, seconds: float) -> None:
        """Wait, unless the server starts stopping meanwhile."""
        if self._draining or seconds <= 0:
            return
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._wakeup, seconds)
        except TimeoutError:
            pass
        finally:
            self._wakeup = None

    async def __call__(self, scope: Any, receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        writer = asyncio.current_task()
        assert writer is not None
        watch = _Watch(receive, writer)
        drain: Drain | None = getattr(scope.get("app"), "drain", None)
        if drain is not None:
            self._draining = drain.draining
            drain.add(self._wake)
        try:
            if not await self._write(scope, send, receive):
                watch.gone = True  # the pump found the connection closed by the client
            elif self._answered:
                watch.stop()
            elif self.ending == "complete":
                watch.stop()  # the last message completes the response, which the server reports as a disconnect
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            elif close_connection(scope, reset=self.ending == "reset"):
                await watch.until_gone()
        except asyncio.CancelledError:
            if not watch.gone:
                raise
            writer.uncancel()
        finally:
            watch.stop()
            if drain is not None:
                drain.discard(self._wake)
            if self.on_done is not None:
                self.on_done(watch.gone and not watch.closing)

    async def _write(self, scope: Any, send: Callable[[Any], Any], receive: Callable[[], Any]) -> bool:
        """Headers and body parts on schedule; False when the client turned out to be gone."""
        loop = asyncio.get_running_loop()
        await self._sleep(self.delay)
        if not self.send_headers:
            if self._draining and self.drained is not None:  # a hang, ended by the server stopping: answer
                await self.drained(scope, receive, send)
                self._answered = True
            return True
        await send({"type": "http.response.start", "status": self.status, "headers": self.raw_headers})
        transport = transport_of(scope) if self.chunked and scope.get("http_version") == "1.1" else None
        if transport is not None:
            self._pump = _Pump(transport, self.parts, self.on_write, self.on_chunk)
            if self._draining:
                self._pump.flush()
            return await self._pump.run()
        start = loop.time()
        on_chunk = self.on_chunk
        for body, offset in self.parts:
            if offset and not self._draining:
                await self._sleep(start + offset - loop.time())
            await send({"type": "http.response.body", "body": body, "more_body": True})
            if on_chunk is not None:
                on_chunk(loop.time() - start - offset if offset and not self._draining else None)
        return True


# fast path: mirrors uvicorn.protocols.http.httptools_impl.RequestResponseCycle.send (chunked framing); pinned by tests/unit/test_fast_paths.py::test_the_upstream_code_each_fast_path_mirrors_is_unchanged
class _Pump:
    """Writes each part at its deadline from loop callbacks, straight to the transport, in chunked framing."""

    def __init__(
        self,
        transport: asyncio.Transport,
        parts: Iterable[Part],
        on_write: Callable[[], None] | None,
        on_chunk: Callable[[float | None], None] | None = None,
    ):
        self.loop = asyncio.get_running_loop()
        self.transport = transport
        self.parts = iter(parts)
        self.on_write = on_write
        self.on_chunk = on_chunk
        self.start = self.loop.time()
        self.pending: Part | None = None
        self.handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.flushing = False  # the server is stopping: every part is due now

    def flush(self) -> None:
        """Write every part left now, whatever its deadline (the server is stopping)."""
        if self.flushing or self.done.done():
            return
        self.flushing = True
        if self.handle is not None:
            self.handle.cancel()
            self.handle = self.loop.call_soon(self.step)

    async def run(self) -> bool:
        """True when every part was written; False when the connection closed first."""
        self.step()
        try:
            await self.done
        finally:
            if self.handle is not None:
                self.handle.cancel()
        return self.pending is None and not self.transport.is_closing()

    def step(self) -> None:
        """Write every part that is due, as one write (a stream with no delays is written in a few writes, not
        one per event); then wait for the next part's deadline, or for a client that fell behind."""
        self.handle = None
        transport, on_write, on_chunk = self.transport, self.on_write, self.on_chunk
        due_now: list[bytes] = []  # parts due, framed, not yet handed to the transport
        size = 0
        try:
            while not transport.is_closing():
                if self.pending is None:
                    self.pending = next(self.parts, None)
                    if self.pending is None:
                        break
                body, offset = self.pending
                late = None
                if offset and not self.flushing:
                    due = self.start + offset
                    late = self.loop.time() - due
                    if late < -EARLY_S:
                        self.handle = self.loop.call_at(due, self.step)
                        return
                if size and size >= WRITE_AT or transport.get_write_buffer_size() + size > MAX_BUFFERED:
                    if size:
                        self.handle = self.loop.call_soon(self.step)  # write what is due, then carry on
                    else:
                        self.handle = self.loop.call_later(BACKLOG_RETRY_S, self.step)
                    return
                framed = b"%x\r\n%b\r\n" % (len(body), body)
                due_now.append(framed)
                size += len(framed)
                self.pending = None
                if on_write is not None:
                    on_write()
                if on_chunk is not None:
                    on_chunk(late)
        except Exception as error:  # making the next part failed: the response is left unfinished
            if not self.done.done():
                self.done.set_exception(error)
            return
        finally:
            if due_now and not transport.is_closing():
                write = getattr(transport, "write_now", transport.write)  # on time: not held to the loop's turn
                write(b"".join(due_now) if len(due_now) > 1 else due_now[0])
        if not self.done.done():
            self.done.set_result(None)
