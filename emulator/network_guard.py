"""Network safety for a test suite: connections from the test process to known LLM API hosts fail loudly.

`--tokenhub-block-network` (emulator/pytest_plugin.py) turns it on, as pytest-recording's `--block-network`
and pytest-socket do: a test that forgot to point its client at the emulator cannot reach a real provider
(and spend money, or leak a key). Names are checked where every client resolves them, `socket.getaddrinfo`
(httpx, requests, aiohttp and asyncio all go through it), and in `socket.socket.connect` (a name handed to
the socket directly). The error names the host and the emulator's URL;
and since SDKs catch connection errors and retry, the plugin also fails the test itself with the same
message once it ends.
"""

from __future__ import annotations

import fnmatch
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

# The gateways this project emulates, and the providers an LLM client is likely to reach by default.
KNOWN_LLM_HOSTS = (
    "tokenhub.tencentmaas.com",
    "*.tencentmaas.com",
    "*.tencentcloudmaas.com",
    "tokenhub.link",
    "*.tokenhub.link",
    "*.tokenhub.com",
    "*.tcloudbasegateway.com",
    "api.maxtoken.io",
    "*.maxtoken.io",
    "api.openai.com",
    "*.openai.azure.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "*-aiplatform.googleapis.com",
    "bedrock-runtime.*.amazonaws.com",
    "api.mistral.ai",
    "api.groq.com",
    "api.together.xyz",
    "api.fireworks.ai",
    "openrouter.ai",
    "api.deepseek.com",
    "api.moonshot.cn",
    "api.moonshot.ai",
    "open.bigmodel.cn",
    "dashscope.aliyuncs.com",
    "dashscope-intl.aliyuncs.com",
    "api.x.ai",
    "api.cohere.com",
    "api.cohere.ai",
    "api.perplexity.ai",
    "api.minimax.chat",
    "api.minimaxi.com",
)


class BlockedNetworkError(ConnectionRefusedError):
    """A connection to a real LLM API from a test run with --tokenhub-block-network."""


class NetworkGuard:
    """While on, resolving or connecting to a blocked host raises BlockedNetworkError; attempts are kept."""

    def __init__(self, emulator_url: Callable[[], str], hosts: Iterable[str] = KNOWN_LLM_HOSTS) -> None:
        self.emulator_url = emulator_url
        self.hosts = tuple(h.lower() for h in hosts)
        self.attempts: list[str] = []  # the messages of the blocked attempts, since the last `take`
        self._lock = threading.Lock()
        self._real_getaddrinfo: Callable[..., Any] | None = None
        self._real_connect: Callable[..., Any] | None = None
        self._real_connect_ex: Callable[..., Any] | None = None

    def blocks(self, host: Any) -> bool:
        if isinstance(host, bytes):
            host = host.decode("idna", "replace")
        if not isinstance(host, str):
            return False
        name = host.lower().rstrip(".")
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.hosts)

    def message(self, host: str) -> str:
        try:
            url = self.emulator_url()
        except Exception:  # noqa: BLE001 - the emulator may not be started yet; the advice still holds
            url = "the tokenhub_emulator fixture's URL"
        return (
            f"tokenhub-emulator blocked a connection to {host}, a real LLM API (--tokenhub-block-network). "
            f"Point the client at the emulator instead: base_url={url}/v1 for OpenAI clients, {url} for "
            "Anthropic ones (tokenhub_emulator.openai() / .anthropic() are ready-made, or use the tokenhub_env "
            "fixture / --tokenhub-env for clients that read OPENAI_BASE_URL / ANTHROPIC_BASE_URL)."
        )

    def refuse(self, host: str) -> BlockedNetworkError:
        text = self.message(host)
        with self._lock:
            self.attempts.append(text)
        return BlockedNetworkError(text)

    def take(self) -> list[str]:
        with self._lock:
            taken, self.attempts = self.attempts, []
        return taken

    def start(self) -> None:
        if self._real_getaddrinfo is not None:
            return
        real_getaddrinfo = self._real_getaddrinfo = socket.getaddrinfo
        real_connect = self._real_connect = socket.socket.connect
        real_connect_ex = self._real_connect_ex = socket.socket.connect_ex
        guard = self

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if guard.blocks(host):
                raise guard.refuse(str(host))
            return real_getaddrinfo(host, *args, **kwargs)

        def connect(sock: socket.socket, address: Any) -> Any:
            if isinstance(address, tuple) and address and guard.blocks(address[0]):
                raise guard.refuse(str(address[0]))
            return real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> Any:
            if isinstance(address, tuple) and address and guard.blocks(address[0]):
                raise guard.refuse(str(address[0]))
            return real_connect_ex(sock, address)

        socket.getaddrinfo = getaddrinfo
        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]

    def stop(self) -> None:
        if self._real_getaddrinfo is None:
            return
        socket.getaddrinfo = self._real_getaddrinfo
        socket.socket.connect = self._real_connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = self._real_connect_ex  # type: ignore[method-assign,assignment]
        self._real_getaddrinfo = self._real_connect = self._real_connect_ex = None
