"""Random ids with the bits of a version-4 UUID, at a fraction of `uuid.uuid4()`'s cost per call.

`uuid.uuid4()` reads 16 bytes from the kernel (a system call) and builds a `UUID` object for every id; the
request path makes two or three ids a request. The ids here only need to be unique, not unguessable, so they
come from a private Mersenne Twister seeded from the kernel (again in a forked child): `uuid4_int()` has the
bits of `uuid.uuid4().int`, `uuid4_hex()` of its `.hex`, `uuid4_str()` of its `str()`.
"""

from __future__ import annotations

import os
import random

_CLEAR = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)  # the variant and version fields
_SET = (0x8000 << 48) | (4 << 76)  # RFC 4122 variant, version 4

_random = random.Random()  # seeded from os.urandom; never the global `random`, which tests and users seed
_bits = _random.getrandbits
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random.seed)  # a child does not repeat its parent's ids


# fast path: mirrors uuid.uuid4; pinned by tests/unit/server/test_fastpaths.py::test_ids_have_the_bits_of_uuid4
def uuid4_int() -> int:
    return (_bits(128) & _CLEAR) | _SET


def uuid4_hex() -> str:
    return "%032x" % ((_bits(128) & _CLEAR) | _SET)


def uuid4_str() -> str:
    h = "%032x" % ((_bits(128) & _CLEAR) | _SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
