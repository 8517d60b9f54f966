"""One log line per API request, written once its response is over (a stream when its last chunk left).

    INFO:     14:03:07.412 POST /v1/chat/completions 200 OK · glm-5 · rule 'greet' · 3.1 ms · req_0f3c…
    WARNING:  14:03:07.601 POST /v1/chat/completions 200 OK · glm-5 · generated — no rule matched;
              nearest: 'greet' (weather.yaml:4: last_user is "bye", expected "hi") · 1.2 ms · req_…

The front hands each finished journal entry to `RequestLog.finished`, which only queues it: the lines are
made and written on the next turn of the event loop, after the response has left, in one batch. A request
that no rule matched while rules were loaded is a WARNING that names the nearest rules and why each missed;
working that out costs a pass over the rules, so it is done only for misses, and within a time budget.

`--log-format json` writes each line as one JSON object (the same fields), for CI log collectors.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import http
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from uvicorn.logging import ColourizedFormatter

from emulator.journal import Entry

if TYPE_CHECKING:
    from emulator.server.runtime import Runtime

LOGGER = "tokenhub_emulator"
log = logging.getLogger(LOGGER + ".requests")
LOG_FORMATS = ("text", "json")
NEAREST_LOGGED = 3
UNMATCHED_ACTIONS = frozenset({"generated", "fail"})  # a rule-less `fail` is the error fallback


# ---------------------------------------------------------------- what a line says


@dataclass
class Near:
    rule: str
    where: str  # file:line
    why: str


@dataclass
class RequestLine:
    """The fields of one request's log line (the JSON form writes them as they are)."""

    time: float
    method: str
    path: str
    status: int | None
    model: str | None
    action: str | None
    rule: str | None
    fault: str | None
    test_id: str
    duration_ms: float | None
    stream: bool
    chunks: int
    request_id: str
    disconnected: bool
    entry: int
    error: str | None = None  # the message of an error the pipeline (not a rule or a fault) answered with
    nearest: list[Near] | None = None  # a miss while rules were loaded: the nearest rules (empty: none near)
    unexplained: str | None = None  # why `nearest` was not worked out

    @property
    def level(self) -> int:
        return logging.WARNING if self.nearest is not None or self.unexplained else logging.INFO

    def answer(self) -> str:
        """Who answered: a rule, a fault, the fallback (with the nearest rules), a refusal."""
        answered = self.__dict__.get("_answer")
        if answered is None:
            answered = self.__dict__["_answer"] = self._answer()
        return answered

    def _answer(self) -> str:
        if self.action == "fault" and self.fault:
            return f"fault {self.fault}" + (f" (rule {self.rule!r})" if self.rule else "")
        if self.action == "rate_limited":
            return f"rate limited: {self.fault}" if self.fault else "rate limited"
        if self.action == "rejected" or (self.action is None and self.error):
            return f"{self.action or 'error'}: {self.error}" if self.error else "rejected"
        if self.rule is not None:
            return f"rule {self.rule!r}"
        if self.action in UNMATCHED_ACTIONS:
            how = "generated" if self.action == "generated" else "error fallback"
            if self.unexplained:
                return f"{how} — no rule matched; nearest: {self.unexplained}"
            if self.nearest is None:
                return f"{how} (no rules loaded)"
            if not self.nearest:
                return f"{how} — no rule matched"
            near = "; ".join(f"{n.rule!r} ({n.where}: {n.why})" for n in self.nearest)
            return f"{how} — no rule matched; nearest: {near}"
        return self.action or ""

    def parts(self) -> list[str]:
        """The line after the status, in order: model, answer, stream, test id, duration, request id."""
        parts = []
        if self.model:
            parts.append(self.model)
        answer = self.answer()
        if answer:
            parts.append(answer)
        if self.stream and (self.status is None or self.status < 400):  # an error answers a stream in JSON
            parts.append(f"stream {self.chunks} chunk{'' if self.chunks == 1 else 's'}")
        if self.disconnected:
            parts.append("client went away")
        if self.test_id:
            parts.append(f"test {self.test_id}")
        if self.duration_ms is not None:
            parts.append(f"{self.duration_ms:.1f} ms")
        parts.append(self.request_id)
        return parts

    def __str__(self) -> str:  # the record's message is the line itself: text only when a handler asks
        return self.text()

    def text(self) -> str:
        """The plain line, without the level and time: what `%(message)s` gives other handlers."""
        return f"{self.method} {self.path} {status_text(self.status)} · " + " · ".join(self.parts())

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "model": self.model,
            "action": self.action,
            "rule": self.rule,
            "fault": self.fault,
            "test_id": self.test_id or None,
            "duration_ms": self.duration_ms,
            "stream": self.stream,
            "chunks": self.chunks if self.stream else None,
            "request_id": self.request_id,
            "entry": self.entry,
            "disconnected": self.disconnected,
        }
        if self.nearest is not None:
            data["nearest"] = [{"rule": n.rule, "where": n.where, "why": n.why} for n in self.nearest]
        if self.unexplained:
            data["unexplained"] = self.unexplained
        if self.error:
            data["error"] = self.error
        data["answer"] = self.answer()
        return data


