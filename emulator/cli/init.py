"""`tokenhub-emulator init [DIR]`: a starter scenario and a pytest file that pass as written."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from emulator.cli.options import option

STARTER = {  # where each starter file goes, under DIR
    "hello.yaml": Path("scenarios/hello.yaml"),
    "test_hello.py": Path("test_hello.py"),
}


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    init = commands.add_parser(
        "init",
        help="write a starter scenario and a pytest example into a folder",
        description="Write DIR/scenarios/hello.yaml (a starter scenario) and DIR/test_hello.py (tests that use "
        "it through the pytest fixture). Both pass as written: `tokenhub-emulator validate DIR/scenarios` and "
        "`python -m pytest DIR` (the tests need the openai package).",
    )
    init.add_argument("dir", nargs="?", default=".", type=Path, metavar="DIR", help="where to write (default: .)")
    option(init, "--force", boolean=True, help="overwrite files that are already there")
    return init


def run(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    if folder.exists() and not folder.is_dir():
        print(f"tokenhub-emulator init: {folder} is a file, not a folder", file=sys.stderr)
        return 2
    targets = {name: folder / where for name, where in STARTER.items()}
    there = [str(path) for path in targets.values() if path.exists()]
    if there and not args.force:
        print(
            f"tokenhub-emulator init: {', '.join(there)} already exist(s); nothing written (--force overwrites)",
            file=sys.stderr,
        )
        return 1
    source = resources.files("emulator") / "data" / "starter"
    try:
        for name, path in targets.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text((source / name).read_text(encoding="utf-8"), encoding="utf-8")
    except OSError as error:
        print(f"tokenhub-emulator init: cannot write in {folder}: {error.strerror or error}", file=sys.stderr)
        return 1
    for path in targets.values():
        print(f"wrote {path}")
    scenarios = targets["hello.yaml"].parent
    print(
        "next:\n"
        f"  tokenhub-emulator validate {scenarios}\n"
        f"  python -m pytest {folder}                   # needs: pip install openai pytest\n"
        f"  tokenhub-emulator serve --scenario {scenarios}"
    )
    return 0
