"""The resilience report: how a client behaved under the failures it was given, read from the journal.

Requests are grouped into chains: the attempts of one logical call (same test id, path, key and body;
an SDK's `x-stainless-retry-count: 0` starts a new chain). For each chain: the retries, how long the client
waited before each (from the end of the failed response to the next request, on the emulator's clock),
whether that was at least the `retry-after-ms` / `retry-after` it was sent, how the waits grew, whether a
non-retryable error (a 4xx other than 408, 409, 429) was retried, whether the client gave up, and what it
saw last. A client is in trouble (`ok: false`) when it retried sooner than told or retried a non-retryable
error, when it passed a misbehaving model's answer on (emulator/faults/judge.py), or when it looped (the
agent-loop guard's flags in the journal).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.faults.judge import PASSED_ON, behaviour_report
from emulator.faults.kinds import BEHAVIOUR_KINDS
from emulator.journal import Entry

RETRY_COUNT_HEADER = "x-stainless-retry-count"
RETRYABLE_4XX = frozenset({408, 409, 429})
# faults whose request got an answer in the end (the client was merely slowed down)
# and the behaviour faults: the exchange itself succeeded (judge.py says what the client made of the answer)
HARMLESS_FAULTS = frozenset({"latency", "stall", *BEHAVIOUR_KINDS})
TOLERANCE_MS = 1.0  # clock rounding between the two journal timestamps


@dataclass
class Attempt:
    entry: Entry
    fault: str | None  # what the emulator injected, when it did

    @property
    def status(self) -> int | None:
        return self.entry.status

    @property
    def failed(self) -> bool:
        if self.entry.disconnected:
            return True
        if self.fault is not None and self.fault.split()[0] not in HARMLESS_FAULTS:
            return True
        return self.status is None or self.status >= 400

    @property
    def retryable(self) -> bool:
        """What the official SDKs retry: 408, 409, 429, 5xx and broken connections; `x-should-retry` decides first."""
        said = self.entry.response_headers.get("x-should-retry")
        if said in ("true", "false"):
            return said == "true"
        status = self.status
        if status is None or status < 400 or (self.fault and self.fault.split()[0] != "error"):
            return True
        return status in RETRYABLE_4XX or status >= 500

    @property
    def retry_after_ms(self) -> float | None:
        headers = self.entry.response_headers
        for name, scale in (("retry-after-ms", 1.0), ("retry-after", 1000.0)):
            try:
                return float(headers[name]) * scale
            except (KeyError, ValueError):
                continue
        return None

    @property
    def ended(self) -> float:
        """Wall-clock seconds when the response was over."""
        spent = self.entry.duration_ms if self.entry.duration_ms is not None else self.entry.first_byte_ms
        return self.entry.time + (spent or 0.0) / 1000

    def outcome(self) -> str:
        if self.fault is not None and self.failed:
            return self.fault
        if self.entry.disconnected:
            return "client disconnected"
        if self.status is None:
            return "no response"
        if self.status >= 400:
            error = (self.entry.error or {}).get("error")
            kind = error.get("type") or error.get("code") if isinstance(error, Mapping) else None
            return f"{self.status} {kind}" if kind else str(self.status)
        return f"{self.status} ok"


@dataclass
class Chain:
    attempts: list[Attempt] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        first = self.attempts[0].entry
        rows: list[dict[str, Any]] = []
        waits: list[float] = []
        early: list[int] = []
        non_retryable: list[int] = []
        for index, attempt in enumerate(self.attempts):
            row: dict[str, Any] = {
                "entry": attempt.entry.id,
                "at_ms": round((attempt.entry.time - first.time) * 1000, 1),
                "status": attempt.status,
                "outcome": attempt.outcome(),
                "fault": attempt.fault,
                "retry_after_ms": attempt.retry_after_ms if attempt.failed else None,
            }
            if index:
                before = self.attempts[index - 1]
                waited = round((attempt.entry.time - before.ended) * 1000, 1)
                waits.append(waited)
                row["waited_ms"] = waited
                asked = before.retry_after_ms
                if asked is not None:
                    row["honored_retry_after"] = waited + TOLERANCE_MS >= asked
                    if not row["honored_retry_after"]:
                        early.append(index + 1)
                if not before.retryable:
                    non_retryable.append(index + 1)
            rows.append(row)
        last = self.attempts[-1]
        return {
            "request": f"{first.method} {first.path}" + (f" {first.model}" if first.model else ""),
            "test_id": first.test_id,
            "attempts": rows,
            "retries": len(self.attempts) - 1,
            "waits_ms": waits,
            "backoff": backoff_shape(waits, [rows[i + 1].get("honored_retry_after") for i in range(len(waits))]),
            "retried_too_early": early,  # attempt numbers (from 1) that came before the retry-after was up
            "retried_non_retryable": non_retryable,
            "gave_up": last.failed,
            "last_outcome": last.outcome(),
            "ok": not early and not non_retryable,
        }


def backoff_shape(waits: list[float], honored: list[bool | None]) -> str:
    """none | as told (every wait was a retry-after, kept) | sooner than told (a retry-after was not kept) |
    single | exponential | growing | constant | irregular.

    `honored[i]`: whether wait i lasted the retry-after it was sent; None when it was sent none.
    """
    if not waits:
        return "none"
    if any(kept is False for kept in honored):
        return "sooner than told"
    if all(kept is True for kept in honored):
        return "as told"
    if len(waits) == 1:
        return "single"
    ratios = [
        later / earlier if earlier > 0 else float("inf") for earlier, later in zip(waits, waits[1:], strict=False)
    ]
    if all(r >= 1.5 for r in ratios):
        return "exponential"
    if all(r > 1.0 for r in ratios):
        return "growing"
    if all(0.8 <= r <= 1.25 for r in ratios):
        return "constant"
    return "irregular"


def chains_of(entries: Iterable[Entry], injected: Mapping[int, str]) -> list[Chain]:
    chains: list[Chain] = []
    open_chains: dict[tuple[str, ...], Chain] = {}
    for entry in entries:
        if entry.protocol is None:
            continue
        attempt = Attempt(entry, injected.get(entry.id))
        key: tuple[str, ...] = (
            entry.test_id,
            entry.path,
            entry.headers.get("authorization", entry.headers.get("x-api-key", "")),
        )
        key += (json.dumps(entry.body, sort_keys=True, default=str),)
        current = open_chains.get(key)
        fresh = entry.headers.get(RETRY_COUNT_HEADER) == "0"
        if current is None or fresh or not current.attempts[-1].failed:
            current = open_chains[key] = Chain()
            chains.append(current)
        current.attempts.append(attempt)
    return chains


def report(
    entries: Iterable[Entry],
    injected: Mapping[int, str],
    test_id: str | None = None,
    misbehaved: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole report, as JSON-ready data."""
    entries = list(entries)
    chains = [chain.report() for chain in chains_of(entries, injected)]
    behaviour = behaviour_report([e for e in entries if e.protocol is not None], misbehaved or {})
    loops: list[dict[str, Any]] = [{"entry": e.id, "test_id": e.test_id, "loop": e.loop} for e in entries if e.loop]
    faults: dict[str, dict[str, int]] = {}
    for chain in chains:
        attempts = chain["attempts"]
        for index, row in enumerate(attempts):
            if row["outcome"].endswith(" ok"):
                continue
            seen = faults.setdefault(row["outcome"], {"seen": 0, "retried": 0, "honored_retry_after": 0})
            seen["seen"] += 1
            if index + 1 < len(attempts):
                seen["retried"] += 1
                seen["honored_retry_after"] += attempts[index + 1].get("honored_retry_after") is True
    problems = []
    for number, chain in enumerate(chains, start=1):
        for attempt in chain["retried_too_early"]:
            row = chain["attempts"][attempt - 1]
            asked = chain["attempts"][attempt - 2]["retry_after_ms"]
            problems.append(
                f"chain {number} ({chain['request']}): attempt {attempt} came {row['waited_ms']:g} ms after "
                f"'{chain['attempts'][attempt - 2]['outcome']}', which asked to wait {asked:g} ms"
            )
        for attempt in chain["retried_non_retryable"]:
            problems.append(
                f"chain {number} ({chain['request']}): attempt {attempt} retried "
                f"'{chain['attempts'][attempt - 2]['outcome']}', which is not retryable"
            )
    for row in behaviour:
        if row["client"] == PASSED_ON:
            problems.append(f"entry {row['entry']}: the client passed on the model's '{row['fault']}': {row['why']}")
    behaviour_seen: dict[str, dict[str, int]] = {}
    for row in behaviour:
        counts = behaviour_seen.setdefault(row["fault"].split()[0], {"seen": 0})
        counts["seen"] += 1
        counts[row["client"]] = counts.get(row["client"], 0) + 1
    stopped = sum(1 for loop in loops if loop["loop"].get("stopped"))
    problems.extend(
        f"entry {loop['entry']}: {'stopped: ' if loop['loop'].get('stopped') else ''}{loop['loop']['what']}"
        for loop in loops
        if loop["loop"].get("first")
    )
    return {
        "test_id": test_id,
        "requests": sum(len(chain["attempts"]) for chain in chains),
        "chains": chains,
        "faults": faults,
        "behaviour": behaviour,
        "behaviour_faults": behaviour_seen,
        "loops": loops,
        "loops_stopped": stopped,
        "retries": sum(chain["retries"] for chain in chains),
        "gave_up": sum(chain["gave_up"] for chain in chains),
        "problems": problems,
        "ok": not problems,
    }


