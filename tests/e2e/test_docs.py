"""Every code block in README.md and docs/*.md runs (or is checked against the emulator) as a user would copy it.

Each document is one session, in a fresh folder, in order: a YAML block whose first line names a file
(`# weather.yaml`) is written there; a shell block's `tokenhub-emulator serve` (or `record`) starts in the
background and the later blocks talk to it; Python blocks run, a test module under pytest. The examples say
`http://127.0.0.1:8000`: the session's server listens on a free port and the blocks are run with that port
instead — the only change made to them.

A block's kind comes from its language (yaml: a scenario file `validate` must accept; python; sh/bash: shell;
json: parsed) or from an HTML comment on the line before it, `<!-- docs-test: KIND -->`, for the rest: a part of
a scenario (`rule`, `when`, `reply`, `scenario head`), a `synopsis` (every command and flag exists), an output
(checked against what the emulator really says), and the few blocks that cannot run here — each with the check
that stands in for running it (`docker`: tests/e2e/test_docker.py and the Dockerfile facts the commands rely on;
`the test command`: it is what .ci/run runs; `github actions`: the workflow's variables and install step).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from emulator.cli.main import main as cli_main
from tests.helpers.servers import ROOT, own_environment
from tests.helpers.subpytest import lean_pytest_environment

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?:<!-- docs-test: (?P<kind>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<text>.*?)^```\n", re.M | re.S)
BIN = Path(sys.executable).parent  # tokenhub-emulator, python and pytest as the user's shell finds them
RULE_ACTIONS = ("reply", "fail", "sequence", "fault")


@dataclass
class Block:
    doc: Path
    line: int
    lang: str
    kind: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    source = doc.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(source):
        line = source.count("\n", 0, match.start("lang")) + 1
        lang = match["lang"]
        kind = match["kind"] or {
            "yaml": "scenario",
            "python": "python",
            "sh": "shell",
            "bash": "shell",
            "json": "json",
        }.get(lang, "")
        if kind == "python" and re.search(r"^def test_", match["text"], re.M):
            kind = "pytest"
        found.append(Block(doc, line, lang, kind, match["text"]))
    return found


def test_every_fence_is_found_and_has_a_kind() -> None:
    for doc in DOCUMENTS:
        fences = len(re.findall(r"^```", doc.read_text(encoding="utf-8"), re.M)) // 2
        found = blocks(doc)
        assert len(found) == fences, f"{doc}: a fence the harness does not see (unclosed, or indented)"
        for block in found:
            assert block.kind, f"{block.where}: a ```{block.lang} block needs <!-- docs-test: KIND --> before it"
            assert block.kind.split(";")[0] in CHECKS or block.kind in OUTPUTS, f"{block.where}: kind {block.kind!r}"
            assert "[...]" not in block.text and "messages=[...]" not in block.text, f"{block.where}: a placeholder"


# ---------------------------------------------------------------- a document's session


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Session:
    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    log: Path | None = None
    upstream: subprocess.Popen[str] | None = None
    upstream_url: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **own_environment(),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "TOKENHUB_EMULATOR_PORT": str(self.port),
            "TOKENHUB_EMULATOR_URL": self.url,
            "NO_COLOR": "1",
        }

    def local(self, text: str) -> str:
        """The block as the session runs it: the examples' port 8000 is the session's."""
        text = re.sub(r"(127\.0\.0\.1|localhost):8000\b", f"127.0.0.1:{self.port}", text)
        return re.sub(r"--port 8000\b", f"--port {self.port}", text)

    def start(self, command: str) -> None:
        """A long-running command (serve, record) in the background, once it listens."""
        self.stop()
        self.log = self.folder / f"server-{self.port}.log"
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.folder,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),
            text=True,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        assert "listening on" in first, f"{command!r} did not start: {first!r} {self.log.read_text()}"
        self.banner = [first]

    def server(self) -> str:
        """The URL of the session's server, started bare if no block started one."""
        if self.process is None or self.process.poll() is not None:
            self.start("tokenhub-emulator serve")
        return self.url

    def gateway(self) -> str:
        """A second emulator, standing in for the user's real gateway (the record example's upstream)."""
        if self.upstream is None:
            self.upstream = subprocess.Popen(
                [str(BIN / "tokenhub-emulator"), "serve", "--port", "0"],
                cwd=self.folder,
                env=own_environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert self.upstream.stdout is not None
            self.upstream_url = self.upstream.stdout.readline().split()[-1]
        return self.upstream_url

    def stop(self) -> None:
        if self.upstream is not None and self.process is None:
            self.upstream.terminate()
            self.upstream.wait(timeout=10)
            self.upstream = None
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def run(self, command: list[str], block: Block, plugin: bool = False) -> subprocess.CompletedProcess[str]:
        """`plugin`: a pytest run whose fixture starts its own server (not told of the session's)."""
        env = self.env()
        if plugin:
            env.pop("TOKENHUB_EMULATOR_URL")
            env = lean_pytest_environment(env)
        result = subprocess.run(command, cwd=self.folder, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (
            f"{block.where}: {command[-1][:200]!r}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
        return result


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    running = Session(tmp_path)
    yield running
    running.stop()
    running.stop()  # the upstream too, once the server is gone


@pytest.mark.parametrize("doc", DOCUMENTS, ids=[doc.name for doc in DOCUMENTS])
def test_every_block_runs_as_written(doc: Path, session: Session) -> None:
    for block in blocks(doc):
        name = block.kind if block.kind in OUTPUTS else block.kind.split(";")[0]
        check = OUTPUTS.get(name) or CHECKS[name]
        check(block, session)


# ---------------------------------------------------------------- scenario files and their parts


def validate(text: str, block: Block, session: Session, name: str = "") -> None:
    path = session.folder / (name or f"block-{block.line}.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    status, out, err = run_validate(path)
    assert status == 0 and "warning" not in out, f"{block.where}:\n{text}\n{out}{err}"


def run_validate(path: Path) -> tuple[int, str, str]:
    """`tokenhub-emulator validate PATH` through the command's own entry point, in this process: a scenario
    block is a file the user validates, and the docs hold dozens (a fresh interpreter each cost a second)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli_main(["validate", str(path)])
    return status, out.getvalue(), err.getvalue()


def check_scenario(block: Block, session: Session) -> None:
    first = block.text.splitlines()[0]
    named = re.fullmatch(r"# ([\w./-]+\.ya?ml)", first)
    validate(block.text, block, session, named[1] if named else "")


def as_rule(text: str) -> dict[str, Any]:
    rule = yaml.safe_load(text)
    if not any(action in rule for action in RULE_ACTIONS):
        rule["reply"] = {}
    return rule


def check_rule(block: Block, session: Session) -> None:
    validate(yaml.safe_dump({"rules": [as_rule(block.text)]}), block, session)


def check_when(block: Block, session: Session) -> None:
    validate(yaml.safe_dump({"rules": [{"when": yaml.safe_load(block.text), "reply": {}}]}), block, session)


def check_reply(block: Block, session: Session) -> None:
    validate(yaml.safe_dump({"rules": [{"reply": yaml.safe_load(block.text)}]}), block, session)


def check_broken_scenario(block: Block, session: Session) -> None:
    """A file shown for its mistakes: written under its name; `validate` must refuse it (the next block says how)."""
    name = re.fullmatch(r"# ([\w./-]+\.ya?ml)", block.text.splitlines()[0])
    assert name, f"{block.where}: a broken example names its file on its first line"
    path = session.folder / name[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.text, encoding="utf-8")
    status, _, _ = run_validate(path)
    assert status == 1, f"{block.where}: validate accepts it"


def check_scenario_head(block: Block, session: Session) -> None:
    validate(block.text + "rules: [{when: {last_user: hi}, reply: {content: hello}}]\n", block, session)


# ---------------------------------------------------------------- code


def run_python(block: Block, session: Session) -> None:
    session.server()
    script = session.folder / f"example_{block.line}.py"
    script.write_text(session.local(block.text), encoding="utf-8")
    session.run([sys.executable, str(script)], block)


def run_pytest(block: Block, session: Session) -> None:
    module = session.folder / f"test_example_{block.line}.py"
    module.write_text(block.text, encoding="utf-8")
    result = session.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", module.name], block, plugin=True
    )
    assert re.search(r"\d+ passed", result.stdout) and "failed" not in result.stdout, result.stdout


def commands(text: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


LONG_RUNNING = re.compile(r"^tokenhub-emulator (serve|record)\b")


def run_shell(block: Block, session: Session) -> None:
    """Each command in bash, in the session's folder; `serve` and `record` in the background."""
    _, _, setup = block.kind.partition("; with ")
    if setup:
        shutil.copytree(ROOT / setup, session.folder, dirs_exist_ok=True)
        for path in session.folder.rglob("*.py"):
            path.write_text(session.local(path.read_text()))
        if "127.0.0.1:8000" in "".join(p.read_text() for p in (ROOT / setup).rglob("*.py")):
            session.server()  # the setup's code talks to the server
    for command in commands(block.text):
        command = session.local(command)
        if "https://your-gateway.example.com" in command:  # the user's gateway: an emulator stands in for it
            command = command.replace("https://your-gateway.example.com", session.gateway())
        if LONG_RUNNING.match(command):
            session.start(command.split(" #")[0])
            continue
        if "127.0.0.1" in command or command.startswith(("tokenhub-emulator journal", "tokenhub-emulator report")):
            session.server()
        result = session.run(["bash", "-o", "pipefail", "-c", command], block, plugin="pytest" in command)
        if command.startswith("curl"):
            assert result.stdout.strip(), f"{block.where}: {command} printed nothing"
            try:
                answer = json.loads(result.stdout)
            except ValueError:  # a stream
                answer = None
            failed = isinstance(answer, dict) and isinstance(answer.get("error"), dict)
            assert not failed, f"{block.where}: {command}\n{result.stdout[:500]}"


def run_install_and_serve(block: Block, session: Session) -> None:
    """`pip install . && tokenhub-emulator serve`: this suite runs from that install (`pip install -e .` of
    this clone); what is checked is that it is this project, installed with its command, and that `serve` runs."""
    from importlib.metadata import distribution

    (command,) = commands(block.text)
    install, _, serve = command.partition(" && ")
    assert install == "pip install ."
    assert distribution("tokenhub-emulator").entry_points.select(group="console_scripts", name="tokenhub-emulator")
    assert (BIN / "tokenhub-emulator").exists()
    session.start(serve)


def check_test_command(block: Block, session: Session) -> None:
    """The test command is the one this suite runs under: .ci/run runs it (running it here would recurse)."""
    (command,) = commands(block.text)
    assert command in (ROOT / ".ci" / "run").read_text().replace(
        "python3 -m pip install --quiet --disable-pip-version-check", "pip install"
    ).replace("python3 -m pytest", "python -m pytest")


def check_json(block: Block, session: Session) -> None:
    text = block.text.strip()
    try:
        json.loads(text)
    except ValueError:
        json.loads("{" + text + "}")  # a key of a larger object, as the prose says


# ---------------------------------------------------------------- synopses and references


def check_synopsis(block: Block, session: Session) -> None:
    """Every `tokenhub-emulator COMMAND` line names a command that exists, and each of its flags exists."""
    from emulator.cli.main import _parser

    parsers = _parser()[1]
    current = None
    for line in block.text.splitlines():
        words = line.split()
        if words[:1] == ["tokenhub-emulator"]:
            current = parsers[words[1]]
        elif words[:1] == ["curl"]:
            session.server()
            url = session.local(words[-1]).replace("test_id=ID", "test_id=docs")
            assert httpx.get(url).status_code == 200, f"{block.where}: {url}"
            continue
        elif line.startswith(("python -m emulator",)) or current is None or not line.startswith(" "):
            continue
        known = {option for action in current._actions for option in action.option_strings}
        for flag in re.findall(r"\[(--[a-z-]+)", line) + re.findall(r"\| (--[a-z-]+)", line):
            assert flag in known, f"{block.where}: {flag} is not an option of {current.prog}"
        for flag in re.findall(r"\[(--[a-z-]+)", " ".join(words)):
            assert flag in known


def check_docker(block: Block, session: Session) -> None:
    """No Docker engine here: tests/e2e/test_docker.py runs the image's entrypoint and health check; the facts these
    commands rely on are checked against the Dockerfile."""
    from tests.helpers.docker import final_stage, image_env

    text = block.text
    assert "docker build -t tokenhub-emulator ." in text
    stage = final_stage()
    if "-p 8000:8000" in text:
        assert ("EXPOSE", "8000") in stage and image_env()["TOKENHUB_EMULATOR_PORT"] == "8000"
    if ":/scenarios" in text:
        assert image_env()["TOKENHUB_EMULATOR_SCENARIO"] == "/scenarios"
    for command in commands(text):
        if command.startswith("curl"):
            session.server()
            session.run(["bash", "-c", session.local(command)], block)


def check_github_actions(block: Block, session: Session) -> None:
    """The workflow parses; the variables it sets are ones the plugin, the SDKs or the server read; the plugin
    is installed from the emulator's checkout (not from a package index, where it is not published)."""
    workflow = yaml.safe_load(block.text)
    job = workflow["jobs"]["test"]
    read_by_plugin = {"TOKENHUB_EMULATOR_URL", "TOKENHUB_EMULATOR_URL_TOKEN"}
    for name in job["env"]:
        assert name in read_by_plugin or name.startswith(("OPENAI_", "ANTHROPIC_")), name
    assert "TOKENHUB_EMULATOR_CONTROL_TOKEN" in job["services"]["emulator"]["env"]
    runs = [step["run"] for step in job["steps"] if "run" in step]
    checkout = [step["with"]["path"] for step in job["steps"] if step.get("with", {}).get("path")]
    assert any(run.startswith(f"pip install ./{path} ") for run in runs for path in checkout), runs
    from emulator.pytest_plugin import URL_TOKEN_VARIABLE

    assert URL_TOKEN_VARIABLE == "TOKENHUB_EMULATOR_URL_TOKEN"


def check_claude_code(block: Block, session: Session) -> None:
    """Claude Code itself is run by tests/e2e/test_claude_code.py, with these variables; here: the variables are
    the ones it is given there, and the model answers."""
    assigned = dict(re.findall(r"(\w+)=(\S+)", block.text))
    harness = (ROOT / "tests" / "e2e" / "test_claude_code.py").read_text() + (ROOT / "tests" / "helpers" / "claude_code.py").read_text()
    for name in assigned:
        assert name in harness, f"{block.where}: {name} is not what tests/e2e/test_claude_code.py sets"
    url = session.server()
    reply = httpx.post(
        url + "/v1/messages",
        headers={"authorization": f"Bearer {assigned['ANTHROPIC_AUTH_TOKEN']}", "anthropic-version": "2023-06-01"},
        json={
            "model": assigned["ANTHROPIC_MODEL"],
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hello"}],
        },
    )
    assert reply.status_code == 200, reply.text


def check_fault_headers(block: Block, session: Session) -> None:
    """Each `x-emulator-fault` value is accepted (a bad one is a 400 naming the header)."""
    url = session.server()
    for line in block.text.splitlines():
        name, _, value = line.partition(": ")
        response = (
            httpx.post(
                url + "/v1/chat/completions",
                headers={"authorization": "Bearer k", name: value, "x-emulator-test-id": f"docs-{block.line}"},
                json={"model": "glm-5", "messages": [{"role": "user", "content": "hi"}]},
            )
            if "reset" not in value and "empty" not in value
            else None
        )
        if response is not None:
            assert "Invalid header" not in response.text, f"{block.where}: {line}: {response.text}"


def check_control_routes(block: Block, session: Session) -> None:
    """The routes listed are the control API's (its OpenAPI document)."""
    url = session.server()
    document = httpx.get(url + "/_emulator/openapi.json").json()
    for line in block.text.splitlines():
        method, path = line.split()[:2]
        route = re.sub(r"\{\w+\}", "{}", path.removeprefix("/_emulator"))
        paths = {re.sub(r"\{\w+\}", "{}", served): item for served, item in document["paths"].items()}
        assert method.lower() in paths[route], f"{block.where}: {method} {path}"


# ---------------------------------------------------------------- outputs, reproduced


def output_log_lines(block: Block, session: Session) -> None:
    """The README's log excerpt is what `serve --scenario weather.yaml` writes for tests/docs/log_requests.py's
    requests — times, durations, request ids and the port aside."""
    sys.path.insert(0, str(ROOT / "tests" / "docs"))
    try:
        from log_requests import send
    finally:
        sys.path.pop(0)
    environment = {k: v for k, v in session.env().items() if k != "NO_COLOR"}
    folder = session.folder
    process = subprocess.Popen(
        [str(BIN / "tokenhub-emulator"), "serve", "--port", "0", "--scenario", "weather.yaml"],
        cwd=folder,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    banner = [process.stdout.readline()]
    url = banner[0].split()[-1]
    ids = send(url)
    while httpx.get(f"{url}/_emulator/journal/{ids[-1]}").json()["duration_ms"] is None:
        pass  # the last request's response is over: its line is written on the next turn of the loop
    process.terminate()
    process.wait(timeout=10)
    out, err = process.stdout.read(), process.stderr.read()  # through the readers (the first line's is buffered)
    actual = (
        banner
        + out.splitlines(keepends=True)
        + [line + "\n" for line in err.splitlines() if any(i in line for i in ids)]
    )

    def normal(text: str) -> list[str]:
        text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:8000", text)
        text = re.sub(r"\d\d:\d\d:\d\d\.\d{3}", "HH:MM:SS.mmm", text)
        text = re.sub(r"\d+\.\d ms", "N ms", text)
        text = re.sub(r"req_[0-9a-f]{32}", "req_ID", text)
        return [line for line in text.splitlines() if line.strip()]

    assert normal("".join(actual)) == normal(block.text), "".join(actual)


def output_strict_fixture(block: Block, session: Session) -> None:
    """docs/testing.md's strict-mode failure, from its weather.yaml and a test that asks about the "wether"."""
    (session.folder / "test_weather.py").write_text(
        textwrap.dedent(
            """
            import pytest


            @pytest.mark.tokenhub_scenario("scenarios/weather.yaml")
            def test_typo(tokenhub_emulator):
                client = tokenhub_emulator.openai()
                client.chat.completions.create(
                    model="glm-5", messages=[{"role": "user", "content": "what about the wether?"}]
                )
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_weather.py"],
        cwd=session.folder,
        env=lean_pytest_environment({k: v for k, v in session.env().items() if k != "TOKENHUB_EMULATOR_URL"}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert block.text.strip() in result.stdout, result.stdout


def output_validate(block: Block, session: Session) -> None:
    """A `$ command` then its output: run in the session's folder, the output as shown."""
    lines = block.text.splitlines()
    command = lines[0].removeprefix("$ ")
    result = subprocess.run(
        ["bash", "-c", command], cwd=session.folder, env=session.env(), capture_output=True, text=True, timeout=60
    )
    assert (result.stdout + result.stderr).splitlines() == lines[1:], result.stdout + result.stderr


def output_fallback_error(block: Block, session: Session) -> None:
    """docs/scenarios.md's error fallback message, from its first example and a request that says hello."""
    session.start("tokenhub-emulator serve --fallback error --scenario weather.yaml")
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    response = httpx.post(
        session.url + "/v1/chat/completions",
        headers={"authorization": "Bearer k"},
        json={"model": "glm-5", "messages": [{"role": "user", "content": "hello"}], "tools": [tool]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == " ".join(block.text.split())


def output_anthropic_errors(block: Block, session: Session) -> None:
    """docs/anthropic-messages.md's refusals of misplaced system messages, as the server words them: a system
    message first, an empty one, one with an image."""
    url = session.server()
    user, assistant = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    conversations = [
        [{"role": "system", "content": "Be brief."}, user],
        [user, assistant, user, {"role": "system", "content": ""}],
        [user, assistant, user, {"role": "system", "content": [image]}],
    ]
    said = []
    for messages in conversations:
        response = httpx.post(
            url + "/v1/messages",
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            json={"model": "glm-5", "max_tokens": 64, "messages": messages},
        )
        assert response.status_code == 400
        said.append(response.json()["error"]["message"])
    assert said == block.text.splitlines()


def check_prometheus_config(block: Block, session: Session) -> None:
    """A Prometheus scrape config: the path the emulator serves, the token sent as Prometheus sends it."""
    from emulator.server.metrics import METRICS_PATH

    [job] = yaml.safe_load(block.text)["scrape_configs"]
    assert job["metrics_path"] == METRICS_PATH and job["authorization"]["type"] == "Bearer", block.where


CHECKS: dict[str, Callable[[Block, Session], None]] = {
    "scenario": check_scenario,
    "rule": check_rule,
    "when": check_when,
    "reply": check_reply,
    "scenario head": check_scenario_head,
    "broken scenario": check_broken_scenario,
    "python": run_python,
    "pytest": run_pytest,
    "shell": run_shell,
    "install and serve": run_install_and_serve,
    "the test command": check_test_command,
    "json": check_json,
    "synopsis": check_synopsis,
    "docker": check_docker,
    "github actions": check_github_actions,
    "claude code": check_claude_code,
    "fault headers": check_fault_headers,
    "control API routes": check_control_routes,
    "prometheus scrape config": check_prometheus_config,
}
OUTPUTS: dict[str, Callable[[Block, Session], None]] = {
    "log lines": output_log_lines,
    "output of the strict fixture": output_strict_fixture,
    "output of validate": output_validate,
    "output of the error fallback": output_fallback_error,
    "output: the refusals": output_anthropic_errors,
}
