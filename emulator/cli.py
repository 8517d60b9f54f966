"""`tokenhub-emulator serve` and `tokenhub-emulator validate`."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from emulator import __version__, cli_faults, cli_limits, record
from emulator.config import LOG_LEVELS, Settings, env_default, env_name, split_list
from emulator.profiles import PROFILES

FALLBACKS = ("generate", "error")


def _int_env(setting: str, default: int) -> int:
    raw = env_default(setting)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"tokenhub-emulator: {env_name(setting)} must be an integer, got {raw!r}") from None


def _parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="tokenhub-emulator",
        description="An offline emulator of LLM gateway APIs, scripted by YAML scenarios.",
        epilog=f"Every serve flag can also be set by an environment variable, e.g. {env_name('port')}=8080.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the emulated gateway")
    serve.add_argument("--host", default=env_default("host", defaults.host), help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=_int_env("port", defaults.port), help="port to bind; 0 picks a free one"
    )
    serve.add_argument(
        "--scenario",
        action="append",
        type=Path,
        metavar="PATH",
        help=f"scenario file or folder; repeat for more ({env_name('scenario')}: paths separated by '{os.pathsep}')",
    )
    serve.add_argument(
        "--scenario-root",
        action="append",
        type=Path,
        metavar="DIR",
        help="a folder the control API may load scenario paths from; repeat for more "
        f"(default: the --scenario folders; {env_name('scenario_root')}: paths separated by '{os.pathsep}')",
    )
    serve.add_argument("--seed", type=int, default=_int_env("seed", defaults.seed), help="seed for generated replies")
    serve.add_argument(
        "--log-level", default=env_default("log_level", defaults.log_level), choices=LOG_LEVELS, type=str.lower
    )
    serve.add_argument(
        "--api-key",
        action="append",
        metavar="KEY",
        help=f"accept only these keys; repeat for more ({env_name('api_keys')}: comma-separated). Default: any key",
    )
    serve.add_argument(
        "--max-body-bytes", type=int, default=_int_env("max_body_bytes", defaults.max_body_bytes), metavar="N"
    )
    serve.add_argument(
        "--fallback",
        choices=FALLBACKS,
        default=env_default("fallback", defaults.fallback),
        help="when no rule matches: a generated reply or an error naming the nearest rules "
        "(default: the scenarios' settings.fallback, else generate)",
    )

    serve.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=env_default("profile", defaults.profile),
        help="which documented gateway to be (default: the scenarios' settings.profile, else tokenhub)",
    )

    serve.add_argument(
        "--control-token",
        default=env_default("control_token"),
        metavar="TOKEN",
        help=f"token the /_emulator/ control API requires; needed to use it beyond loopback "
        f"(prefer {env_name('control_token')}: flags show in process lists)",
    )
    serve.add_argument(
        "--watch",
        action="store_true",
        default=env_default("watch", "") in ("1", "true", "yes"),
        help="reload scenario files when they change; a file with errors keeps the previous version serving",
    )

    cli_faults.add_serve_flags(serve)
    cli_limits.add_serve_flags(serve)

    validate = commands.add_parser("validate", help="check scenario files without serving")
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    record.add_parser(commands)
    cli_faults.add_report_parser(commands)
    return parser


def _env_paths(setting: str) -> list[Path]:
    return [Path(p) for p in split_list(env_default(setting), os.pathsep)]


def settings_from(args: argparse.Namespace) -> Settings:
    scenarios = args.scenario or _env_paths("scenario")
    if args.fallback is not None and args.fallback not in FALLBACKS:
        raise SystemExit(f"tokenhub-emulator: fallback must be one of {', '.join(FALLBACKS)}, got {args.fallback!r}")
    if args.profile is not None and args.profile not in PROFILES:
        raise SystemExit(
            f"tokenhub-emulator: profile must be one of {', '.join(sorted(PROFILES))}, got {args.profile!r}"
        )
    if args.log_level not in LOG_LEVELS:
        raise SystemExit(f"tokenhub-emulator: log level must be one of {', '.join(LOG_LEVELS)}")
    return Settings(
        host=args.host,
        port=args.port,
        scenarios=scenarios,
        seed=args.seed,
        log_level=args.log_level,
        api_keys=args.api_key or split_list(env_default("api_keys")),
        max_body_bytes=args.max_body_bytes,
        fallback=args.fallback,
        profile=args.profile,
        control_token=args.control_token or None,
        watch=args.watch,
        timing=cli_faults.timing_from_args(args),
        rate_limits=cli_faults.rate_limits_from_args(args),
        scenario_roots=args.scenario_root or _env_paths("scenario_root") or None,
        **cli_limits.limits_from_args(args),
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> int:
    from emulator.app import Runtime, build_app, error_body_for
    from emulator.scenarios import ScenarioError
    from emulator.server import GracefulServer, server_config
    from emulator.streaming import steady_gc

    try:
        runtime = Runtime.from_settings(settings)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    try:
        sock = _bind(settings.host, settings.port)
    except OSError as exc:
        print(f"tokenhub-emulator: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    app = build_app(settings, runtime)
    steady_gc()  # no collector pauses in the middle of timed streams
    config = server_config(app, settings, error_body_for(runtime))
    if settings.watch:
        from emulator.watch import WatchingServer

        server: GracefulServer = WatchingServer(config, runtime)
    else:
        server = GracefulServer(config)
    print(f"tokenhub-emulator listening on http://{shown_host}:{port}", flush=True)
    server.run(sockets=[sock])  # uvicorn picks the event loop (uvloop) as `uvicorn.run` would
    return 0


def validate(paths: Sequence[Path]) -> int:
    from emulator.scenarios import validate_paths

    problems = validate_paths(paths)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"ok: {', '.join(str(p) for p in paths)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return validate(args.paths)
    if args.command == "record":
        return record.run(args)
    if args.command == "report":
        return cli_faults.run_report(args)
    return serve(settings_from(args))


if __name__ == "__main__":
    sys.exit(main())
