"""The Dockerfile, checked without a Docker engine: its instructions, then its entrypoint and health check run
here with the image's environment. The wheel build of its first stage runs only with TOKENHUB_DOCKER_BUILD_TEST=1
(it downloads the dependencies' wheels)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import venv

import httpx
import pytest

from tests.helpers.docker import DOCKERFILE, final_stage, image_env, instructions
from tests.helpers.servers import ROOT


def test_two_slim_stages_and_a_small_final_image():
    froms = [args for word, args in instructions() if word == "FROM"]
    assert froms == ["python:3.11-slim AS build", "python:3.11-slim"]
    runs = " ".join(args for word, args in final_stage() if word == "RUN")
    assert "--no-index" in runs and "--no-cache-dir" in runs
    # the wheels are bind-mounted from the build stage for the install: no layer keeps them (a COPY would,
    # however a later RUN removes them)
    assert runs.startswith("--mount=type=bind,from=build,source=/wheels,target=/wheels pip install")
    assert not [args for word, args in final_stage() if word in ("COPY", "ADD") and "/wheels" in args]
    assert DOCKERFILE.read_text().startswith("# syntax=docker/dockerfile:1\n")  # RUN --mount needs BuildKit
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    assert ignored[0] == "*" and "!emulator/" in ignored


def test_runs_as_a_non_root_user_exposing_8000():
    stage = final_stage()
    users = [args for word, args in stage if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("EXPOSE", "8000") in stage
    env = image_env()
    assert env["TOKENHUB_EMULATOR_HOST"] == "0.0.0.0"
    assert env["TOKENHUB_EMULATOR_SCENARIO"] == "/scenarios"
    assert env["TOKENHUB_EMULATOR_PORT"] == "8000"


def entrypoint() -> list[str]:
    stage = dict(final_stage())
    return json.loads(stage["ENTRYPOINT"]) + json.loads(stage["CMD"])


def healthcheck_command() -> str:
    args = dict(final_stage())["HEALTHCHECK"]
    assert "--interval" in args
    return args.split(" CMD ", 1)[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_entrypoint_serves_with_the_image_env_and_the_health_check_passes(tmp_path):
    """The image's command and environment (the scenario folder and port swapped for local ones)."""
    (tmp_path / "ping.yaml").write_text("rules: [{when: {last_user: ping}, reply: {content: pong}}]\n")
    port = free_port()
    env = {
        **os.environ,
        **image_env(),
        "TOKENHUB_EMULATOR_SCENARIO": str(tmp_path),
        "TOKENHUB_EMULATOR_PORT": str(port),
    }
    env["TOKENHUB_EMULATOR_CONTROL_TOKEN"] = "ci-token"
    command = entrypoint()
    assert command == ["tokenhub-emulator", "serve"]
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", *command[1:]], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert "listening on http://0.0.0.0:" in process.stdout.readline()
        health = subprocess.run(["sh", "-c", healthcheck_command()], env=env, capture_output=True, timeout=10)
        assert health.returncode == 0, health.stderr
        url = f"http://127.0.0.1:{port}"
        reply = httpx.post(
            url + "/v1/chat/completions",
            headers={"authorization": "Bearer sk-x"},
            json={"model": "glm-5", "messages": [{"role": "user", "content": "ping"}]},
        )
        assert reply.json()["choices"][0]["message"]["content"] == "pong"
        assert httpx.get(url + "/_emulator/journal").status_code == 401  # bound beyond loopback: token needed
        assert (
            httpx.get(url + "/_emulator/journal", headers={"x-emulator-control-token": "ci-token"}).status_code == 200
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
    health = subprocess.run(["sh", "-c", healthcheck_command()], env=env, capture_output=True, timeout=10)
    assert health.returncode != 0  # and it fails once the server is gone


@pytest.mark.skipif(not os.environ.get("TOKENHUB_DOCKER_BUILD_TEST"), reason="set TOKENHUB_DOCKER_BUILD_TEST=1")
def test_the_build_stage_commands_produce_an_installable_wheel_set(tmp_path):
    """`pip wheel .` as the build stage runs it, then the final stage's offline install in a fresh venv."""
    wheels = tmp_path / "wheels"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(wheels), "."], cwd=ROOT, check=True)
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    install = [
        str(python),
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--find-links",
        str(wheels),
        "tokenhub-emulator",
    ]
    subprocess.run(install, check=True)
    result = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "tokenhub-emulator"), "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "tokenhub-emulator" in result.stdout
    print(f"build stage equivalent took {time.monotonic() - started:.1f}s")


# ---------------------------------------------------------------- docker-compose.yml


def test_the_compose_tests_service_keeps_its_token_from_the_servers_the_suite_starts(tmp_path, monkeypatch):
    """The `tests` service hands the plugin its token in a variable no server reads; the suite's own servers
    are configured by their flags, whatever TOKENHUB_EMULATOR_* the suite runs under."""
    import yaml

    from tests.helpers.servers import start_server, stop_server

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"]["tests"]["environment"]
    assert "TOKENHUB_EMULATOR_CONTROL_TOKEN" not in environment
    assert environment["TOKENHUB_EMULATOR_URL"] == "http://emulator:8000"
    assert "TOKENHUB_EMULATOR_URL_TOKEN" in environment
    assert "TOKENHUB_EMULATOR_CONTROL_TOKEN" in compose["services"]["emulator"]["environment"]

    # a suite run under the variable anyway: the servers it starts do not pick it up
    monkeypatch.setenv("TOKENHUB_EMULATOR_CONTROL_TOKEN", "leaked")
    local = start_server()
    try:
        assert httpx.get(local.url + "/_emulator/journal").status_code == 200
    finally:
        stop_server(local)

    # the plugin reaches a token-guarded emulator (the compose `emulator` service) with the variable it reads
    remote = start_server("--control-token", "s3cret")
    try:
        (tmp_path / "test_remote.py").write_text(
            "def test_remote(tokenhub_emulator):\n"
            "    tokenhub_emulator.load('rules: [{when: {last_user: hi}, reply: {content: yo}}]')\n"
            "    reply = tokenhub_emulator.openai().chat.completions.create(\n"
            "        model='glm-5', messages=[{'role': 'user', 'content': 'hi'}])\n"
            "    assert reply.choices[0].message.content == 'yo'\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_EMULATOR_")}
        env.update({"TOKENHUB_EMULATOR_URL": remote.url, "TOKENHUB_EMULATOR_URL_TOKEN": "s3cret"})
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        stop_server(remote)
