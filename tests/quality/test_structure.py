"""The package's shape, checked from its import graph (built by AST, `if TYPE_CHECKING:` imports included), and
the test tree's: every module imports alone and in any order, no import cycle, each layer imports only the
layers before it (docs/architecture.md), and no test module imports another."""

from __future__ import annotations

import ast
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import ROOT

PACKAGE = ROOT / "emulator"

# The layers, first to last: a module imports only modules of its own layer or of the layers before it.
# The same list is the table "Layers" in docs/architecture.md.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("emulator", "emulator.*"),  # the shared vocabulary: exchange, errors, config, profiles, names, journal, …
    ("emulator.faults.*",),
    ("emulator.protocols.*",),
    ("emulator.scenarios.*",),
    ("emulator.state.*",),  # what workers and replicas share through Redis (--state)
    ("emulator.server.*",),  # less app.py, which assembles the control routes with the rest
    ("emulator.control.*",),
    ("emulator.record.*",),
    ("emulator.server.app",),
    ("emulator.cli.*",),
    ("emulator.testing", "emulator.pytest_plugin", "emulator.__main__"),
)


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "data" in path.relative_to(PACKAGE).parts or path.name == "__main__.py":  # the starter `init` writes; the CLI run
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imports_of(name: str) -> Iterator[str]:
    """Every emulator module that `name` imports anywhere in its file, TYPE_CHECKING blocks included."""
    path = ROOT.joinpath(*name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    known = set(module_names())
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        yield from (target for target in targets if target in known and target != name)


def graph() -> dict[str, set[str]]:
    return {name: set(imports_of(name)) for name in module_names()}


def layer_of(name: str) -> int:
    """The last layer that names the module or a package above it (`emulator.server.app` comes after server/);
    `emulator.*` is the modules at the package's top, not its subpackages."""
    found = -1
    for index, patterns in enumerate(LAYERS):
        for pattern in patterns:
            if pattern == "emulator.*":
                hit = name.count(".") == 1 and not (PACKAGE / name.split(".")[1]).is_dir()
            else:
                prefix = pattern.removesuffix(".*")
                hit = name == prefix or (pattern.endswith(".*") and name.startswith(prefix + "."))
            if hit:
                found = index
    return found


def test_every_module_has_a_layer_and_imports_only_its_own_or_earlier_ones():
    wrong = []
    for name, targets in graph().items():
        assert layer_of(name) >= 0, f"{name} is in no layer of LAYERS"
        wrong += [
            f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
            for target in sorted(targets)
            if layer_of(target) > layer_of(name)
        ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_type_checking_imports_included():
    edges = graph()
    state: dict[str, int] = {}  # 1 on the path, 2 done
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(edges[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(" → ".join(cycle) for cycle in cycles)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


THIRD_PARTY = (
    "pydantic",
    "starlette.applications",
    "starlette.responses",
    "uvicorn",
    "httpx",
    "yaml",
    "faker",
    "re2",
    "redis.asyncio",
    "prometheus_client",
)


def test_every_module_imports_alone_in_a_fresh_interpreter():
    # One interpreter per module, each forked from one that has only the standard library and the third-party
    # libraries loaded (they cost most of an import, and are not what this checks): a module of ours that imports
    # only because an earlier import of ours filled sys.modules fails here.
    code = (
        "import os, sys, importlib\n"
        f"for library in {THIRD_PARTY!r}:\n"
        "    importlib.import_module(library)\n"
        "assert not [name for name in sys.modules if name == 'emulator' or name.startswith('emulator.')]\n"
        f"failed = []\nfor name in {module_names()!r}:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        try: importlib.import_module(name)\n"
        "        except BaseException as error: print(name, repr(error)); os._exit(1)\n"
        "        os._exit(0)\n"
        "    if os.waitpid(pid, 0)[1]: failed.append(name)\n"
        "sys.exit(1 if failed else 0)\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_module_imports_in_a_shuffled_order_in_one_interpreter():
    seed = int(os.environ.get("IMPORT_ORDER_SEED", random.randrange(2**32)))
    order = module_names()
    random.Random(seed).shuffle(order)
    print(f"import order seed {seed} (IMPORT_ORDER_SEED={seed} repeats it)")
    done = run_python(f"import importlib\nfor name in {order!r}:\n    importlib.import_module(name)\n")
    assert done.returncode == 0, f"seed {seed}: {done.stderr}"


def test_modules_of_the_package_are_found():
    names = module_names()
    assert {"emulator.exchange", "emulator.server.app", "emulator.protocols.registry", "emulator.testing"} <= set(names)


@pytest.mark.parametrize("path", sorted((ROOT / "tests").rglob("test_*.py")), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_test_module_imports_another(path: Path):
    """Test modules share code through tests/helpers/, never by importing each other (or conftest)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            leaf = name.split(".")[-1]
            assert not (name.startswith("tests.") and (leaf.startswith("test_") or leaf == "conftest")), (
                f"{path.relative_to(ROOT)}:{node.lineno} imports {name}: move what it shares to tests/helpers/"
            )
