"""`serve --watch`: reload the scenario files when they change.

A reload that finds problems keeps the previous scenarios serving; the problems are logged and shown by
`GET /_emulator/scenarios` (`reload.last_error`, with file:line:column) until a good reload clears them.
Scenarios loaded through the control API stay loaded, after the files' ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
import watchfiles

from emulator.scenarios import ScenarioError, load_scenarios
from emulator.scenarios.loader import SUFFIXES
from emulator.server.listener import GracefulServer

if TYPE_CHECKING:
    from emulator.server.runtime import Runtime

log = logging.getLogger("uvicorn.error.watch")  # printed by uvicorn's handler, at --log-level
DEBOUNCE_MS = 100  # editors write a file in several steps; wait this long for them to settle
REAPPEAR_S = 0.3  # a deleted file may be on its way back (an editor's or git's replace): wait before reloading


def reload(runtime: Runtime) -> bool:
    """Load the scenario paths again; on success serve them (then the control API's), else keep what serves."""
    status = runtime.scenario_status
    try:
        files = load_scenarios(runtime.settings.scenarios)
    except ScenarioError as error:
        status.last_error, status.last_error_time = error.problems, time.time()
        log.error("scenario reload failed; the previous scenarios keep serving:")
        for problem in error.problems:
            log.error("  %s", problem)
        return False
    added = runtime.engine.scenarios[status.from_files :]
    runtime.replace_scenarios([*files, *added], from_files=len(files))
    status.reloads += 1
    status.last_reload, status.last_error, status.last_error_time = time.time(), None, None
    log.info("scenarios reloaded: %d file(s), %d rule(s)", len(files), len(runtime.engine.rules))
    return True


class ScenarioFilter(watchfiles.DefaultFilter):
    """Changes to the given files, or to *.yaml / *.yml files inside the given folders."""

    def __init__(self, paths: Iterable[Path]) -> None:
        super().__init__()
        resolved = [p.resolve() for p in paths]
        self.files = {p for p in resolved if not p.is_dir()}
        self.folders = [p for p in resolved if p.is_dir()]

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        changed = Path(path).resolve()
        if changed in self.files:
            return True
        return changed.suffix in SUFFIXES and any(changed.parent == folder for folder in self.folders)


def watched_roots(paths: Iterable[Path]) -> list[Path]:
    """Folders to watch: a folder itself, a file's parent (editors often replace a file rather than write it)."""
    roots = {(p if p.is_dir() else p.parent).resolve() for p in paths}
    return sorted(roots)


async def watch(runtime: Runtime, stop: asyncio.Event) -> None:
    paths = list(runtime.settings.scenarios)
    if not paths:
        log.warning("--watch: no scenario paths to watch")
        return
    async for changes in watchfiles.awatch(
        *watched_roots(paths), watch_filter=ScenarioFilter(paths), stop_event=stop, debounce=DEBOUNCE_MS, step=50
    ):
        if any(change == watchfiles.Change.deleted for change, _ in changes):
            # Reloading now would serve the folder without the file until it is back; the previous scenarios
            # keep serving while it has the time to come back.
            await asyncio.sleep(REAPPEAR_S)
        reload(runtime)


class WatchingServer(GracefulServer):
    """The server, plus the watch task on its own event loop for as long as it serves."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(watch(self.runtime, self._stop))

    async def shutdown(self, sockets: Any = None) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await super().shutdown(sockets)
