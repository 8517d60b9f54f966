"""What `serve` says when it starts: profile, base URLs, scenario files, rules and models, the control API.

The text form goes to stdout after the `listening on URL` line (which stays first: tools read the URL from
it); with `--log-format json` the same facts are one log record. Scenario warnings (a rule naming a model
nothing declares, a folder without scenario files) are logged as warnings in both forms.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator.names import CONTROL_PREFIX
from emulator.profiles import BUILTIN_MODELS
from emulator.scenarios.lint import warnings_for
from emulator.scenarios.loader import SUFFIXES, scenario_files

if TYPE_CHECKING:
    from emulator.server.runtime import Runtime

log = logging.getLogger("tokenhub_emulator.start")


def facts(runtime: Runtime, url: str) -> dict[str, Any]:
    settings, engine, profile = runtime.settings, runtime.engine, runtime.profile
    bases: dict[str, str] = {}  # by client: OpenAI's, Anthropic's
    for adapter in runtime.adapters:
        bases.setdefault(adapter.client, url + adapter.base_path(profile.paths))
    files = [
        {"file": str(s.path), "rules": len(s.rules), "models": len(s.models)}
        for s in engine.scenarios[: runtime.scenario_status.from_files]
    ]
    declared = len(engine.declared_models)
    access = "token required" if settings.control_token else "open on loopback"
    return {
        "url": url,
        "profile": profile.name,
        **{f"{client.lower()}_base_url": base for client, base in bases.items()},
        "scenarios": files,
        "rules": len(engine.rules),
        "models": len(runtime.catalog.models),
        "models_declared": declared,
        "fallback": engine.fallback,
        "control_api": f"{url}{CONTROL_PREFIX}/ ({access})",
        "log": f"{settings.log_level}, {settings.log_format}",
    }


def banner_lines(runtime: Runtime, url: str) -> list[str]:
    data = facts(runtime, url)
    if data["scenarios"]:
        scenarios = ", ".join(f"{s['file']} ({_count(s['rules'], 'rule')})" for s in data["scenarios"])
    else:
        scenarios = "none: every request gets a generated reply (--scenario PATH to script them)"
    fallback = {
        "generate": "generate (a request no rule matches gets generated text; logged as a warning when rules are loaded)",
        "error": "error (a request no rule matches gets a 400 naming the nearest rules)",
    }[data["fallback"]]
    builtin = len(BUILTIN_MODELS)
    clients = dict.fromkeys(adapter.client for adapter in runtime.adapters)  # OpenAI's, Anthropic's
    rows = [
        ("profile", data["profile"]),
        ("base URLs", " · ".join(f"{client} {data[f'{client.lower()}_base_url']}" for client in clients)),
        ("scenarios", scenarios),
        (
            "rules",
            f"{_count(data['rules'], 'rule')}; {_count(data['models'], 'model')} "
            f"({builtin} built-in, {data['models_declared']} declared)",
        ),
        ("fallback", fallback),
        ("control API", data["control_api"]),
        ("log", f"{data['log']} — one line per request; --log-format json for CI"),
    ]
    return [f"  {name:<12}{value}" for name, value in rows]


def log_start(runtime: Runtime, url: str) -> None:
    """The JSON form's start record, and the scenario warnings (both forms)."""
    if runtime.settings.log_format == "json":
        log.info("tokenhub-emulator listening on %s", url, extra={"fields": facts(runtime, url)})
    for folder in runtime.settings.scenarios:
        if Path(folder).is_dir() and not scenario_files([folder])[0]:
            kinds = ", ".join("*" + suffix for suffix in SUFFIXES)
            log.warning("no scenario files (%s) in %s: it adds no rules", kinds, folder)
    for warning in warnings_for(runtime.engine.scenarios):
        log.warning("%s", warning)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
