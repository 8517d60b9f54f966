"""Settings: built-in defaults, overridden by TOKENHUB_EMULATOR_* environment variables, overridden by flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.ratelimit import RateLimits
    from emulator.timing import TimingSpec

ENV_PREFIX = "TOKENHUB_EMULATOR_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    scenarios: list[Path] = field(default_factory=list)
    seed: int = 0
    log_level: str = "info"
    log_format: str = "text"  # text | json: the request log and uvicorn's own lines
    api_keys: list[str] = field(default_factory=list)  # empty: any non-empty key is accepted
    max_body_bytes: int = 10 * 1024 * 1024
    profile: str | None = None  # which documented gateway to be (emulator.profiles.PROFILES); None: the
    # scenarios' settings.profile, else tokenhub
    fallback: str | None = None  # when no rule matches: generate | error; None lets scenarios decide (else generate)
    control_token: str | None = field(default=None, repr=False)  # required by /_emulator/ beyond loopback
    watch: bool = False  # reload changed scenario files while serving
    timing: TimingSpec | None = None  # timing defaults from flags; scenarios, rules and request headers override
    rate_limits: RateLimits | None = None  # rate limits from flags; a scenario's settings.rate_limits replaces them


def env_name(setting: str) -> str:
    return ENV_PREFIX + setting.upper()


def env_default(setting: str, default: str | None = None) -> str | None:
    return os.environ.get(env_name(setting), default)


def split_list(value: str | None, separator: str = ",") -> list[str]:
    return [item.strip() for item in (value or "").split(separator) if item.strip()]
