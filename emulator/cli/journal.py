"""`tokenhub-emulator journal`: a running emulator's request journal, one readable line per request.

    tokenhub-emulator journal [--url URL] [--test-id ID] [--request-id ID] [--follow] [--limit N] [--json]

Each request is the line the server logs (status, model, the rule that answered or the nearest rules and why
each missed, stream chunks, duration, request id), then its error and its timing. `--request-id` looks one
entry up by the `x-request-id` the client saw (or by its journal number). `--follow` keeps printing requests
as they finish, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from types import SimpleNamespace
from typing import Any

from emulator.cli.control_client import Client, ControlApiError, add_client_flags
from emulator.cli.options import integer, option, text
from emulator.server.request_log import RequestLine, line_of, nearest_of, status_text
from emulator.server.request_log import TextFormatter as _TextFormatter

POLL_S = 0.5


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    journal = commands.add_parser(
        "journal",
        help="print a running emulator's request journal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_client_flags(journal)
    option(
        journal,
        "--request-id",
        check=text("a request id"),
        metavar="ID",
        help="only this request: the x-request-id (or request-id) header the client saw, or a journal number",
    )
    option(journal, "--limit", default=50, check=integer(1, 1_000_000), metavar="N", help="the last N requests")
    option(journal, "--follow", boolean=True, help="keep printing requests as they finish, until Ctrl-C")
    option(journal, "--json", boolean=True, help="print the entries as JSON, one a line")
    return journal


def run(args: argparse.Namespace) -> int:
    client = Client(args.url, args.control_token, args.test_id)
    try:
        if args.request_id is not None:
            entry = client.get(f"/journal/{urllib.parse.quote(args.request_id, safe='')}")
            show(entry, args.json, detail=True)
            return 0
        entries = client.get("/journal", limit=args.limit)["data"]
        printed: set[int] = set()
        for entry in entries:
            if args.follow and entry.get("duration_ms") is None:
                continue  # still being answered: printed when it is over
            show(entry, args.json)
            printed.add(entry["id"])
        if not args.follow:
            if not entries and not args.json:
                print("no requests in the journal" + (f" for test id {args.test_id!r}" if args.test_id else ""))
            return 0
        return follow(client, printed, args.json, since=min((e["time"] for e in entries), default=None))
    except ControlApiError as error:
        print(f"tokenhub-emulator journal: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def follow(client: Client, printed: set[int], as_json: bool, since: float | None) -> int:
    while True:
        entries = client.get("/journal", since=since) if since is not None else client.get("/journal")
        entries = entries["data"]
        unfinished = [e["time"] for e in entries if e.get("duration_ms") is None]
        for entry in entries:
            if entry["id"] not in printed and entry.get("duration_ms") is not None:
                show(entry, as_json)
                printed.add(entry["id"])
        if entries:
            since = min(unfinished) if unfinished else max(e["time"] for e in entries)
        sys.stdout.flush()
        time.sleep(POLL_S)


def line_from(entry: dict[str, Any]) -> RequestLine:
    line = line_of(SimpleNamespace(**{**entry, "id": entry.get("id", 0)}))  # type: ignore[arg-type]
    if entry.get("rule") is None and entry.get("action") in ("generated", "fail") and entry.get("misses"):
        line.nearest = nearest_of(entry["misses"])
    return line


def show(entry: dict[str, Any], as_json: bool, detail: bool = False) -> None:
    if as_json:
        print(json.dumps(entry, ensure_ascii=False))
        return
    for line in describe(entry, detail, colour=sys.stdout.isatty()):
        print(line)


def describe(entry: dict[str, Any], detail: bool = False, colour: bool = False) -> list[str]:
    """The entry as the server's log line (with its journal number), then what went wrong and when."""
    line = line_from(entry)
    formatter = _TextFormatter(use_colors=colour)
    lines = [f"#{entry['id']} {formatter.request_text(line)}"]
    for miss in entry.get("misses") or [] if detail or line.nearest is None else []:
        lines.append(f"    missed {miss['rule']!r} ({miss['file']}:{miss['line']}): {'; '.join(miss['reasons'])}")
    error = (entry.get("error") or {}).get("error")
    if isinstance(error, dict) and error.get("message"):
        lines.append(f"    error: {error['message']}")
    timing = []
    if entry.get("first_byte_ms") is not None:
        timing.append(f"first byte {entry['first_byte_ms']:.1f} ms")
    chunks = entry.get("chunk_times_ms") or []
    if entry.get("stream") and chunks:
        timing.append(f"{len(chunks)} chunks from {chunks[0]:.1f} to {chunks[-1]:.1f} ms")
    if detail and timing:
        lines.append("    timing: " + ", ".join(timing))
    if detail:
        lines.append(f"    status: {status_text(entry.get('status'))}; action: {entry.get('action')}")
        if isinstance(entry.get("body"), dict):
            lines.append("    body: " + json.dumps(entry["body"], ensure_ascii=False)[:500])
    return lines