def status_text(status: int | None) -> str:
    if status is None:
        return "-"
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


ERROR_SHOWN = 300  # characters of an error message on a log line


def line_of(entry: Entry) -> RequestLine:
    error = None
    if entry.error is not None and entry.action in (None, "rejected"):
        inner = entry.error.get("error")
        message = inner.get("message") if isinstance(inner, dict) else None
        if isinstance(message, str):
            error = message if len(message) <= ERROR_SHOWN else message[: ERROR_SHOWN - 1] + "…"
    return RequestLine(
        error=error,
        time=entry.time,
        method=entry.method,
        path=entry.path,
        status=entry.status,
        model=entry.model,
        action=entry.action,
        rule=entry.rule,
        fault=entry.fault,
        test_id=entry.test_id,
        duration_ms=entry.duration_ms,
        stream=entry.stream,
        chunks=len(entry.chunk_times_ms),
        request_id=entry.request_id,
        disconnected=entry.disconnected,
        entry=entry.id,
    )


def nearest_of(misses: list[dict[str, Any]]) -> list[Near]:
    """The journal's `misses` (RuleMiss as dicts) as the log shows them."""
    return [
        Near(miss["rule"], f"{os.path.basename(miss['file'])}:{miss['line']}", "; ".join(miss["reasons"]))
        for miss in misses[:NEAREST_LOGGED]
    ]


# ---------------------------------------------------------------- explaining misses, within a budget


@dataclass
class ExplainBudget:
    """Seconds of explaining allowed: `share` of the wall clock, at most `burst` saved up.

    Explaining a miss is a pass over every rule (and a text comparison with each `last_user`); a client that
    sends thousands of misses a second must not make the server spend its time on log lines.
    """

    share: float = 0.05
    burst: float = 0.25
    clock: Callable[[], float] = time.monotonic
    _left: float | None = field(default=None, repr=False)
    _at: float = field(default=0.0, repr=False)

    def allows(self) -> bool:
        now = self.clock()
        if self._left is None:
            self._left, self._at = self.burst, now
        self._left = min(self.burst, self._left + (now - self._at) * self.share)
        self._at = now
        return self._left > 0

    def spend(self, seconds: float) -> None:
        self._left = (self.burst if self._left is None else self._left) - seconds


# ---------------------------------------------------------------- the request log


