"""Journal entries as the control API serves them, with why no rule matched worked out when it is read.

Explaining a miss costs a pass over every rule, so the request path does not do it: an entry answered by
the generate fallback keeps its body and headers, and the explanation is computed from them here, once.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from emulator.errors import ApiError
from emulator.journal import SECRET_HEADERS, Entry
from emulator.scenarios.engine import NEAREST_SHOWN
from emulator.scenarios.regexes import matching

if TYPE_CHECKING:
    from emulator.server.app import Runtime

UNMATCHED_ACTIONS = frozenset({"generated"})


def select(
    runtime: Runtime,
    *,
    test_id: str | None = None,
    path: str | None = None,
    status: int | None = None,
    rule: str | None = None,
    protocol: str | None = None,
    request_id: str | None = None,
    since: float | None = None,
    limit: int | None = None,
) -> list[Entry]:
    entries = runtime.journal.entries(
        test_id=test_id, path=path, status=status, rule=rule, protocol=protocol, request_id=request_id
    )
    if since is not None:
        entries = [e for e in entries if e.time >= since]
    return entries[-limit:] if limit else entries


def entry_body(runtime: Runtime, entry: Entry) -> dict[str, Any]:
    if not entry.misses and entry.rule is None and entry.action in UNMATCHED_ACTIONS:
        entry.misses = explain(runtime, entry)
    return entry.as_dict()


def explain(runtime: Runtime, entry: Entry) -> list[dict[str, Any]]:
    """The nearest rules and why each missed, from the journaled request (the rules loaded now)."""
    adapter = next((a for a in runtime.adapters if a.protocol == entry.protocol), None)
    if adapter is None or not isinstance(entry.body, dict):
        return []
    headers = [
        (name.encode("latin-1"), value.encode("latin-1", "replace"))
        for name, value in entry.headers.items()
        if name not in SECRET_HEADERS
    ]
    request = Request({"type": "http", "method": entry.method, "path": entry.path, "headers": headers})
    try:
        exchange, _ = adapter.parse(entry.body, request, "", runtime.context)
    except (ApiError, NotImplementedError):
        return []
    with matching(runtime.settings.match_budget_ms / 1000):
        return [asdict(miss) for miss in runtime.engine.explain(exchange, NEAREST_SHOWN)]
