"""Settings: built-in defaults, overridden by TOKENHUB_EMULATOR_* environment variables, overridden by flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.loop_guard import LoopGuard
    from emulator.ratelimit import RateLimits
    from emulator.timing import TimingSpec

ENV_PREFIX = "TOKENHUB_EMULATOR_"
KIB = 1024
MIB = 1024 * KIB
METRICS_MODES = ("guarded", "open", "off")  # GET /metrics: as the control API's access, to anyone, not served
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
    metrics: str = "guarded"  # GET /metrics: guarded (as the control API's access) | open | off (docs/metrics.md)
    timing: TimingSpec | None = None  # timing defaults from flags; scenarios, rules and request headers override
    rate_limits: RateLimits | None = None  # rate limits from flags; a scenario's settings.rate_limits replaces them
    loop_guard: LoopGuard | None = None  # the agent-loop guard from flags; a scenario's settings.loop_guard wins
    scenario_roots: list[Path] | None = None  # where the control API may load `path` from; None: the folders
    # of `scenarios` (a folder itself, a file's folder)
    # Limits (docs/limits.md; each has a serve flag and a TOKENHUB_EMULATOR_* variable, emulator/cli/limits.py)
    journal_entries: int = 10_000
    journal_bytes: int = 64 * MIB
    journal_body_bytes: int = 64 * KIB  # a body larger than this is journaled in part
    journal_header_bytes: int = 4 * KIB  # a header value longer than this is journaled cut
    max_header_bytes: int = 64 * KIB  # a request's head (request line and headers) past this: 431
    control_body_bytes: int = 4 * MIB  # a control API body past this: 413
    store_bytes: int = 128 * MIB  # bytes each store of conversations (stored responses, threads) keeps, about
    max_rendered_chars: int = 1 * MIB  # what one reply's templates may render to, in all
    match_budget_ms: float = 250.0  # the time scenario regexes may take for one request, in all
    header_timeout_s: float = 60.0  # a request's head must arrive within this
    body_timeout_s: float = 60.0  # a request body must make progress at least this often
    keep_alive_s: float = 15.0  # an idle keep-alive connection is closed after this
    max_connections: int | None = None  # open connections at once; None: what the descriptor limit allows
    test_state_ttl_s: float = 3600.0  # a test id's own state (scenarios, sequences, queued failures) idle this
    # long is forgotten
    shutdown_grace_s: float = 5.0  # how long open answers get to end when the server stops
    state: str | None = None  # where state shared by workers and replicas lives (a redis:// URL); None: memory
    workers: int = 1  # processes serving one port (more than one: the state is shared, emulator/state/)


def env_name(setting: str) -> str:
    return ENV_PREFIX + setting.upper()

