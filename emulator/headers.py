"""What can be sent as an HTTP header: shared by scenario files and the control API."""

from __future__ import annotations

import re
from typing import Any

TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field-name


def header_problem(name: Any, value: Any) -> str | None:
    """Why (name, value) cannot be sent as an HTTP header, or None: a token name, a value of visible ASCII, spaces
    and tabs (RFC 9110 5.5: other bytes are obsolete, and clients decode them differently or refuse them)."""
    if not isinstance(name, str) or not TOKEN.fullmatch(name):
        return f"header name {name!r} is not a valid HTTP header name"
    if not isinstance(value, str):
        return f"header {name!r} must have a string value, got {type(value).__name__}"
    if not all(" " <= c <= "~" or c == "\t" for c in value):
        return f"header {name!r} has a value that cannot be sent (line breaks, control or non-ASCII characters)"
    return None
