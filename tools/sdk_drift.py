"""What newer releases of the test dependencies would change: the way to move constraints/test.txt forward.

    python tools/sdk_drift.py            # newest releases vs the pins: versions moved, SDK-facing test outcomes
    python tools/sdk_drift.py --write    # …and, when the newest releases pass, write them into the pins
    python tools/sdk_drift.py --all      # run the whole suite in both environments, not only the SDK-facing tests

It builds two scratch venvs (the pinned set, and `pip install --upgrade` of the same extras with no
constraints), runs the SDK-facing tests (those marked `sdk`: every test module that imports an SDK) in each,
and prints the packages whose version moved and every test whose outcome differs. Not part of CI: it needs
the package index and takes a few minutes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import venv
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints" / "test.txt"


def pins(text: str) -> dict[str, str]:
    """`name==version` lines as {normalized name: version}."""
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.strip().lower().replace("_", "-")] = version.strip()
    return found


def make_env(where: Path, constrained: bool) -> Path:
    venv.EnvBuilder(with_pip=True).create(where)
    python = where / "bin" / "python"
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[test]"]
    command += ["-c", str(CONSTRAINTS)] if constrained else ["--upgrade", "--upgrade-strategy", "eager"]
    subprocess.run(command, cwd=ROOT, check=True)
    return python


def freeze(python: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout
    return pins(out)


def outcomes(python: Path, report: Path, everything: bool) -> dict[str, str]:
    """Test id → passed / failed / error / skipped, from a junit report of one run."""
    selection = [] if everything else ["-m", "sdk"]
    subprocess.run(
        [str(python), "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", *selection, f"--junitxml={report}"],
        cwd=ROOT,
    )
    results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        results[name] = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write the newest versions into the pins if they pass")
    parser.add_argument("--all", action="store_true", help="run the whole suite, not only the SDK-facing tests")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sdk-drift-") as scratch:
        base = Path(scratch)
        print("building the pinned environment …", flush=True)
        pinned_python = make_env(base / "pinned", constrained=True)
        print("building the newest environment …", flush=True)
        newest_python = make_env(base / "newest", constrained=False)
        pinned, newest = freeze(pinned_python), freeze(newest_python)
        print("running the tests in both …", flush=True)
        before = outcomes(pinned_python, base / "pinned.xml", args.all)
        after = outcomes(newest_python, base / "newest.xml", args.all)

    moved = {name: (pinned.get(name), newest.get(name)) for name in sorted(pinned.keys() | newest.keys())}
    moved = {name: pair for name, pair in moved.items() if pair[0] != pair[1]}
    print(f"\n{len(moved)} package(s) would move:")
    for name, (old, new) in moved.items():
        print(f"  {name:32} {old or '—':>14} → {new or '—'}")
    changed = {test: (before.get(test), after.get(test)) for test in sorted(before.keys() | after.keys())}
    changed = {test: pair for test, pair in changed.items() if pair[0] != pair[1]}
    print(f"\n{len(after)} test(s) run; {len(changed)} changed outcome:")
    for test, (old, new) in changed.items():
        print(f"  {old or 'absent':>8} → {new or 'absent':8} {test}")
    broken = [t for t, (_, new) in changed.items() if new in ("failure", "error")]
    if args.write and not broken:
        header = [line for line in CONSTRAINTS.read_text().splitlines() if line.startswith("#")]
        body = [f"{name}=={version}" for name, version in sorted(newest.items())]
        CONSTRAINTS.write_text("\n".join([*header, *body]) + "\n")
        print(f"\nwrote {len(body)} pins to {CONSTRAINTS.relative_to(ROOT)}")
    elif args.write:
        print(f"\nnot written: {len(broken)} test(s) fail on the newest releases")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
