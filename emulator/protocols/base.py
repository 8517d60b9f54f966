"""What every wire protocol provides to the request pipeline in app.py.

An adapter turns its request body into an Exchange and a shaped Reply back into its own JSON body or
SSE events; errors are rendered in its own envelope. The pipeline (auth → body → parse → engine →
shape → render/deliver) is the same for every protocol.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute

from emulator.exchange import Exchange, Failure, Protocol
from emulator.http import dumps
from emulator.profiles import Catalog, Profile
from emulator.server.delivery import SseEvent
from emulator.shaping import Shaped


@dataclass
class Context:
    """What an adapter may consult while parsing: the gateway it plays and the models it serves."""

    profile: Profile
    catalog: Catalog
    allowed_keys: frozenset[str] = field(default_factory=frozenset)


class Adapter:
    protocol: Protocol  # the active profile's `paths[protocol]` says where its create endpoint is served

    def authenticate(self, request: Request, context: Context) -> str:
        """The caller's API key; raise ApiError(401) when it is missing or not accepted."""
        raise NotImplementedError

    def long_read(self, body: Any) -> bool:
        """Whether reading this request is long work besides its own size (a long conversation it continues, kept
        by the server): the pipeline then reads it in a worker thread."""
        return False

    def parse(self, body: Any, request: Request, key: str, context: Context) -> tuple[Exchange, Any]:
        """The neutral Exchange and whatever options rendering needs; raise ApiError(400…) for bad input."""
        raise NotImplementedError

    def render(self, shaped: Shaped, exchange: Exchange, options: Any) -> Mapping[str, Any]:
        raise NotImplementedError

    def render_json(self, shaped: Shaped, exchange: Exchange, options: Any) -> str:
        """`render` as the JSON text sent (compact, UTF-8 unescaped); an adapter may write it more directly."""
        return dumps(self.render(shaped, exchange, options))

    def events(self, shaped: Shaped, exchange: Exchange, options: Any) -> Iterator[SseEvent]:
        """The whole stream, terminator included."""
        raise NotImplementedError

    def error_body(self, failure: Failure, context: Context, request_id: str | None = None) -> Mapping[str, Any]:
        """The protocol's error envelope; `request_id` is the id the response's headers carry."""
        raise NotImplementedError

    def error_event(self, failure: Failure, context: Context) -> SseEvent:
        """The protocol's own error event, for a failure in the middle of a stream."""
        raise NotImplementedError

    def error_headers(self, failure: Failure) -> Mapping[str, str]:
        return failure.headers

    def reset(self, test_id: str | None = None) -> None:
        """Forget what the adapter keeps between requests (stored responses), of one test id or all."""

    def extra_routes(self, path: str) -> list[BaseRoute]:
        """Endpoints beyond the create endpoint, which the active profile serves at `path` (the full path,
        e.g. "/v1/responses", or "/v1/ai/cloudbase/responses" on cloudbase): add `path + "/{id}"`,
        `path + "/count_tokens"`, … (retrieving stored responses, counting tokens)."""
        return []
