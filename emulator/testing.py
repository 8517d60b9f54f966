"""Test helpers: the emulator in a background thread, and a per-test handle on it.

The pytest plugin (emulator/pytest_plugin.py) is built on these; other test runners can use them directly:

    server = EmulatorServer().start()
    test = server.handle("my-test")
    test.load("rules: [{when: {last_user: hi}, reply: {content: hello}}]")
    client = test.openai()
    ...
    test.close(); server.stop()
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from emulator.names import CONTROL_PREFIX, TEST_ID_HEADER
from emulator.names import CONTROL_TOKEN_HEADER as TOKEN_HEADER
from emulator.server.listener import GracefulServer, listening_socket
from emulator.server.url_scope import scoped_root

CONTROL = CONTROL_PREFIX
API_KEY = "sk-tokenhub-emulator"
ANTHROPIC_API_KEY = "sk-ant-tokenhub-emulator"
START_TIMEOUT_S = 30.0


class EmulatorError(Exception):
    """A control API call failed; `error` is the error object the server sent."""

    def __init__(self, status: int, error: Mapping[str, Any]) -> None:
        self.status = status
        self.error = dict(error)
        self.problems = [f"{p['file']}:{p['line']}:{p['column']}: {p['message']}" for p in error.get("problems", [])]
        detail = "\n  ".join(self.problems)
        super().__init__(f"{status} {error.get('message', '')}" + (f"\n  {detail}" if detail else ""))


class EmulatorServer:
    """The real emulator on a free loopback port, in a daemon thread with its own event loop.

    `url` names an emulator that is already running (a CI service container) instead: nothing is started.
    """

    def __init__(
        self,
        *,
        scenarios: Iterable[str | Path] = (),
        seed: int = 0,
        url: str | None = None,
        control_token: str | None = None,
    ) -> None:
        self.scenarios = [Path(p) for p in scenarios]
        self.seed = seed
        self.url = url.rstrip("/") if url else ""
        self.control_token = control_token
        self._server: _NotifyingServer | None = None
        self._thread: threading.Thread | None = None
        self._control: httpx.Client | None = None

    def start(self) -> EmulatorServer:
        if not self.url:
            self._start_thread()
        headers = {TOKEN_HEADER: self.control_token} if self.control_token else {}
        headers["x-emulator-client"] = "tokenhub-emulator.testing"  # a POST a web page could not send (control_http)
        self._control = httpx.Client(base_url=self.url + CONTROL, headers=headers, timeout=30)
        return self

    def _start_thread(self) -> None:
        from emulator.config import Settings
        from emulator.server.app import build_app
        from emulator.server.listener import server_config
        from emulator.server.runtime import Runtime

        settings = Settings(port=0, scenarios=self.scenarios, seed=self.seed, log_level="warning")
        runtime = Runtime.from_settings(settings)  # raises ScenarioError for bad session scenarios
        sock = listening_socket(settings.host, 0)
        ready = threading.Event()
        self._server = _NotifyingServer(
            server_config(build_app(settings, runtime), settings, runtime.error_body), ready
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="tokenhub-emulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S) or not self._thread.is_alive():
            raise RuntimeError("the tokenhub emulator did not start; see the log above")
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def control(self, method: str, path: str, test_id: str | None = None, **kwargs: Any) -> Any:
        """One control API call; raises EmulatorError on an error answer."""
        assert self._control is not None, "start() the server first"
        headers = dict(kwargs.pop("headers", {}))
        if test_id is not None:
            headers[TEST_ID_HEADER] = test_id
        response = self._control.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"message": response.text}
            raise EmulatorError(response.status_code, error)
        return response.json()

    def handle(self, test_id: str, base_dir: Path | None = None, name: str | None = None) -> EmulatorTest:
        return EmulatorTest(self, test_id, base_dir, name)


class _NotifyingServer(GracefulServer):
    """Sets an event once it listens, so starting waits on that and never sleeps."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class RecordedRequest:
    """One journaled request: `.body`, `.path`, `.status`, `.headers` (keys masked), `.rule`, `.misses` …"""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def messages(self) -> list[Any]:
        body = self.data.get("body")
        return list(body.get("messages", [])) if isinstance(body, dict) else []

    def __repr__(self) -> str:
        return f"<RecordedRequest #{self.data.get('id')} {self.data.get('method')} {self.data.get('path')} → {self.data.get('status')}>"


