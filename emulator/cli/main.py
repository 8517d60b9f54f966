"""`tokenhub-emulator serve | validate | init | journal | record | report`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from emulator import __version__
from emulator.cli import limits as cli_limits
from emulator.cli import record, traffic
from emulator.cli import report as cli_report
from emulator.cli.options import (
    FlagError,
    Parser,
    add_log_flags,
    add_server_flags,
    apply_environment,
    choice,
    integer,
    option,
    text,
)
from emulator.cli.serving import cannot_listen, runtime_or_none, serve_on, url_of
from emulator.config import METRICS_MODES, Settings, env_name
from emulator.profiles import PROFILES

FALLBACKS = ("generate", "error")
PROG = "tokenhub-emulator"


def _path(value: str) -> Path:
    if not value.strip():
        raise ValueError("expected a file or folder")
    return Path(value)


def _state_url(value: str) -> str:
    from emulator.state.url import checked_state_url

    return checked_state_url(value)


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    defaults = Settings()
    parser = Parser(
        prog=PROG,
        description="An offline emulator of LLM gateway APIs, scripted by YAML scenarios.",
        epilog=f"Every option can also be set by an environment variable, e.g. {env_name('port')}=8080; "
        "`COMMAND --help` lists them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the emulated gateway", description="Serve the emulated gateway.")
    add_server_flags(serve)
    option(
        serve,
        "--scenario",
        action="append",
        check=_path,
        separator=os.pathsep,
        metavar="PATH",
        shown_default="none: every answer is generated",
        help=f"scenario file or folder; repeat for more (the variable: paths separated by '{os.pathsep}')",
    )
    option(
        serve,
        "--scenario-root",
        action="append",
        check=_path,
        separator=os.pathsep,
        metavar="DIR",
        shown_default="the --scenario folders",
        help="a folder the control API may load scenario paths from; repeat for more "
        f"(the variable: paths separated by '{os.pathsep}')",
    )
    option(serve, "--seed", default=0, check=integer(0, 2**63 - 1), metavar="N", help="seed for generated replies")
    add_log_flags(serve)
    option(
        serve,
        "--api-key",
        action="append",
        check=text("an API key"),
        separator=",",
        variable=env_name("api_keys"),
        metavar="KEY",
        shown_default="any non-empty key",
        help="accept only these keys; repeat for more (the variable: comma-separated)",
    )
    option(
        serve,
        "--max-body-bytes",
        default=defaults.max_body_bytes,
        check=integer(1, None, "a number of bytes"),
        metavar="N",
        help="a larger request body gets a 413",
    )
    option(
        serve,
        "--fallback",
        check=choice(FALLBACKS),
        metavar="|".join(FALLBACKS),
        shown_default="the scenarios' settings.fallback, else generate",
        help="when no rule matches: a generated reply, or a 400 naming the nearest rules",
    )
    option(
        serve,
        "--profile",
        check=choice(sorted(PROFILES)),
        metavar="NAME",
        shown_default="the scenarios' settings.profile, else tokenhub",
        help=f"which documented gateway to be: {', '.join(sorted(PROFILES))}",
    )
    option(
        serve,
        "--control-token",
        check=text("a token"),
        metavar="TOKEN",
        help="token the /_emulator/ control API requires; needed to use it beyond loopback "
        "(prefer the variable: flags show in process lists)",
    )
    option(
        serve,
        "--metrics",
        default=defaults.metrics,
        check=choice(METRICS_MODES),
        metavar="|".join(METRICS_MODES),
        help="GET /metrics for Prometheus: guarded as the control API is (open on loopback, else the control "
        "token), open to anyone who reaches the port, or off",
    )
    option(
        serve,
        "--watch",
        boolean=True,
        help="reload scenario files when they change; a file with errors keeps the previous version serving",
    )
    option(
        serve,
        "--workers",
        default=1,
        check=integer(1, 1024),
        metavar="N",
        help="processes serving the port; more than one share their state through Redis (--state, else an "
        "embedded redis-server)",
    )
    option(
        serve,
        "--state",
        check=_state_url,
        metavar="URL",
        shown_default="in memory",
        help="keep state shared by workers and replicas in Redis: redis://HOST:6379/0, rediss://…, "
        "unix:///path/redis.sock?db=0",
    )
    traffic.add_serve_flags(serve)
    cli_limits.add_serve_flags(serve)

    validate = commands.add_parser(
        "validate",
        help="check scenario files without serving",
        description="Check scenario files: exit 0 when every file is good (warnings are printed), 1 otherwise.",
    )
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="scenario files or folders")

    from emulator.cli import init as cli_init
    from emulator.cli import journal as cli_journal

    init = cli_init.add_parser(commands)
    journal = cli_journal.add_parser(commands)
    recording = record.add_parser(commands)
    report = cli_report.add_parser(commands)
    return parser, {
        "serve": serve,
        "validate": validate,
        "init": init,
        "journal": journal,
        "record": recording,
        "report": report,
    }


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The arguments of a command line, options not given taken from their environment variables;
    raises FlagError for a wrong value (argparse's own errors exit 2)."""
    parser, commands = _parser()
    args = parser.parse_args(argv)
    return apply_environment(commands[args.command], args)


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        host=args.host,
        port=args.port,
        scenarios=list(args.scenario or []),
        seed=args.seed,
        log_level=args.log_level,
        log_format=args.log_format,
        api_keys=list(args.api_key or []),
        max_body_bytes=args.max_body_bytes,
        fallback=args.fallback,
        profile=args.profile,
        control_token=args.control_token or None,
        watch=bool(args.watch),
        metrics=args.metrics,
        timing=traffic.timing_from_args(args),
        rate_limits=traffic.rate_limits_from_args(args),
        loop_guard=traffic.loop_guard_from_args(args),
        scenario_roots=list(args.scenario_root) if args.scenario_root else None,
        state=args.state or None,
        workers=args.workers,
        **cli_limits.limits_from_args(args),
    )


