"""Command-line options with an environment variable each, checked values and one-line errors.

Every option of every subcommand is added with `option(...)`: its help shows the default and the variable
(`TOKENHUB_EMULATOR_<FLAG>`), the flag wins over the variable, and both go through the same check. A wrong
value is one line on stderr and exit status 2, as argparse does for its own errors, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from emulator.config import LOG_LEVELS, env_name
from emulator.server.request_log import LOG_FORMATS

Check = Callable[[str], Any]  # text → value; raises ValueError with what was expected


class FlagError(Exception):
    """A value the command line or its environment gave that cannot be used; exits 2 with one line."""


class Parser(argparse.ArgumentParser):
    """argparse's parser with a one-line error: `tokenhub-emulator serve: error: … (see --help)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class EnvOption:
    dest: str
    flag: str
    variable: str
    check: Check | None
    default: Any
    boolean: bool
    separator: str | None  # a repeatable option: its variable holds the values separated by this


def option(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    help: str,
    default: Any = None,
    shown_default: str | None = None,
    check: Check | None = None,
    variable: str | None = None,
    boolean: bool = False,
    separator: str | None = None,
    group: argparse._ArgumentGroup | None = None,
    **kwargs: Any,
) -> None:
    """Add `--flag` (to `group` of `parser`, when given) with its variable; `check` turns the text of the flag
    or of the variable into the value."""
    setting = flag.lstrip("-").replace("-", "_")
    variable = variable or env_name(setting)
    if shown_default is None:
        shown_default = "off" if boolean else ("none" if default is None else str(default))
    text = f"{help} (default: {shown_default}; env {variable})"
    target = group or parser
    if boolean:
        target.add_argument(flag, action="store_const", const=True, default=None, help=text, **kwargs)
    else:
        if check is not None:
            kwargs["type"] = _argparse_check(check)
        target.add_argument(flag, default=None, help=text, **kwargs)
    options: list[EnvOption] = parser.__dict__.setdefault("env_options", [])
    dest = kwargs.get("dest", setting)
    options.append(EnvOption(dest, flag, variable, check, default, boolean, separator))


def _argparse_check(check: Check) -> Check:
    def convert(text: str) -> Any:
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = getattr(check, "__name__", "value")
    return convert


def apply_environment(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Options not given on the command line: from their variable (checked), else their default."""
    for spec in parser.__dict__.get("env_options", []):
        if getattr(args, spec.dest, None) is not None:
            continue
        raw = os.environ.get(spec.variable)
        if raw is None or (raw == "" and not spec.boolean):
            setattr(args, spec.dest, spec.default)
            continue
        try:
            if spec.boolean:
                value: Any = boolean(raw)
            elif spec.separator is not None:
                items = [item.strip() for item in raw.split(spec.separator) if item.strip()]
                value = [spec.check(item) if spec.check else item for item in items] or spec.default
            else:
                value = spec.check(raw) if spec.check else raw
        except ValueError as error:
            raise FlagError(f"{spec.variable} (for {spec.flag}): {error}") from None
        setattr(args, spec.dest, value)
    return args


# ---------------------------------------------------------------- checks


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected 1/true/yes or 0/false/no, got {text!r}")


def integer(low: int | None = None, high: int | None = None, what: str = "an integer") -> Check:
    def check(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"expected {_range(what, low, high)}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"expected {_range(what, low, high)}, got {value}")
        return value

    check.__name__ = what
    return check


def _range(what: str, low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"{what} from {low:,} to {high:,}".replace(",", "_") if high > 10**6 else f"{what} from {low} to {high}"
    if low is not None:
        return f"{what} of at least {low}"
    return what


def number(low: float, what: str = "a number") -> Check:
    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= low:
            raise ValueError(f"expected {what} above {low:g}, got {text!r}")
        return value

    return check


def choice(options: Sequence[str]) -> Check:
    def check(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {text!r}")
        return lowered

    check.__name__ = "choice"
    return check


def text(what: str) -> Check:
    """A non-empty value of printable characters without spaces (it travels in headers and URLs)."""

    def check(value: str) -> str:
        if not value or not value.isprintable() or any(c.isspace() for c in value):
            raise ValueError(f"expected {what}: printable characters without spaces, got {value!r}")
        return value

    return check


def host(value: str) -> str:
    if not value.strip() or any(c.isspace() for c in value) or "/" in value:
        raise ValueError(f"expected a host name or an IP address, got {value!r}")
    return value.strip("[]") if value.startswith("[") else value


def http_url(value: str) -> str:
    """An http:// or https:// URL with a host (what a client would be pointed at)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        hint = f" (did you mean http://{value}?)" if "://" not in value and value.strip() else ""
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}{hint}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValueError(f"the port of {value!r} is not a number from 0 to 65535") from None
    return value.strip()


def variable_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(f"expected an environment variable name, got {value!r}")
    return value


def writable_file(value: str) -> Path:
    path = Path(value)
    if not value.strip():
        raise ValueError("expected a file name")
    if path.is_dir():
        raise ValueError(f"{value} is a folder; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"no folder {folder} to write {path.name} in")
    return path


PORT = integer(0, 65535, "a port")


def add_log_flags(parser: argparse.ArgumentParser) -> None:
    option(
        parser,
        "--log-level",
        default="info",
        check=choice(LOG_LEVELS),
        metavar="LEVEL",
        help=f"what to log: {', '.join(LOG_LEVELS)}",
    )
    option(
        parser,
        "--log-format",
        default="text",
        check=choice(LOG_FORMATS),
        metavar="FORMAT",
        help="text (uvicorn's style, coloured on a terminal) or json (one object a line, for CI)",
    )


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    option(parser, "--host", default="127.0.0.1", check=host, metavar="ADDRESS", help="address to bind")
    option(parser, "--port", default=8000, check=PORT, metavar="N", help="port to bind; 0 picks a free one")