class RequestLog(list):
    """The requests of one test, oldest first; `filter(path=…, status=…, rule=…)` narrows it."""

    def filter(self, **criteria: Any) -> RequestLog:
        return RequestLog(r for r in self if all(r.data.get(k) == v for k, v in criteria.items()))

    @property
    def last(self) -> RecordedRequest | None:
        return self[-1] if self else None

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self]


class EmulatorTest:
    """The emulator as one test sees it: its own test id, scenarios, journal, failures and clients.

    `name` (the test's name) names what it loads inline: the rules of its first YAML text or dict are
    `<name>#1`, `<name>#2`, … (a rule's own `name:` wins), those of its second `<name>-2#1`, …
    """

    def __init__(
        self, server: EmulatorServer, test_id: str, base_dir: Path | None = None, name: str | None = None
    ) -> None:
        self.server = server
        self.test_id = test_id
        self.base_dir = base_dir
        self.name = (name or test_id.rsplit("::", 1)[-1]).replace("/", "_").replace("\\", "_")
        self._inline_loads = 0
        self.loaded = False  # whether this test loaded scenarios of its own
        self._clients: list[Any] = []

    # ------------------------------------------------------------ where it is

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def scoped_url(self) -> str:
        """A root URL that carries this test's id, for clients that cannot send the header."""
        return scoped_root(self.url, self.test_id)

    @property
    def headers(self) -> dict[str, str]:
        return {TEST_ID_HEADER: self.test_id}

    def env(self) -> dict[str, str]:
        """OPENAI_/ANTHROPIC_ base URLs (scoped to this test) and keys, for code that builds its own clients."""
        return {
            "OPENAI_BASE_URL": self.scoped_url + "/v1",
            "OPENAI_API_KEY": API_KEY,
            "ANTHROPIC_BASE_URL": self.scoped_url,
            "ANTHROPIC_API_KEY": ANTHROPIC_API_KEY,
        }

    # ------------------------------------------------------------ scenarios and faults

    def load(self, source: str | Path | Mapping[str, Any] | list[Any], *, name: str | None = None) -> list[str]:
        """Load a scenario for this test only: a file path, YAML text, or the scenario as a dict / list of rules."""
        text, file = self._scenario_text(source)
        self.loaded = True
        if file is None:  # YAML text or a dict: its rules are named after the test
            self._inline_loads += 1
            file = self.name if self._inline_loads == 1 else f"{self.name}-{self._inline_loads}"
        params = {k: v for k, v in (("name", name), ("file", file)) if v}
        headers = {"content-type": "application/yaml"}
        answer = self.server.control(
            "POST", "/scenarios", self.test_id, content=text.encode(), params=params, headers=headers
        )
        return answer["loaded"]

    def _scenario_text(self, source: Any) -> tuple[str, str | None]:
        if isinstance(source, Mapping | list):
            return yaml.safe_dump(source, sort_keys=False, allow_unicode=True), None
        if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
            path = self._resolve(Path(source))
            return path.read_text(encoding="utf-8"), str(path)
        return str(source), None

    def _resolve(self, path: Path) -> Path:
        if not path.is_absolute() and self.base_dir is not None and (self.base_dir / path).exists():
            return self.base_dir / path
        if not path.exists():
            raise FileNotFoundError(f"no scenario file {path} (looked in {self.base_dir or '.'} and {os.getcwd()})")
        return path

    def fail_next(
        self,
        count: int = 1,
        status: int = 429,
        *,
        message: str | None = None,
        type: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> int:
        """This test's next `count` API requests fail with `status`; how many failures are now queued."""
        given: dict[str, Any] = {"count": count, "status": status, "message": message, "type": type, "code": code}
        spec = {k: v for k, v in given.items() if v is not None}
        if headers:
            spec["headers"] = dict(headers)
        return self.server.control("POST", "/fail_next", self.test_id, json=spec)["queued"]

    def reset(self) -> None:
        """Forget this test's sequences, journal, scenarios and queued failures."""
        self.server.control("POST", "/reset", self.test_id)

    # ------------------------------------------------------------ journal

    @property
    def requests(self) -> RequestLog:
        data = self.server.control("GET", "/journal", self.test_id)["data"]
        return RequestLog(RecordedRequest(entry) for entry in data)

    @property
    def last_request(self) -> RecordedRequest | None:
        data = self.server.control("GET", "/journal", self.test_id, params={"limit": 1})["data"]
        return RecordedRequest(data[-1]) if data else None

    # ------------------------------------------------------------ verification

    @property
    def call_counts(self) -> dict[str, int]:
        """How many of this test's requests each rule answered: every rule the test loaded (0 when unused),
        and any other rule (shared scenarios, `fail_next`) that answered one."""
        counts = dict.fromkeys(self.loaded_rules(), 0)
        for request in self.requests:
            if request.rule is not None:
                counts[request.rule] = counts.get(request.rule, 0) + 1
        return counts

    def calls(self, rule: str) -> int:
        """How many of this test's requests `rule` answered; a rule name nothing loaded is an error."""
        counts = self.call_counts
        if rule not in counts and rule not in self._shared_rules():
            known = ", ".join(repr(name) for name in counts) or "none"
            raise KeyError(f"no rule named {rule!r} is loaded for this test (loaded: {known})")
        return counts.get(rule, 0)

    def loaded_rules(self) -> dict[str, int | None]:
        """The rules this test loaded (its own scenarios, not the shared ones), in match order: name → the
        number of steps of a sequence, None for other rules."""
        rules: dict[str, int | None] = {}
        for scenario in self._scenarios():
            if scenario.get("test_id") == self.test_id:
                sequences = scenario.get("sequences", {})
                for rule in scenario["rules"]:
                    rules[rule] = sequences.get(rule)
        return rules

    def _scenarios(self) -> list[dict[str, Any]]:
        return self.server.control("GET", "/scenarios", self.test_id)["scenarios"]

    def _shared_rules(self) -> set[str]:
        return {rule for s in self._scenarios() if s.get("test_id") is None for rule in s["rules"]}

    def unmatched(self) -> RequestLog:
        """This test's requests that no rule matched although rules were loaded for them (a generated reply,
        or the `error` fallback's 400): each with `.misses`, the nearest rules and why each missed."""
        return RequestLog(r for r in self.requests if r.rule is None and r.action in ("generated", "fail") and r.misses)

    def assert_all_matched(self) -> None:
        """AssertionError, with the nearest rules and why each missed, when a request matched no rule."""
        unmatched = self.unmatched()
        if unmatched:
            raise AssertionError(unmatched_report(unmatched))

    def assert_all_used(self) -> None:
        """AssertionError when a rule this test loaded answered no request, or a sequence has steps left."""
        counts = self.call_counts
        problems = []
        for rule, steps in self.loaded_rules().items():
            used = counts.get(rule, 0)
            if used == 0:
                problems.append(f"rule {rule!r} answered no request")
            elif steps is not None and used < steps:
                problems.append(f"rule {rule!r} answered {used} of its {steps} sequence steps")
        if problems:
            lines = "\n".join(f"  - {problem}" for problem in problems)
            raise AssertionError(f"tokenhub_emulator: not every rule this test loaded was used:\n{lines}")

    # ------------------------------------------------------------ clients

    def openai(self, **kwargs: Any) -> Any:
        import openai

        kwargs.setdefault("http_client", self._transport(openai.DefaultHttpxClient))
        return self._keep(openai.OpenAI(**self._openai_args(kwargs)))

    def async_openai(self, **kwargs: Any) -> Any:
        import openai

        kwargs.setdefault("http_client", self._transport(openai.DefaultAsyncHttpxClient))
        return self._keep(openai.AsyncOpenAI(**self._openai_args(kwargs)))

    def anthropic(self, **kwargs: Any) -> Any:
        import anthropic

        kwargs.setdefault("http_client", self._transport(anthropic.DefaultHttpxClient))
        return self._keep(anthropic.Anthropic(**self._anthropic_args(kwargs)))

    def async_anthropic(self, **kwargs: Any) -> Any:
        import anthropic

        kwargs.setdefault("http_client", self._transport(anthropic.DefaultAsyncHttpxClient))
        return self._keep(anthropic.AsyncAnthropic(**self._anthropic_args(kwargs)))

    def _transport(self, factory: Any) -> Any:
        """The SDK's own HTTP client; on plain http without loading CA certificates, which costs ~20 ms a client."""
        return factory(verify=False) if self.url.startswith("http://") else factory()

    def http(self, **kwargs: Any) -> httpx.Client:
        """A plain httpx client on the root URL, with a key and this test's id."""
        headers = {"authorization": f"Bearer {API_KEY}", **self.headers, **kwargs.pop("headers", {})}
        verify = kwargs.pop("verify", not self.url.startswith("http://"))
        return self._keep(httpx.Client(base_url=self.url, headers=headers, timeout=30, verify=verify, **kwargs))

    def _openai_args(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            "api_key": API_KEY,
            "base_url": self.openai_base_url,
            "max_retries": 0,
            **kwargs,
            "default_headers": {**self.headers, **kwargs.get("default_headers", {})},
        }

    def _anthropic_args(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            "api_key": ANTHROPIC_API_KEY,
            "base_url": self.anthropic_base_url,
            "max_retries": 0,
            **kwargs,
            "default_headers": {**self.headers, **kwargs.get("default_headers", {})},
        }

    def _keep(self, client: Any) -> Any:
        self._clients.append(client)
        return client

    def close(self, *, reset: bool = True) -> None:
        """Close the clients made here (sync ones; async ones close with their loop) and reset the test's state."""
        for client in self._clients:
            close = getattr(client, "close", None)
            if close is not None and not _is_async(client):
                close()
        self._clients.clear()
        if reset:
            self.reset()


def unmatched_report(unmatched: Iterable[RecordedRequest]) -> str:
    """Why each request matched no rule, for a failing test: the request, then its nearest rules."""
    unmatched = list(unmatched)
    noun = "request" if len(unmatched) == 1 else "requests"
    lines = [f"tokenhub_emulator: {len(unmatched)} {noun} of this test matched no scenario rule:"]
    for request in unmatched:
        answer = (
            "got a generated reply" if request.action == "generated" else f"got the error fallback's {request.status}"
        )
        last_user = _last_user_text(request)
        said = f", last user message {last_user!r}" if last_user is not None else ""
        lines.append(
            f"  #{request.id} {request.method} {request.path} (model {request.model}{said}) {answer}; nearest rules:"
        )
        for miss in request.misses:
            where = f"{Path(miss['file']).name}:{miss['line']}"
            lines.append(f"    - {miss['rule']!r} ({where}): {'; '.join(miss['reasons'])}")
    return "\n".join(lines)


def _last_user_text(request: RecordedRequest) -> str | None:
    body = request.data.get("body")
    if not isinstance(body, dict):
        return None
    items = body.get("messages") if isinstance(body.get("messages"), list) else body.get("input")
    if isinstance(items, str):
        return items[:200]
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content[:200]
            if isinstance(content, list):
                texts = [str(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
                return " ".join(texts)[:200]
    return None


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and (text.endswith((".yaml", ".yml")) or Path(text).is_file())


def _is_async(client: Any) -> bool:
    return type(client).__name__.startswith("Async")
