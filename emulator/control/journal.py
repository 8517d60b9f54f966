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


async def recorded(runtime: Runtime, test_id: str | None = None) -> list[Entry]:
    """The journal's entries of one test id (None: all): this process's, or the shared journal's (--state)."""
    if runtime.shared is not None:
        return await runtime.shared.entries(test_id)
    return runtime.journal.entries(test_id=test_id)


async def clear(runtime: Runtime, test_id: str | None) -> None:
    runtime.journal.clear(test_id)
    if runtime.shared is not None:
        await runtime.shared.clear_journal(test_id)


async def select(
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
    wanted = {"path": path, "status": status, "rule": rule, "protocol": protocol, "request_id": request_id}
    entries = [
        e for e in await recorded(runtime, test_id) if all(v is None or getattr(e, k) == v for k, v in wanted.items())
    ]
    if since is not None:
        entries = [e for e in entries if e.time >= since]
    return entries[-limit:] if limit else entries


def entry_body(runtime: Runtime, entry: Entry) -> dict[str, Any]:
    if not entry.misses and entry.rule is None and entry.action in UNMATCHED_ACTIONS:
        entry.misses = runtime.explain(entry)
    return entry.as_dict()
