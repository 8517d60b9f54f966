"""A 404 that says where the endpoint is: the path the client probably meant, and the base URL to give it.

Clients get the URL wrong in a few ways: no `/v1` (a base URL without it), `/v1` twice (a base URL with it,
on a client that adds its own), another gateway's prefix (`/v1/ai/cloudbase/…` on a TokenHub profile, or the
other way round), a trailing slash, capital letters. Each is tried in turn; a candidate counts only when the
app really serves it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from emulator.profiles import PROFILES, Profile

# The part of each endpoint's path that a client's own base URL does not carry, by protocol.
TAILS = {"chat": "/chat/completions", "responses": "/responses", "messages": "/messages", "models": "/models"}
CLIENTS = {"chat": "OpenAI", "responses": "OpenAI", "models": "OpenAI", "messages": "Anthropic"}


@dataclass(frozen=True)
class RouteHint:
    path: str  # the path the client probably meant
    protocol: str  # chat | responses | messages | models: whose envelope and client it is
    base_url: str  # what to give the client as its base URL
    why: str  # what was wrong, in a few words

    def message(self, method: str, asked: str) -> str:
        client = CLIENTS[self.protocol]
        adds = TAILS[self.protocol] if self.protocol != "messages" else "/v1/messages"
        return (
            f"Unknown request URL: {method} {asked}. Did you mean {method} {self.path}? ({self.why}.) "
            f"Give the {client} client the base URL {self.base_url} (it adds {adds} itself)."
        )


def base_url(root: str, profile: Profile, protocol: str) -> str:
    """The base URL a client of `protocol` needs on `profile`, from the server's root URL."""
    root = root.rstrip("/")
    if protocol == "messages":
        return root + profile.paths["messages"].removesuffix("/v1/messages")
    return root + profile.paths["chat"].removesuffix("/chat/completions")


def hint_for(path: str, profile: Profile, served: Callable[[str], bool], root: str) -> RouteHint | None:
    """The served path nearest to `path`, or None. `served(path)` says whether the app answers a path."""
    for candidate, protocol, why in _candidates(path, profile):
        if candidate != path and served(candidate):
            return RouteHint(candidate, protocol, base_url(root, profile, protocol), why)
    return None


def _candidates(path: str, profile: Profile) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    trimmed = path.rstrip("/") or "/"
    if trimmed != path:
        found.append((trimmed, _protocol_of(trimmed, profile), "no trailing slash"))
    lowered = trimmed.lower()
    if lowered != trimmed:
        found.append((lowered, _protocol_of(lowered, profile), "paths are lower case"))
    for other in PROFILES.values():  # another gateway's prefix
        for protocol, prefix in other.paths.items():
            own = profile.paths[protocol]
            if prefix != own and (lowered == prefix or lowered.startswith(prefix + "/")):
                why = f"this server is the {profile.name} profile, not {other.name}: start it with --profile {other.name} for that layout"
                found.append((own + lowered[len(prefix) :], protocol, why))
    for protocol, tail in TAILS.items():  # a missing or doubled /v1, or a prefix of the client's own
        at = lowered.find(tail)
        while at != -1:
            rest = lowered[at + len(tail) :]
            if not rest or rest.startswith("/"):
                candidate = profile.paths[protocol] + rest
                found.append((candidate, protocol, _difference(lowered, candidate)))
                break
            at = lowered.find(tail, at + 1)
    return [(c, p, why) for c, p, why in found if p]


def _difference(asked: str, served: str) -> str:
    if served.endswith(asked):
        return f"the path lacks {served[: len(served) - len(asked)]} in front"
    if asked.endswith(served):
        return f"the path has {asked[: len(asked) - len(served)]} too many in front"
    return f"this server serves it at {served}"


def _protocol_of(path: str, profile: Profile) -> str:
    for protocol in ("messages", "chat", "responses", "models"):
        if path.startswith(profile.paths[protocol]):
            return protocol
    return ""