def serve(settings: Settings) -> int:
    from dataclasses import replace

    from emulator.server.listener import listening_socket

    if settings.metrics != "off":
        from emulator.server.metrics import multiprocess_problem

        unusable = multiprocess_problem()
        if unusable is not None:
            print(
                f"tokenhub-emulator: cannot serve /metrics: {unusable} (or start with --metrics off)", file=sys.stderr
            )
            return 2
    if settings.state is not None:
        problem = _unreachable(settings.state)
        if problem is not None:
            print(f"tokenhub-emulator: {problem}", file=sys.stderr)
            return 2
    if settings.workers == 1:
        try:
            sock = listening_socket(settings.host, settings.port)
        except OSError as exc:
            return cannot_listen(settings, exc)
        return serve_on(settings, sock)
    from emulator.cli.workers import serve_workers

    parent = runtime_or_none(replace(settings, state=None))  # the scenarios checked once, before any worker starts
    if parent is None:
        return 2
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        return cannot_listen(settings, exc)
    url = url_of(sock)

    def announce(embedded: str | None) -> None:
        print(f"tokenhub-emulator listening on {url}", flush=True)  # the first line: tools read the URL from it
        state = embedded or _shown_state(settings.state)
        print(f"{settings.workers} workers, shared state: {state}", flush=True)

    return serve_workers(settings, sock, announce)


def _unreachable(url: str) -> str | None:
    """None when Redis at `url` answers; else one line saying why not."""
    import asyncio

    from emulator.state.redis_state import RedisState, StateUnavailable

    async def ping() -> None:
        state = RedisState(url, journal_entries=1, journal_bytes=1, store_bytes=1, ttl_s=1)
        try:
            await state.check()
        finally:
            await state.close()

    try:
        asyncio.run(ping())
    except StateUnavailable as error:
        return f"cannot reach the shared state (--state): {str(error).partition(' is unavailable: ')[2] or error}"
    return None


def _shown_state(url: str | None) -> str:
    from emulator.state.url import shown_url

    return shown_url(url) if url else "in memory"


def validate(paths: Sequence[Path]) -> int:
    from emulator.scenarios import validate_paths
    from emulator.scenarios.lint import scenario_warnings

    problems = validate_paths(paths)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    warnings = scenario_warnings(paths)
    for warning in warnings:
        print(f"{warning.file}:{warning.line}:{warning.column}: warning: {warning.message}")
    shown = ", ".join(str(p) for p in paths)
    print(f"ok: {shown}" + (f" ({len(warnings)} warning(s))" if warnings else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = _parser()
    args = parser.parse_args(argv)
    command = commands[args.command]
    try:
        apply_environment(command, args)
        if args.command == "validate":
            return validate(args.paths)
        if args.command == "init":
            from emulator.cli import init as cli_init

            return cli_init.run(args)
        if args.command == "journal":
            from emulator.cli import journal as cli_journal

            return cli_journal.run(args)
        if args.command == "record":
            return record.run(args)
        if args.command == "report":
            return cli_report.run(args)
        return serve(settings_from(args))
    except FlagError as error:
        print(f"{command.prog}: error: {error} (see {command.prog} --help)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
