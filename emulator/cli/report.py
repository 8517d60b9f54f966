"""`tokenhub-emulator report`: the resilience report of a running emulator — how the client behaved under the
faults it was given. Exit status: 0 good, 1 problems, 2 no report."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from emulator.cli.control_client import add_client_flags
from emulator.cli.options import option
from emulator.names import CONTROL_PREFIX, CONTROL_TOKEN_HEADER


def add_parser(commands: Any) -> argparse.ArgumentParser:
    report = commands.add_parser(
        "report",
        help="print the resilience report of a running emulator (exit 1 when the client misbehaved)",
        description="How the client behaved under the faults it was given: retries, waits against retry-after, "
        "backoff, retried non-retryable errors, giving up. Exit status: 0 good, 1 problems, 2 no report.",
    )
    add_client_flags(report)
    option(report, "--json", boolean=True, help="print the report as JSON")
    return report


def run(args: argparse.Namespace) -> int:
    from emulator.faults.report import render

    url = args.url.rstrip("/") + CONTROL_PREFIX + "/report"
    if args.test_id is not None:
        url += "?" + urllib.parse.urlencode({"test_id": args.test_id})
    request = urllib.request.Request(url, headers={"accept": "application/json"})
    if args.control_token:
        request.add_header(CONTROL_TOKEN_HEADER, args.control_token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the user's own URL
            data = json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")[:500]
        print(f"tokenhub-emulator: {url} answered {error.code}: {detail}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"tokenhub-emulator: cannot get the report from {url}: {error}", file=sys.stderr)
        return 2
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else render(data))
    return 0 if data.get("ok") else 1
