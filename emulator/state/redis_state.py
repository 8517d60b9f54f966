"""The shared state on Redis: what every worker and replica serving with `--state redis://…` holds in common.

Each worker keeps its own copy of what it reads on every request (the scenarios, the tests' own scenarios,
the run-time faults) and a version number; everything that changes per request (sequence counters, queued
failures, the journal, rate-limit buckets, stored responses and threads) lives in Redis. A request costs one
round trip before it is answered (`begin`: the version check, a queued failure, the sequence count, the
journal entry, in one script); a worker whose copy is older than the shared version syncs first. What a
request adds to its journal entry once it is over is written in batches, many entries a round trip.

docs/scaling.md says what consistency each feature gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from emulator.exchange import Failure
from emulator.journal import Entry
from emulator.scenarios import ScenarioError
from emulator.scenarios.loader import load_scenario_file, parse_scenario
from emulator.scenarios.schema import Scenario
from emulator.state import scripts
from emulator.state.url import shown_url

if TYPE_CHECKING:
    from emulator.faults.book import FaultBook
    from emulator.scenarios.scoped_engine import ScopedEngine


class ScenarioCount(Protocol):
    @property
    def from_files(self) -> int: ...


class Runtime(Protocol):
    """What syncing touches of the server's runtime (emulator/server/runtime.py), which comes after this layer."""

    @property
    def engine(self) -> ScopedEngine: ...
    @property
    def faults(self) -> FaultBook: ...
    @property
    def scenario_status(self) -> ScenarioCount: ...
    def reset(self, test_id: str | None = None) -> None: ...
    def replace_scenarios(self, scenarios: list[Scenario], from_files: int | None = None) -> None: ...
    def set_overlay(self, test_id: str, scenarios: list[Scenario]) -> None: ...

log = logging.getLogger("tokenhub_emulator.state")
T = TypeVar("T")

PREFIX = "tokenhub-emulator:"
CHANGES_KEPT = 1000  # changes a lagging worker can catch up on one by one; further behind, it reloads everything
SETTLE_BATCH = 256  # journal entries written in one round trip at most
STORE_LINKS = 10_000  # turns each shared store keeps at most (and about --store-bytes bytes)
CHAIN_STEP = 16
CONNECTIONS = 32  # connections to Redis one worker opens at most (a request waits for one, up to 5 s)  # turns of a chain fetched in one round trip
ENTRY_FIELDS = tuple(f.name for f in fields(Entry) if f.name not in ("started", "size"))  # "id" first


class StateUnavailable(Exception):
    """Redis did not answer: the request gets a 503 in its protocol's envelope (the control API: a 503 too)."""


class Stale(Exception):
    """The worker's scenarios and faults are older than the shared ones: sync, then ask again."""


@dataclass(frozen=True)
class Begun:
    failure: Failure | None  # a failure queued by fail_next: the answer
    count: int | None  # the sequence count asked for
    entry_id: int  # the journal entry's id in the shared journal (0: no entry)


