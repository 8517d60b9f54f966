"""The real server, started as the CLI starts it, on a free loopback port: for the e2e tests and their fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import openai

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


class RunningServer:
    def __init__(self, process: subprocess.Popen[str], url: str, log: Any = None) -> None:
        self.process = process
        self.url = url
        self.base_url = url + "/v1"
        self.log = log  # the server's stderr, a temporary file

    def read_log(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read()

    def openai(self, **kwargs) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(api_key=kwargs.pop("api_key", "sk-test"), base_url=self.base_url, **kwargs)

    def async_openai(self, **kwargs) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=kwargs.pop("api_key", "sk-test"), base_url=self.base_url, max_retries=0, **kwargs
        )

    def http(self, **kwargs) -> httpx.Client:
        headers = {"authorization": "Bearer sk-test", **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, **kwargs)


def own_environment() -> dict[str, str]:
    """This process's environment less the emulator's variables: a server the suite starts is configured by
    its own flags, not by a TOKENHUB_EMULATOR_CONTROL_TOKEN (or any other) that the suite runs under."""
    return {name: value for name, value in os.environ.items() if not name.startswith("TOKENHUB_EMULATOR_")}


def start_server(*args: str, env: dict[str, str] | None = None) -> RunningServer:
    """Run `tokenhub-emulator serve --port 0 …` and wait for the line that names its URL."""
    command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning", *args]
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the server; a pipe nobody reads would block it
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**own_environment(), **(env or {})},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        process.wait(timeout=10)
        log.seek(0)
        raise RuntimeError(f"server did not start: {line!r} {log.read()}")
    return RunningServer(process, line.rsplit(" ", 1)[-1].strip(), log)


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