class RequestLog:
    """Queues finished entries (`finished`, called by the front) and logs them on the next loop turn."""

    def __init__(self, runtime: Runtime, budget: ExplainBudget | None = None) -> None:
        self.runtime = runtime
        self.budget = budget or ExplainBudget()
        self._pending: list[Entry] = []
        self._scheduled = False

    def finished(self, entry: Entry) -> None:
        """The entry's response is over. Cheap: the line is made later, off the request's path."""
        if not log.isEnabledFor(logging.INFO) and (
            entry.rule is not None or entry.action not in UNMATCHED_ACTIONS or not self._rules_for(entry.test_id)
        ):
            return  # below info only misses are logged, and only while rules are loaded (a warning)
        self._pending.append(entry)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (called from a thread): write now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for entry in pending:
            line = self.line(entry)
            level = line.level
            if log.isEnabledFor(level):
                log.handle(RequestRecord(line, level))
        for handler in _handlers(log):
            with contextlib.suppress(OSError, ValueError):  # a closed or broken log stream must not stop serving
                handler.flush()  # the batch's lines in one write (BatchHandler holds them until now)

    def line(self, entry: Entry) -> RequestLine:
        line = line_of(entry)
        if entry.rule is None and entry.action in UNMATCHED_ACTIONS and self._rules_for(entry.test_id):
            if entry.misses:
                line.nearest = nearest_of(entry.misses)
            elif entry.action == "generated":
                self._explain(entry, line)
        return line

    def _rules_for(self, test_id: str) -> bool:
        engine = self.runtime.engine
        if engine.has_rules:
            return True
        return bool(test_id and any(s.rules for s in engine.overlay(test_id)))

    def _explain(self, entry: Entry, line: RequestLine) -> None:
        if not self.budget.allows():
            line.unexplained = f"not worked out (too many misses at once); see GET /_emulator/journal/{entry.id}"
            return
        started = time.perf_counter()
        try:
            entry.misses = self.runtime.explain(entry)
        finally:
            self.budget.spend(time.perf_counter() - started)
        line.nearest = nearest_of(entry.misses)


class RequestRecord(logging.LogRecord):
    """The record of a request line, made for a fraction of what LogRecord's own __init__ costs (it looks up
    the process, the thread and the source file; a request line has no caller to point at). Every attribute
    a LogRecord has is set, so any handler or formatter can read it."""

    def __init__(self, line: RequestLine, level: int) -> None:  # noqa: D107 - LogRecord's __init__ not called
        self.name = log.name
        self.msg = line  # str(line) is the text: only a handler that asks for the message pays for it
        self.args = ()
        self.levelno = level
        self.levelname = logging.getLevelName(level)
        self.pathname = __file__
        self.filename = "request_log.py"
        self.module = "request_log"
        self.exc_info = None
        self.exc_text = None
        self.stack_info = None
        self.lineno = 0
        self.funcName = "flush"
        self.created = now = time.time()
        self.msecs = int(now * 1000) % 1000 + 0.0
        self.relativeCreated = (now - logging._startTime) * 1000  # type: ignore[attr-defined]
        thread = threading.current_thread()
        self.thread = thread.ident
        self.threadName = thread.name
        self.processName = "MainProcess"
        self.process = _PID
        self.taskName = None
        self.request = line


_PID = os.getpid()


def _handlers(logger: logging.Logger) -> list[logging.Handler]:
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        handlers += current.handlers
        current = current.parent if current.propagate else None
    return handlers


# ---------------------------------------------------------------- formatters


def _style(text: str, fg: int | None = None, bold: bool = False, dim: bool = False) -> str:
    codes = [str(fg)] if fg is not None else []
    if bold:
        codes.append("1")
    if dim:
        codes.append("2")
    return f"\033[{';'.join(codes)}m{text}\033[0m" if codes else text


STATUS_COLOURS = {1: 97, 2: 32, 3: 33, 4: 31, 5: 91}  # as uvicorn's access log: green 2xx, red 4xx, …