class RedisState:
    """One worker's connection to the shared state, and what it has applied of it."""

    def __init__(self, url: str, *, journal_entries: int, journal_bytes: int, store_bytes: int, ttl_s: float) -> None:
        self.url = url
        self.shown = shown_url(url)
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=CONNECTIONS,
            timeout=5.0,
            decode_responses=True,
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        )
        self.redis: Any = aioredis.Redis(connection_pool=pool)  # redis-py's types say bytes | str everywhere
        self.journal_entries = journal_entries
        self.journal_bytes = journal_bytes
        self.store_bytes = store_bytes
        self.ttl_s = max(1, int(ttl_s))
        self.version = ""  # the shared version this worker's scenarios and faults are at ("": none yet)
        self.file_scenarios: list[Scenario] = []  # what this worker read from its --scenario paths at start
        self.fault_bodies: dict[str, str] = {}  # run-time fault id → the JSON it was switched on with
        self._scripts = {name: self.redis.register_script(getattr(scripts, name)) for name in SCRIPT_NAMES}
        self._pending: list[Entry] = []
        self._flusher: asyncio.Task[None] | None = None
        self._warned = False

    # ------------------------------------------------------------ plumbing

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except (RedisError, OSError) as error:
            raise StateUnavailable(
                f"The emulator's shared state (Redis at {self.shown}) is unavailable: {str(error).rstrip('.')}"
            ) from None

    async def _script(self, name: str, *args: Any) -> Any:
        return await self._call(self._scripts[name](args=[PREFIX, *args]))

    async def check(self) -> None:
        """Raises StateUnavailable when Redis does not answer (at start: one clear line, exit 2)."""
        await self._call(self.redis.ping())

    async def close(self) -> None:
        await self.flush()
        with contextlib.suppress(RedisError, OSError):
            await self.redis.aclose()

    async def _changed(self, scope: str) -> None:
        version = await self._script("CHANGED", scope, CHANGES_KEPT)
        if self.version and int(self.version) + 1 == int(version):
            self.version = str(version)  # nobody else changed anything meanwhile: this worker is up to date

    # ------------------------------------------------------------ the request path

    async def begin(self, test_id: str, sequence_key: str | None, entry: Entry | None) -> Begun:
        """One round trip: a queued failure, the sequence count, the journal entry. Raises Stale."""
        text = _entry_json(entry, 0) if entry is not None and entry.id <= 0 else ""
        answer = await self._script(
            "BEGIN",
            self.version,
            test_id,
            self.ttl_s,
            sequence_key or "",
            text,
            self.journal_entries,
            self.journal_bytes,
        )
        if int(answer[0]) == 0:
            raise Stale
        failure = _failure(json.loads(answer[2])) if answer[2] else None
        count = int(answer[3])
        entry_id = int(answer[4])
        if entry is not None and entry_id:
            entry.id = entry_id
        return Begun(failure, count if count >= 0 else None, entry_id)

    async def count(self, test_id: str, key: str) -> int:
        """A second sequence count in one decision (never seen in practice): a round trip of its own."""
        hash_key = f"{PREFIX}seq:{test_id}"
        count = await self._call(self.redis.hincrby(hash_key, key, 1))
        return int(count) - 1

    # ------------------------------------------------------------ the journal

    def queue_entry(self, entry: Entry) -> None:
        """An entry whose request is over: written with the others of this turn of the event loop."""
        self._pending.append(entry)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_pending())

    async def _flush_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:SETTLE_BATCH], self._pending[SETTLE_BATCH:]
            args: list[Any] = [self.journal_entries, self.journal_bytes]
            for entry in batch:
                args += [max(entry.id, 0), _entry_json(entry, max(entry.id, 0))]
            try:
                ids = await self._script("SETTLE", *args)
            except StateUnavailable as error:
                if not self._warned:
                    log.warning("journal entries not written to the shared journal: %s", error)
                    self._warned = True
                continue
            self._warned = False
            for entry, entry_id in zip(batch, ids, strict=False):
                entry.id = int(entry_id)

    async def flush(self) -> None:
        """Every entry this worker has finished is in the shared journal (or failed to get there)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def entries(self, test_id: str | None = None) -> list[Entry]:
        await self.flush()
        base = f"{PREFIX}j:"
        ids = await self._call(self.redis.lrange(base + "ids", 0, -1))
        values: list[str | None] = []
        for start in range(0, len(ids), 1000):
            values += await self._call(self.redis.hmget(base + "items", ids[start : start + 1000]))
        entries = [_entry(json.loads(value)) for value in values if value]
        return [e for e in entries if test_id is None or e.test_id == test_id]

    async def clear_journal(self, test_id: str | None) -> None:
        await self.flush()
        await self._call(self._scripts["CLEAR"](args=[f"{PREFIX}j:", test_id or ""]))

    # ------------------------------------------------------------ scenarios, faults, resets

    async def refresh(self, runtime: Runtime) -> None:
        """Sync when another worker changed what is shared (one round trip when nothing did)."""
        version = await self._call(self.redis.get(PREFIX + "v")) or "0"
        if version != self.version:
            await self.sync(runtime)

    async def current(self, runtime: Runtime) -> None:
        """Raises Stale (having synced) when another worker changed what is shared: for an answer decided
        without `begin` (a fault that replaces it)."""
        version = await self._call(self.redis.get(PREFIX + "v")) or "0"
        if version != self.version:
            await self.sync(runtime)
            raise Stale

    async def sync(self, runtime: Runtime) -> None:
        """Bring this worker's scenarios, tests' scenarios and run-time faults up to the shared version."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(PREFIX + "v").lrange(PREFIX + "chg", 0, -1)
            version, changes = await self._call(pipe.execute())
        version = version or "0"
        if version == self.version:
            return
        known = int(self.version or -1)
        listed = [(int(n), scope) for n, _, scope in (item.partition(" ") for item in changes)]
        everything = known < 0 or not listed or listed[0][0] > known + 1
        scopes = {scope for n, scope in listed if n > known}
        for n, scope in listed:
            if n > known and scope.startswith("r:"):
                runtime.reset(scope[2:] or None)
        if everything or "s" in scopes:
            await self._load_shared(runtime)
        test_ids = {scope[2:] for scope in scopes if scope[:2] in ("t:", "r:")}
        if everything or "r:" in scopes:
            keys = await self._call(self._keys(f"{PREFIX}src:t:*"))
            test_ids = {key.removeprefix(f"{PREFIX}src:t:") for key in keys} | set(runtime.engine.scopes())
        for test_id in test_ids - {""}:
            await self._load_overlay(runtime, test_id)
        if everything or "f" in scopes:
            await self._load_faults(runtime)
        if known < 0:  # a fault's `window` counts from when the shared state was first served (or last reset)
            seconds, micros = await self._call(self.redis.time())
            await self._call(self.redis.set(PREFIX + "fstart", f"{seconds + micros / 1e6}", nx=True))
        self.version = version

    async def _keys(self, pattern: str) -> list[str]:
        return [key async for key in self.redis.scan_iter(match=pattern, count=1000)]

    async def _load_shared(self, runtime: Runtime) -> None:
        text = await self._call(self.redis.get(PREFIX + "src:s"))
        if text is None:
            scenarios, from_files = list(self.file_scenarios), len(self.file_scenarios)
        else:
            data = json.loads(text)
            scenarios, from_files = _rebuilt(data["sources"]), data["from_files"]
        runtime.replace_scenarios(scenarios, from_files=from_files)

    async def _load_overlay(self, runtime: Runtime, test_id: str) -> None:
        text = await self._call(self.redis.get(f"{PREFIX}src:t:{test_id}"))
        scenarios = _rebuilt(json.loads(text)) if text else []
        if scenarios or test_id in runtime.engine.scopes():
            runtime.set_overlay(test_id, scenarios)

    async def _load_faults(self, runtime: Runtime) -> None:
        from emulator.faults.rules import parse_fault_json

        bodies = await self._call(self.redis.hgetall(PREFIX + "faults"))
        book = runtime.faults
        book.runtime.clear()
        self.fault_bodies = {}
        for fault_id in sorted(bodies, key=_fault_number):
            rule, problems = parse_fault_json(json.loads(bodies[fault_id]), fault_id=fault_id)
            if rule is None:
                log.error("shared fault %s cannot be read here: %s", fault_id, "; ".join(problems))
                continue
            book.add(rule)
            self.fault_bodies[fault_id] = bodies[fault_id]

    async def publish_scenarios(self, runtime: Runtime, test_id: str | None) -> None:
        """What this worker's control API just loaded or removed, for every worker."""
        if test_id is not None:
            sources = [_source(s) for s in runtime.engine.overlay(test_id)]
            key = f"{PREFIX}src:t:{test_id}"
            if sources:
                await self._call(self.redis.set(key, json.dumps(sources), ex=self.ttl_s))
            else:
                await self._call(self.redis.delete(key))
            await self._changed("t:" + test_id)
            return
        scenarios = runtime.engine.scenarios
        data = {"from_files": runtime.scenario_status.from_files, "sources": [_source(s) for s in scenarios]}
        await self._call(self.redis.set(PREFIX + "src:s", json.dumps(data)))
        await self._delete(f"{PREFIX}seq:*")  # new scenarios: sequences start over, as in one process
        await self._changed("s")

    async def _delete(self, pattern: str) -> None:
        keys = await self._call(self._keys(pattern))
        for start in range(0, len(keys), 1000):
            await self._call(self.redis.delete(*keys[start : start + 1000]))

    async def reset(self, test_id: str | None) -> None:
        """Sequence counters, queued failures, a test's own scenarios, the journal, the stores: of one test id or all."""
        if test_id is None:
            for pattern in ("seq:*", "fail:*", "src:t:*", "rl:*", "fc:*", "fstart"):
                await self._delete(PREFIX + pattern)
        else:
            keys = [f"{PREFIX}{kind}:{test_id}" for kind in ("seq", "fail", "src:t", "fc")]
            await self._call(self.redis.delete(*keys))
        await self.clear_journal(test_id)
        for store in SHARED_STORES:
            await self._call(self._scripts["CLEAR"](args=[f"{PREFIX}{store}:", test_id or ""]))
        await self._changed("r:" + (test_id or ""))

    async def fail_next(self, test_id: str, failures: list[Failure]) -> int:
        key = f"{PREFIX}fail:{test_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *[json.dumps(asdict(f)) for f in failures])
            if test_id:
                pipe.expire(key, self.ttl_s)
            results = await self._call(pipe.execute())
        return int(results[0])

    async def new_fault_id(self) -> str:
        return f"fault_{await self._call(self.redis.incr(PREFIX + 'fid'))}"

    async def add_fault(self, fault_id: str, body: Any) -> None:
        text = json.dumps(body)
        await self._call(self.redis.hset(PREFIX + "faults", fault_id, text))
        self.fault_bodies[fault_id] = text
        await self._changed("f")

    async def remove_faults(self, fault_id: str | None) -> int:
        if fault_id is None:
            count = await self._call(self.redis.hlen(PREFIX + "faults"))
            await self._call(self.redis.delete(PREFIX + "faults"))
        else:
            count = await self._call(self.redis.hdel(PREFIX + "faults", fault_id))
        await self._changed("f")
        return int(count)

    # ------------------------------------------------------------ stored conversations

    async def put_records(self, records: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
        """Turns a reply stored (Responses, threads): in Redis before the reply is sent, so that a chain
        continues on whichever replica gets its next turn."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for store, key, record in records:
                args: list[Any] = [
                    f"{PREFIX}{store}:",
                    key,
                    json.dumps(record, default=str),
                    STORE_LINKS,
                    self.store_bytes,
                ]
                await self._scripts["PUT"](args=args, client=pipe)
            await self._call(pipe.execute())

    async def chain(self, store: str, key: str, have: Any) -> list[dict[str, Any]]:
        """The turns of a chain this worker does not hold, oldest first, ending with `key` (`have(key)`: held)."""
        found: list[dict[str, Any]] = []
        next_key: str | None = key
        while next_key is not None and not have(next_key):
            values = await self._call(self._scripts["CHAIN"](args=[f"{PREFIX}{store}:", next_key, CHAIN_STEP]))
            if not values:
                break
            next_key = None
            for value in values:
                record = json.loads(value)
                if have(record["key"]):
                    break
                found.append(record)
                next_key = record.get("previous")
            if len(values) < CHAIN_STEP:
                break
        return found[::-1]

    async def forget(self, store: str, key: str) -> None:
        """A stored turn deleted through the API: gone for every replica (its id leaves the list when evicted)."""
        base = f"{PREFIX}{store}:"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(base + "sizes", key).hdel(base + "items", key).hdel(base + "sizes", key)
            size, _, _ = await self._call(pipe.execute())
        if size:
            await self._call(self.redis.decrby(base + "bytes", int(size)))

    async def mark(self, store: str, key: str, field: str) -> bool:
        """Set a flag on a stored turn once; False when another worker set it first."""
        return bool(await self._call(self.redis.hsetnx(f"{PREFIX}{store}:flags:{key}", field, "1")))

    async def flagged(self, store: str, key: str, field: str) -> bool:
        return bool(await self._call(self.redis.hexists(f"{PREFIX}{store}:flags:{key}", field)))

    # ------------------------------------------------------------ fault counters

    async def count_faults(self, test_id: str, fault_ids: list[str]) -> tuple[float, list[int]]:
        """Counts this call for each fault (one round trip); the seconds since counting started, and each
        fault's count before this call."""
        answer = await self._script("FAULTS", test_id, self.ttl_s, *fault_ids)
        return float(answer[0]), [int(count) for count in answer[1:]]

    # ------------------------------------------------------------ rate limits

    async def take(self, bucket: str, what: str, window_s: float, limits: tuple[int, int, int], tokens: int) -> Any:
        requests, token_limit, concurrency = limits
        return await self._script("TAKE", bucket, what, window_s, requests, token_limit, tokens, concurrency)


SCRIPT_NAMES = ("BEGIN", "SETTLE", "PUT", "CLEAR", "CHAIN", "CHANGED", "TAKE", "FAULTS")
SHARED_STORES = ("responses", "threads")


def _failure(data: dict[str, Any]) -> Failure:
    return Failure(**data)


def _entry_json(entry: Entry, entry_id: int) -> str:
    """What Entry.as_dict gives, as JSON, without its deep copy (the request path's largest cost here)."""
    data = {name: getattr(entry, name) for name in ENTRY_FIELDS}
    data["id"] = entry_id
    return json.dumps(data, default=str)


def _entry(data: dict[str, Any]) -> Entry:
    return Entry(**{name: value for name, value in data.items() if name in ENTRY_FIELDS})


def _fault_number(fault_id: str) -> int:
    digits = fault_id.rpartition("_")[2]
    return int(digits) if digits.isdigit() else 0


def _source(scenario: Scenario) -> dict[str, str]:
    if scenario.source is not None:
        return dict(scenario.source)
    if scenario.path is not None:
        return {"path": str(scenario.path)}
    raise ValueError(f"scenario {scenario.name!r} has neither a file nor a control API source to share")


def _rebuilt(sources: list[dict[str, str]]) -> list[Scenario]:
    """Scenarios again from what was shared: the YAML a control API load sent, or a file every replica reads."""
    scenarios = []
    for source in sources:
        try:
            if "yaml" in source:
                scenario = parse_scenario(source["yaml"], source["file"], source["label"])
                scenario = replace(scenario, name=source["name"] or scenario.name, source=source)
            else:
                scenario = load_scenario_file(source["path"])
        except (ScenarioError, OSError) as error:
            log.error(
                "a shared scenario cannot be read here (%s): %s", source.get("path") or source.get("label"), error
            )
            continue
        scenarios.append(scenario)
    return scenarios
