"""Journal entries as the control API serves them, with why no rule matched worked out when it is read.

Explaining a miss costs a pass over every rule, so the request path does not do it: an entry answered by
the generate fallback keeps its body and headers, and the explanation (Runtime.explain) is worked out from
them here, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulator.journal import Entry

if TYPE_CHECKING:
    from emulator.server.runtime import Runtime

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
        entry.misses = runtime.explain(entry)
    return entry.as_dict()
