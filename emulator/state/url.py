"""The --state URL: where the shared state lives (Redis), checked before anything starts."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

SCHEMES = ("redis", "rediss", "unix")
EXAMPLE = "redis://HOST:6379/0 (or unix:///path/to/redis.sock?db=0)"


class StateUrlError(ValueError):
    pass


def checked_state_url(url: str) -> str:
    """The URL as given when redis-py can use it; StateUrlError saying what is wrong otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise StateUrlError(f"{url!r} is not a valid URL ({error}); expected {EXAMPLE}") from None
    if parts.scheme not in SCHEMES:
        raise StateUrlError(f"{url!r} is not a Redis URL; expected {EXAMPLE}")
    if parts.scheme == "unix":
        if not parts.path:
            raise StateUrlError(f"{url!r} names no socket path; expected {EXAMPLE}")
        db = parse_qs(parts.query).get("db", ["0"])[0]
    else:
        if not parts.hostname:
            raise StateUrlError(f"{url!r} names no host; expected {EXAMPLE}")
        db = parts.path.strip("/") or "0"
        if port == 0:
            raise StateUrlError(f"{url!r}: port 0 is not a Redis port")
    if not db.isdigit():
        raise StateUrlError(f"{url!r}: the database must be a number, got {db!r}")
    return url


def shown_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