class TextFormatter(ColourizedFormatter):
    """uvicorn's look (`INFO:     message`, the level in colour on a terminal), a time, and request lines."""

    def __init__(self, use_colors: bool | None = None) -> None:
        super().__init__("%(levelprefix)s %(message)s", use_colors=use_colors)
        self._second: tuple[int, str] = (-1, "")

    def stamp(self, when: float) -> str:
        """`HH:MM:SS.mmm` in local time; the seconds part is worked out once a second."""
        second = int(when)
        if second != self._second[0]:
            self._second = (second, time.strftime("%H:%M:%S", time.localtime(second)))
        stamp = f"{self._second[1]}.{int((when - second) * 1000):03d}"
        return _style(stamp, dim=True) if self.use_colors else stamp

    def format(self, record: logging.LogRecord) -> str:
        line: RequestLine | None = getattr(record, "request", None)
        if line is None:
            return super().format(record)
        # a request line: written here in one go (the path every request takes)
        levelname = record.levelname
        prefix = (self.color_level_name(levelname, record.levelno) if self.use_colors else levelname) + ":"
        return f"{prefix}{' ' * (9 - len(levelname))}{self.stamp(line.time)} {self.request_text(line)}"

    def formatMessage(self, record: logging.LogRecord) -> str:  # the other records: uvicorn's, the banner's
        record = copy.copy(record)  # other handlers (pytest's, yours) see the record as it was
        message = record.message
        coloured = record.__dict__.pop("color_message", None)  # uvicorn's own coloured form of its messages
        if self.use_colors and isinstance(coloured, str):
            message = coloured % record.args if record.args else coloured
        record.message = f"{self.stamp(record.created)} {message}"
        return super().formatMessage(record)

    def request_text(self, line: RequestLine) -> str:
        """`POST /v1/chat/completions 200 OK · glm-5 · rule 'greet' · 3.1 ms · req_…`, coloured when asked."""
        head = f"{line.method} {line.path}"
        status = status_text(line.status)
        if not self.use_colors:
            return f"{head} {status} · " + " · ".join(line.parts())
        colour = STATUS_COLOURS.get((line.status or 0) // 100)
        parts = line.parts()
        answer = line.answer()
        parts = [_style(p, fg=33) if p == answer and line.level == logging.WARNING else p for p in parts]
        parts[-1] = _style(parts[-1], dim=True)
        return f"{_style(head, bold=True)} {_style(status, fg=colour)} · " + " · ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message; a request line's fields too."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")
        self._encode = json.JSONEncoder(ensure_ascii=False, default=str).encode

    def stamp(self, when: float) -> str:
        """`2026-01-02T03:04:05.678+00:00`; the seconds part is worked out once a second."""
        second = int(when)
        if second != self._second[0]:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{self._second[1]}.{int((when - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        line: RequestLine | None = getattr(record, "request", None)
        data: dict[str, Any] = {
            "time": self.stamp(line.time if line else record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if line is not None:
            data.update(line.as_dict())
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            data.update(extra)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return self._encode(data)


class BatchHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler that leaves request lines in the stream's buffer: RequestLog.flush() flushes once a
    batch. Any other record is flushed at once, as StreamHandler does."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if not hasattr(record, "request"):
                self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def buffered(stream: TextIO) -> TextIO:
    """A block-buffered writer on the same file as `stream` (stderr is line-buffered: a system call a line)."""
    try:
        fileno = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (pytest's capture, a StringIO): as it is
        return stream
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return open(fileno, "w", buffering=1 << 16, encoding=encoding, errors="backslashreplace", closefd=False)  # noqa: SIM115


def wants_colour(stream: TextIO) -> bool:
    """Colour on a terminal only; NO_COLOR turns it off, FORCE_COLOR on (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def logging_config(level: str, log_format: str, stream: TextIO | None = None) -> dict[str, Any]:
    """The dictConfig for `serve`: uvicorn's loggers and ours, one handler on stderr, text or JSON.

    uvicorn's own access log stays off: the request lines above replace it.
    """
    stream = stream or sys.stderr
    if log_format == "json":
        formatter: dict[str, Any] = {"()": JsonFormatter}
    else:
        formatter = {"()": TextFormatter, "use_colors": wants_colour(stream)}
    numeric = "TRACE" if level == "trace" else level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"emulator": formatter},
        "handlers": {"stderr": {"()": BatchHandler, "formatter": "emulator", "stream": buffered(stream)}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": numeric, "propagate": False},
            "uvicorn.error": {"level": numeric},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            LOGGER: {"handlers": ["stderr"], "level": numeric if numeric != "TRACE" else "DEBUG", "propagate": False},
        },
    }
