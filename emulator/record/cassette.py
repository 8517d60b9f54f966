"""The recording: a scenario file with one rule per distinct request, written atomically after each one.

The same request recorded again becomes a `sequence` (its answers replay in recorded order, then the last
one repeats). The file declares `settings.fallback: error`, so replaying a request that was never recorded
answers an error naming the nearest recordings. No request header is ever written: keys stay out.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from emulator.errors import ApiError
from emulator.profiles import Catalog
from emulator.scenarios import Scenario, parse_scenario


class Cassette:
    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self._index = {_key(rule.get("when", {})): n for n, rule in enumerate(self.rules)}

    @classmethod
    def open(cls, path: Path, upstream: str) -> Cassette:
        if path.exists():
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{path} is not a recording: its top level is not a mapping")
            data.setdefault("rules", [])
            return cls(path, data)
        data = {
            "name": path.stem,
            "description": f"Recorded from {upstream} by tokenhub-emulator record.",
            "settings": {"fallback": "error"},
            "rules": [],
        }
        return cls(path, data)

    @property
    def rules(self) -> list[dict[str, Any]]:
        return self.data["rules"]

    def add(self, when: dict[str, Any], outcome: dict[str, Any], timing: dict[str, float]) -> str:
        """Record one answer to the request `when` recognises; the name of the rule that replays it."""
        step = {**outcome, **({"timing": timing} if timing else {})}
        at = self._index.get(_key(when))
        if at is None:
            name = f"{when['endpoint']} #{len(self.rules) + 1}: {_short(when['last_user']['equals'])}"
            self.rules.append({"name": name, "when": when, **step})
            self._index[_key(when)] = len(self.rules) - 1
            self._declare(when["model"])
            return name
        rule = self.rules[at]
        if "sequence" not in rule:
            first = {k: rule.pop(k) for k in ("reply", "fail", "timing") if k in rule}
            rule["sequence"], rule["then"] = [first], "repeat_last"
        rule["sequence"].append(step)
        return rule["name"]

    def _declare(self, model: str) -> None:
        """Models the built-in catalog does not know are declared, so that replaying accepts them."""
        declared = self.data.setdefault("models", [])
        catalog = Catalog.with_builtins()
        try:
            catalog.resolve(model)
            return
        except ApiError:
            pass
        if all(entry.get("id") != model for entry in declared):
            declared.append({"id": model})

    def text(self) -> str:
        data = {k: v for k, v in self.data.items() if v or k == "rules"}
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100_000)

    def scenario(self) -> Scenario:
        """The recording as the engine loads it; raises ScenarioError if it would not load."""
        return parse_scenario(self.text(), str(self.path), self.path.stem)

    def save(self) -> Scenario:
        """Check that the file loads, then replace it in one step: a crash leaves the old file or the new one."""
        scenario = self.scenario()
        write_atomically(self.path, self.text())
        return scenario


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _key(when: Any) -> str:
    return json.dumps(when, sort_keys=True, ensure_ascii=False)


def _short(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
