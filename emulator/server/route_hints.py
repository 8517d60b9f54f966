"""A 404 that says where the endpoint is: the path the client probably meant, and the base URL to give it.

Clients get the URL wrong in a few ways: no `/v1` (a base URL without it), `/v1` twice (a base URL with it,
on a client that adds its own), another gateway's prefix (`/v1/ai/cloudbase/…` on a TokenHub profile, or the
other way round), a trailing slash, capital letters. Each is tried in turn; a candidate counts only when the
app really serves it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from emulator.profiles import PROFILES, Profile
from emulator.protocols.base import Adapter


@dataclass(frozen=True)
class Target:
    """A kind of endpoint a client may have meant: a protocol's create endpoint, or the model list."""

    name: str  # a protocol's name, or "models": the `paths` key of the profiles
    client: str  # whose SDK asks it
    sdk_path: str  # what that SDK appends to its base URL
    adapter: Adapter  # whose envelope the 404 is written in

    @property
    def tail(self) -> str:
        """The part of the path that a client's own base URL does not carry."""
        return self.sdk_path.removeprefix("/v1")

    def base_url(self, root: str, profile: Profile) -> str:
        """The base URL its client needs on `profile`, from the server's root URL."""
        return root.rstrip("/") + profile.paths[self.name].removesuffix(self.sdk_path)


def targets(adapters: Sequence[Adapter]) -> list[Target]:
    """Each protocol's create endpoint, then the model list (asked by the first protocol's client)."""
    found = [Target(a.protocol, a.client, a.sdk_path, a) for a in adapters]
    return [*found, Target("models", adapters[0].client, adapters[0].sdk_models_path, adapters[0])]


@dataclass(frozen=True)
class RouteHint:
    path: str  # the path the client probably meant
    target: Target  # whose envelope and client it is
    base_url: str  # what to give the client as its base URL
    why: str  # what was wrong, in a few words

    def message(self, method: str, asked: str) -> str:
        return (
            f"Unknown request URL: {method} {asked}. Did you mean {method} {self.path}? ({self.why}.) "
            f"Give the {self.target.client} client the base URL {self.base_url} (it adds {self.target.sdk_path} "
            "itself)."
        )


def hint_for(
    path: str, profile: Profile, served: Callable[[str], bool], root: str, kinds: Sequence[Target]
) -> RouteHint | None:
    """The served path nearest to `path`, or None. `served(path)` says whether the app answers a path."""
    for candidate, target, why in _candidates(path, profile, kinds):
        if candidate != path and served(candidate):
            return RouteHint(candidate, target, target.base_url(root, profile), why)
    return None


def _candidates(path: str, profile: Profile, kinds: Sequence[Target]) -> list[tuple[str, Target, str]]:
    found: list[tuple[str, Target | None, str]] = []
    trimmed = path.rstrip("/") or "/"
    if trimmed != path:
        found.append((trimmed, _target_of(trimmed, profile, kinds), "no trailing slash"))
    lowered = trimmed.lower()
    if lowered != trimmed:
        found.append((lowered, _target_of(lowered, profile, kinds), "paths are lower case"))
    for other in PROFILES.values():  # another gateway's prefix
        for target in kinds:
            prefix, own = other.paths[target.name], profile.paths[target.name]
            if prefix != own and (lowered == prefix or lowered.startswith(prefix + "/")):
                why = f"this server is the {profile.name} profile, not {other.name}: start it with --profile {other.name} for that layout"
                found.append((own + lowered[len(prefix) :], target, why))
    for target in kinds:  # a missing or doubled /v1, or a prefix of the client's own
        tail = target.tail
        at = lowered.find(tail)
        while at != -1:
            rest = lowered[at + len(tail) :]
            if not rest or rest.startswith("/"):
                candidate = profile.paths[target.name] + rest
                found.append((candidate, target, _difference(lowered, candidate)))
                break
            at = lowered.find(tail, at + 1)
    return [(c, t, why) for c, t, why in found if t is not None]


def _difference(asked: str, served: str) -> str:
    if served.endswith(asked):
        return f"the path lacks {served[: len(served) - len(asked)]} in front"
    if asked.endswith(served):
        return f"the path has {asked[: len(asked) - len(served)]} too many in front"
    return f"this server serves it at {served}"


def _target_of(path: str, profile: Profile, kinds: Sequence[Target]) -> Target | None:
    return next((target for target in kinds if path.startswith(profile.paths[target.name])), None)