def render(data: Mapping[str, Any]) -> str:
    """The report as text, for a terminal or a CI log."""
    scope = f" for test id {data['test_id']!r}" if data.get("test_id") else ""
    verdict = "OK" if data["ok"] else f"{len(data['problems'])} PROBLEM(S)"
    lines = [
        f"resilience report{scope}: {data['requests']} request(s) in {len(data['chains'])} chain(s), "
        f"{data['retries']} retr{'y' if data['retries'] == 1 else 'ies'}, {data['gave_up']} gave up — {verdict}"
    ]
    for number, chain in enumerate(data["chains"], start=1):
        end = "gave up" if chain["gave_up"] else "succeeded"
        lines.append(f"chain {number}: {chain['request']} — {len(chain['attempts'])} attempt(s), {end}")
        for index, row in enumerate(chain["attempts"], start=1):
            waited = ""
            if "waited_ms" in row:
                mark = {True: " >= retry-after", False: " < retry-after!", None: ""}[row.get("honored_retry_after")]
                waited = f" after {row['waited_ms']:g} ms{mark}"
            told = f", retry-after {row['retry_after_ms']:g} ms" if row.get("retry_after_ms") is not None else ""
            lines.append(f"  #{index}{waited}: {row['outcome']}{told}")
        if chain["retries"]:
            lines.append(f"  backoff: {chain['backoff']}")
    if data["faults"]:
        lines.append("failures seen:")
        for name, counts in data["faults"].items():
            lines.append(
                f"  {name}: {counts['seen']} seen, {counts['retried']} retried, "
                f"{counts['honored_retry_after']} retried after the retry-after"
            )
    if data.get("behaviour"):
        lines.append("misbehaving model answers, and what the client did next:")
        lines.extend(f"  entry {row['entry']}: {row['fault']} — {row['client']} ({row['why']})" for row in data["behaviour"])
    if data.get("loops"):
        lines.append("agent loops:")
        lines.extend(f"  entry {loop['entry']}: {loop['loop']['what']}" for loop in data["loops"])
    if data["problems"]:
        lines.append("problems:")
        lines.extend(f"  - {problem}" for problem in data["problems"])
    return "\n".join(lines)
