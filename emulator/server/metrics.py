"""Prometheus metrics at `GET /metrics` (docs/metrics.md): what the emulator answered, injected and streamed.

One `Metrics` per app, built from the settings. In one process its metrics live in a registry of their own
(so several apps in one process, as the pytest plugin makes them, do not mix their counts), served with the
process's CPU and memory. When `PROMETHEUS_MULTIPROC_DIR` is set (`serve --workers N` sets it for its
workers), prometheus_client keeps every value in a file of that folder instead, and a scrape of any worker
reads them all: the counts of every process that shares the folder, summed (open streams: of the live ones).

Label values that come from requests or scenarios (models, rule names) are bounded: the first
`DISTINCT_VALUES` values of each label are kept, later ones are counted as `(other)`, so a client that sends
a new model name with every request cannot grow the scrape without end.

The hot path pays a dictionary lookup and a locked add per count: the children of each label set are kept.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from emulator.journal import Entry

METRICS_PATH = "/metrics"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
DISTINCT_VALUES = 100  # per label fed by requests or scenarios; past it: OTHER
OTHER = "(other)"
NONE = "(none)"  # no rule answered (generated, rejected, an error), no protocol (a path of none)
LATENESS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_problem() -> str | None:
    """Why the multi-process folder cannot be used (None: it can, or none is set)."""
    folder = os.environ.get(MULTIPROCESS_ENV)
    if folder is None:
        return None
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        return f"{MULTIPROCESS_ENV}={folder!r} is not a folder this process can write to"
    return None


class BoundedLabel:
    """The values one label may take: the first `limit` seen, then OTHER."""

    __slots__ = ("_kept", "_limit")

    def __init__(self, limit: int = DISTINCT_VALUES) -> None:
        self._kept: set[str] = set()
        self._limit = limit

    def __call__(self, value: str | None) -> str:
        if value is None:
            return NONE
        if value in self._kept:
            return value
        if len(self._kept) >= self._limit:
            return OTHER
        self._kept.add(value)
        return value


class Metrics:
    """The emulator's metrics; `render()` is the scrape's body."""

    def __init__(self) -> None:
        self.multiprocess = values.ValueClass is not values.MutexValue  # as prometheus_client chose at import
        own = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        prefix = "tokenhub_emulator_"
        self.requests = Counter(
            prefix + "requests",
            "API requests answered, by protocol, model, HTTP status and the scenario rule that answered",
            ["protocol", "model", "status", "rule"],
            registry=own,
        )
        self.faults = Counter(prefix + "faults_injected", "Faults injected, by kind", ["kind"], registry=own)
        self.tokens = Counter(
            prefix + "tokens",
            "Tokens in the usage of the replies served (prompt and completion), by protocol and model",
            ["protocol", "model", "type"],
            registry=own,
        )
        self.chunks = Counter(
            prefix + "stream_chunks", "Streamed chunks written, by protocol", ["protocol"], registry=own
        )
        self.lateness = Histogram(
            prefix + "chunk_lateness_seconds",
            "How long after its planned time a paced stream chunk was written (chunks with a planned time)",
            ["protocol"],
            buckets=LATENESS_BUCKETS,
            registry=own,
        )
        self.open_streams = Gauge(
            prefix + "open_streams",
            "Streams being written now, by protocol",
            ["protocol"],
            multiprocess_mode="livesum",
            registry=own,
        )
        if own is not None:
            ProcessCollector(registry=own)
        self._registry = own
        self._models = BoundedLabel()
        self._rules = BoundedLabel()
        self._children: dict[Any, Any] = {}

    # -- counting (the hot path) -------------------------------------------------------------------------------

    def request(self, entry: Entry) -> None:
        """A journaled request is over."""
        key = (entry.protocol, entry.model, entry.status, entry.rule)
        child = self._children.get(key)
        if child is None:
            status = str(entry.status) if entry.status is not None else NONE
            labels = (entry.protocol or NONE, self._models(entry.model), status, self._rules(entry.rule))
            child = self._children[key] = self.requests.labels(*labels)
        child.inc()

    def fault(self, kind: str) -> None:
        self._child(self.faults, (kind,)).inc()

    def served_tokens(self, protocol: str, model: str, prompt: int, completion: int) -> None:
        key = ("tokens", protocol, model)
        pair = self._children.get(key)
        if pair is None:
            labels = (protocol, self._models(model))
            pair = self._children[key] = (
                self.tokens.labels(*labels, "prompt"),
                self.tokens.labels(*labels, "completion"),
            )
        pair[0].inc(prompt)
        pair[1].inc(completion)

    def stream_opened(self, protocol: str) -> None:
        self._child(self.open_streams, (protocol,)).inc()

    def stream_closed(self, protocol: str) -> None:
        self._child(self.open_streams, (protocol,)).dec()

    def chunk_written(self, protocol: str, late_s: float | None) -> None:
        """A stream chunk left; `late_s`: how long after its planned time (None: it had none)."""
        self._child(self.chunks, (protocol,)).inc()
        if late_s is not None:
            self._child(self.lateness, (protocol,)).observe(late_s if late_s > 0 else 0.0)

    def _child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- the scrape ----------------------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition format: this process's metrics, or every process's that shares the folder."""
        if self._registry is not None:
            return generate_latest(self._registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)

    def process_exited(self) -> None:
        """This process stops serving: its open-streams gauge no longer counts (multi-process mode)."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())
