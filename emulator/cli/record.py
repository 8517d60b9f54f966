"""`tokenhub-emulator record`: proxy a real gateway, write what it answers as a scenario, replay it offline.

    tokenhub-emulator record --upstream https://gateway.example.com --out recorded.yaml [--mode once|new|replay]

Modes, as VCR names them:
  once    record every request if FILE does not exist yet; otherwise replay it only (the default)
  new     replay what FILE knows, record what it does not
  replay  replay only; a request never recorded is an error naming the nearest recordings
The recording is an ordinary scenario file: `tokenhub-emulator serve --scenario FILE` replays it too.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from emulator.config import Settings
from emulator.record import DEFAULT_MAX_BYTES, DEFAULT_MAX_S, MODES


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from emulator.cli.options import (
        add_log_flags,
        add_server_flags,
        choice,
        http_url,
        integer,
        number,
        option,
        variable_name,
        writable_file,
    )

    record = commands.add_parser(
        "record",
        help="proxy a real gateway and record its answers as a scenario (or replay them)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    option(
        record,
        "--upstream",
        check=http_url,
        metavar="URL",
        help="root URL of the gateway to record, http:// or https:// (not needed for --mode replay)",
    )
    option(record, "--out", check=writable_file, metavar="FILE", help="the scenario file to write (required)")
    option(record, "--mode", default="once", check=choice(MODES), metavar="|".join(MODES), help="see above")
    add_server_flags(record)
    option(
        record,
        "--upstream-key-env",
        check=variable_name,
        metavar="VAR",
        help="send the key in this environment variable upstream instead of the client's own",
    )
    option(
        record,
        "--max-record-bytes",
        default=DEFAULT_MAX_BYTES,
        check=integer(1),
        metavar="N",
        help="an upstream answer larger than this (a compressed one inflated) is passed on but not recorded",
    )
    option(
        record,
        "--max-record-seconds",
        default=DEFAULT_MAX_S,
        check=number(0),
        metavar="S",
        help="an upstream answer that takes longer is cut off and not recorded",
    )
    add_log_flags(record)
    return record


def run(args: argparse.Namespace) -> int:
    from emulator.cli.options import FlagError
    from emulator.record.cassette import Cassette
    from emulator.record.proxy import Recorder, shown_upstream
    from emulator.scenarios import ScenarioError
    from emulator.server.app import build_app
    from emulator.server.listener import GracefulServer, listening_socket, server_config
    from emulator.server.request_log import logging_config
    from emulator.server.runtime import Runtime

    if args.out is None:
        raise FlagError("--out FILE is required: the scenario file to write or replay")
    if args.upstream_key_env and args.upstream_key_env not in os.environ:
        raise FlagError(f"--upstream-key-env: the variable {args.upstream_key_env} is not set")
    out: Path = args.out
    exists = out.exists()
    replay_only = args.mode == "replay" or (args.mode == "once" and exists)
    if args.mode == "replay" and not exists:
        print(f"tokenhub-emulator record: no recording at {out} to replay", file=sys.stderr)
        return 2
    if not replay_only and not args.upstream:
        print("tokenhub-emulator record: --upstream URL is needed to record", file=sys.stderr)
        return 2
    settings = Settings(
        host=args.host, port=args.port, scenarios=[out] if exists else [], fallback="error", log_level=args.log_level
    )
    try:
        runtime = Runtime.from_settings(settings)
        cassette = Cassette.open(out, shown_upstream(args.upstream or ""))
    except ScenarioError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"tokenhub-emulator record: {error}", file=sys.stderr)
        return 2
    key = os.environ.get(args.upstream_key_env) if args.upstream_key_env else None
    recorder = Recorder(
        runtime,
        build_app(settings, runtime),
        cassette,
        args.upstream or "",
        record_all=args.mode == "once" and not exists,
        replay_only=replay_only,
        upstream_key=key,
        max_bytes=args.max_record_bytes,
        max_s=args.max_record_seconds,
    )
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as error:
        print(f"tokenhub-emulator: cannot listen on {settings.host}:{settings.port}: {error.strerror}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    doing = "replaying" if replay_only else f"recording {shown_upstream(args.upstream)} ({args.mode})"
    log_config = logging_config(settings.log_level, args.log_format)
    config = server_config(
        recorder, settings, runtime.error_body, log_config=log_config, access_log=False, lifespan="off"
    )
    print(f"tokenhub-emulator {doing} to {out}, listening on http://{host}:{port}", flush=True)
    GracefulServer(config).run(sockets=[sock])
    return 0
