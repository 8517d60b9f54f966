"""What every wire protocol provides to the request pipeline (emulator/server/pipeline.py), and what it is.

An adapter turns its request body into an Exchange and a shaped Reply back into its own JSON body or
SSE events; errors are rendered in its own envelope. The pipeline (auth → body → parse → engine →
shape → render/deliver) is the same for every protocol.

Everything that differs by protocol is an attribute or a method here — the name scenarios and the journal
call it by, whose SDK speaks it and what that SDK appends to its base URL, its rate-limit headers, the status
of an overload, how its models are listed, how a recorded answer reads back — so that nothing outside
emulator/protocols/ branches on a protocol's name. emulator/protocols/registry.py lists the adapters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.routing import BaseRoute

from emulator.errors import ApiError
from emulator.exchange import Exchange, Failure, Reply
from emulator.http import dumps
from emulator.profiles import DECLARE_HINT, Catalog, CatalogModel, Profile
from emulator.ratelimit import BucketState, openai_limit_headers
from emulator.shaping import Shaped
from emulator.sse import SseEvent

RecordedEvent = tuple[str | None, Any]  # a streamed event as `record` read it: (its name, its parsed JSON or text)


@dataclass
class Context:
    """What an adapter may consult while parsing: the gateway it plays and the models it serves."""

    profile: Profile
    catalog: Catalog
    allowed_keys: frozenset[str] = field(default_factory=frozenset)


class Adapter:
    protocol: str  # its name: a scenario's `endpoint:`, the journal's `protocol`; the profiles' `paths` key
    client: str = "OpenAI"  # whose SDK speaks it (a 404's hint names it)
    sdk_path: str  # what that SDK appends to its base URL: "/chat/completions", "/v1/messages"
    sdk_models_path: str = "/models"  # what that SDK appends to list the models
    overload_status: int = 500  # the status a mid-stream error event reports when the fault names none
    tool_input_is_object: bool = False  # tool-call arguments go out as a JSON object, never as text

    def base_path(self, paths: Mapping[str, str]) -> str:
        """Where its SDK's base URL points, on a profile with these `paths` (the server's root not included)."""
        return paths[self.protocol].removesuffix(self.sdk_path)

    @classmethod
    def made(cls, store_bytes: int | None = None) -> Adapter:
        """The adapter a server runs, its stores (if it keeps any) bounded to `store_bytes` (None: their default)."""
        return cls()

    def claims(self, headers: Mapping[str, str]) -> bool:
        """Whether a request with these headers comes from this protocol's client, on a path that belongs to no
        protocol (/v1/models, a 404): then the answer is in this protocol's shape and envelope. The first
        adapter of the registry answers when none claims it."""
        return False

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

    def limit_headers(self, requests: BucketState | None, tokens: BucketState | None) -> dict[str, str]:
        """The rate-limit headers its gateways send: OpenAI's `x-ratelimit-*` family unless it says otherwise."""
        return openai_limit_headers(requests, tokens)

    def model_list(self, models: Sequence[CatalogModel], query: QueryParams) -> Mapping[str, Any]:
        """`GET …/models` for this protocol's client: OpenAI's list unless it says otherwise."""
        return {"object": "list", "data": [_openai_model(m) for m in models]}

    def model_info(self, model: CatalogModel | None, requested: str, catalog: Catalog) -> Mapping[str, Any]:
        """`GET …/models/{id}` for this protocol's client; a model that is not there is a 404 on every gateway."""
        if model is None:
            available = f"Available models: {catalog.available()}. {DECLARE_HINT}"
            raise ApiError(
                404, f"The model '{requested}' does not exist. {available}", param="model", code="model_not_found"
            )
        return _openai_model(model)

    def reply_from(self, body: Any) -> Reply:
        """The inverse of `render`: an answer in this protocol's JSON read back into the neutral terms (what
        `record` writes as a rule). The finish reason is the wire's own; counts it lacks are None."""
        raise NotImplementedError

    def body_from(self, events: Sequence[RecordedEvent]) -> Any:
        """The inverse of `events`: a recorded stream folded into the JSON body that answers the same."""
        raise NotImplementedError

    def reset(self, test_id: str | None = None) -> None:
        """Forget what the adapter keeps between requests (stored responses), of one test id or all."""

    def continues(self, body: Any) -> tuple[str, str] | None:
        """The stored turn a request continues, as (store, key) in the shared state (emulator/state/): a
        Responses `previous_response_id`, a thread's `previous_message_id`; None for a request that continues
        nothing."""
        return None

    def holds(self, key: str) -> bool:
        """Whether this process keeps the stored turn `key`."""
        return False

    def adopt(self, record: Mapping[str, Any], continued: bool = False) -> None:
        """Keep a stored turn another replica kept (emulator/protocols/shared_turns.py), oldest of a chain first;
        `continued`: it has been continued already."""

    def mark_continued(self, key: str, test_id: str) -> None:
        """Another replica continued the stored turn `key`: it may not be continued here again (threads)."""

    def extra_routes(self, path: str) -> list[BaseRoute]:
        """Endpoints beyond the create endpoint, which the active profile serves at `path` (the full path,
        e.g. "/v1/responses", or "/v1/ai/cloudbase/responses" on cloudbase): add `path + "/{id}"`,
        `path + "/count_tokens"`, … (retrieving stored responses, counting tokens)."""
        return []


def _openai_model(model: CatalogModel) -> dict[str, object]:
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": model.owned_by}


def counted(value: Any) -> int | None:
    """A token count as a recorded usage gives it: an integer, or None for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
