"""Every hot-path shortcut is marked `# fast path: mirrors <what>; pinned by <test>`, names a test that exists,
is listed in docs/architecture.md, and — where it mirrors Starlette, uvicorn or the standard library — fails
here when the mirrored code changes in a new release, naming what to re-check."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re

import pytest

from tests.helpers.servers import ROOT

MARKER = re.compile(r"# fast path: mirrors (?P<what>.+?); pinned by (?P<test>tests/\S+\.py)::(?P<name>\w+)\s*$")

# The upstream code each shortcut stands in for, by the digest of its source when it was last checked against it
# (starlette 1.10.0, uvicorn 0.55.0, CPython 3.11). When one fails: read the new source, bring the shortcut named
# in the message in step (or drop it), then record the new digest.
UPSTREAM = {
    "starlette.datastructures:Headers": ("5cd4e6c943fba55a", "emulator/server/front.py RequestHeaders"),
    "starlette.requests:Request.__init__": ("24eda86b17e544d0", "emulator/server/front.py FrontRequest"),
    "starlette.applications:Starlette.build_middleware_stack": ("aca3f8e780a2be62", "emulator/server/front.py Front.build_middleware_stack"),
    "starlette._exception_handler:wrap_app_handling_exceptions": ("d5e41f0fa794c0a8", "emulator/server/front.py the direct endpoint call's exception handling"),
    "starlette.responses:JSONResponse": ("25a260207f8fd0ad", "emulator/http.py JsonBody"),
    "starlette.responses:Response.init_headers": ("9b5dd969a77f695f", "emulator/http.py JsonBody"),
    "json:dumps": ("2aeed87f2853842e", "emulator/http.py dumps"),
    "uuid:uuid4": ("ae640e57bb3d3d9d", "emulator/ids.py uuid4_int"),
    "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.on_message_begin": ("96d377fdc7c2baef", "emulator/server/transport.py LimitedProtocol.on_message_begin"),
    "uvicorn.protocols.http.h11_impl:H11Protocol.handle_events": ("278f2d7efca279a3", "emulator/server/transport.py H11TransportProtocol.handle_events"),
    "uvicorn.protocols.http.httptools_impl:RequestResponseCycle.send": ("abdd8601b326a8da", "emulator/server/delivery.py _Pump"),
}


def markers() -> list[tuple[str, int, re.Match[str]]]:
    found = []
    for path in sorted((ROOT / "emulator").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "# fast path" in line:
                match = MARKER.search(line)
                assert match, f"{path.relative_to(ROOT)}:{number}: write it `# fast path: mirrors <what>; pinned by <test>`"
                found.append((str(path.relative_to(ROOT)), number, match))
    return found


def source_digest(name: str) -> str:
    module, qualname = name.split(":")
    value = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return hashlib.sha256(inspect.getsource(value).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_the_upstream_code_each_fast_path_mirrors_is_unchanged(name: str):
    digest, ours = UPSTREAM[name]
    assert source_digest(name) == digest, f"{name} changed upstream: re-check {ours} against it, then record its new digest here"


def test_every_marker_names_a_test_that_exists_and_is_in_the_map():
    found = markers()
    assert len(found) >= 12
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for path, number, match in found:
        test_file = ROOT / match["test"]
        assert test_file.is_file(), f"{path}:{number}: no {match['test']}"
        assert re.search(rf"^(async )?def {match['name']}\(", test_file.read_text(encoding="utf-8"), re.M), (
            f"{path}:{number}: {match['test']} has no {match['name']}"
        )
        assert f"`{path}`" in doc and match["what"] in doc, f"{path}:{number}: list it in docs/architecture.md"


def test_every_upstream_pin_is_named_by_a_marker():
    mirrored = " ".join(match["what"] for _, _, match in markers())
    for name in UPSTREAM:
        module, qualname = name.split(":")
        assert qualname.split(".")[0] in mirrored, f"{name} is pinned but no `# fast path` marker mirrors it"
