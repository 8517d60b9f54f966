"""What can be sent as an HTTP header: shared by scenario files and the control API."""

from __future__ import annotations

import re
from typing import Any

TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field-name


def header_problem(name: Any, value: Any) -> str | None:
    """Why (name, value) cannot be sent as an HTTP header, or None: a token name, a latin-1 value on one line."""
    if not isinstance(name, str) or not TOKEN.fullmatch(name):
        return f"header name {name!r} is not a valid HTTP header name"
    if not isinstance(value, str):
        return f"header {name!r} must have a string value, got {type(value).__name__}"
    if any(c in value for c in "\r\n\0") or not all(ord(c) < 256 for c in value):
        return f"header {name!r} has a value that cannot be sent (line breaks, NUL or characters beyond latin-1)"
    return None
