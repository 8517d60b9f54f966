"""The documented gateways: model catalog, model-id resolution and error table.

Only the `tokenhub` profile (seed 000, with the `provider/model` ids of seed 001) exists so far;
the profile switch (paths, auth style per gateway) arrives with the multi-protocol work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from emulator.errors import ApiError


@dataclass(frozen=True)
class CatalogModel:
    id: str
    owned_by: str
    created: int
    reasoning: bool = True  # can think when asked (reasoning_effort / enable_thinking)
    vision: bool = False
    providers: tuple[str, ...] = ()  # prefixes accepted as `provider/model`
    serves: str | None = None  # a custom service id (ep-…) names the model it runs


# Seed 000's catalog plus the models seeds 001 and 003 use in their examples.
# `created` values are fixed so that /v1/models is byte-stable across runs.
BUILTIN_MODELS: tuple[CatalogModel, ...] = (
    CatalogModel("deepseek-v3.2", "deepseek", 1764547200, providers=("deepseek", "alibaba", "tencent")),
    CatalogModel("glm-5", "zhipu", 1770249600, providers=("zhipu", "z-ai")),
    CatalogModel("glm-5v-turbo", "zhipu", 1772150400, vision=True, providers=("zhipu", "z-ai")),
    CatalogModel("glm-5-turbo", "zhipu", 1771545600, providers=("zhipu", "z-ai")),
    CatalogModel("glm-5.1", "zhipu", 1774224000, providers=("zhipu", "z-ai")),
    CatalogModel("kimi-k2.5", "moonshot", 1769385600, vision=True, providers=("moonshot", "moonshotai")),
    CatalogModel("minimax-m2.5", "minimax", 1770854400, providers=("minimax",)),
    CatalogModel("minimax-m2.7", "minimax", 1773619200, providers=("minimax",)),
    CatalogModel("qwen-plus", "alibaba", 1735084800, vision=False, providers=("alibaba", "qwen")),
    CatalogModel("hy3-preview", "tencent", 1775001600, providers=("tencent",)),
)


@dataclass(frozen=True)
class ErrorKind:
    type: str
    code: str | None
    message: str


# Seed 000's error table, and what the gateway answers for the HTTP-level failures around it.
TOKENHUB_ERRORS: dict[int, ErrorKind] = {
    400: ErrorKind("invalid_request_error", "invalid_request_error", "The request parameters are incorrect."),
    401: ErrorKind("authentication_error", "authentication_error", "The API Key is invalid."),
    403: ErrorKind("model_not_available", "model_not_available", "The model does not exist or has not been activated."),
    404: ErrorKind("invalid_request_error", "not_found", "The requested resource was not found."),
    405: ErrorKind("invalid_request_error", "method_not_allowed", "The method is not allowed for this resource."),
    408: ErrorKind("invalid_request_error", "request_timeout", "The request timed out."),
    413: ErrorKind("invalid_request_error", "request_too_large", "The request body is too large."),
    415: ErrorKind("invalid_request_error", "unsupported_media_type", "Content-Type must be application/json."),
    422: ErrorKind("invalid_request_error", "unprocessable_entity", "The request could not be processed."),
    429: ErrorKind("rate_limit_exceeded", "rate_limit_exceeded", "Request rate limit exceeded."),
    500: ErrorKind("engine_server_error", "engine_server_error", "Engine internal error"),
    502: ErrorKind("engine_server_error", "bad_gateway", "The upstream engine returned an invalid response."),
    503: ErrorKind("service_unavailable", "service_unavailable", "Service is temporarily unavailable."),
    504: ErrorKind("engine_server_error", "gateway_timeout", "The upstream engine did not answer in time."),
}


def error_kind(status: int) -> ErrorKind:
    """The table's row for a status; statuses it does not list fall back to their class."""
    if status in TOKENHUB_ERRORS:
        return TOKENHUB_ERRORS[status]
    return TOKENHUB_ERRORS[400 if status < 500 else 500]


@dataclass
class Catalog:
    """The models a gateway serves: built-ins plus what scenarios declare."""

    models: dict[str, CatalogModel] = field(default_factory=dict)

    @classmethod
    def with_builtins(cls, extra: Iterable[CatalogModel] = ()) -> Catalog:
        catalog = cls({m.id: m for m in BUILTIN_MODELS})
        for model in extra:
            catalog.models[model.id] = model
        return catalog

    def listed(self) -> list[CatalogModel]:
        return list(self.models.values())

    def resolve(self, requested: str) -> CatalogModel:
        """The model that serves `requested`: an id, a `provider/model` id or a custom service id.

        Raises the gateway's 403 `model_not_available` when nothing serves it.
        """
        model = self.models.get(requested)
        if model is None and "/" in requested:
            provider, _, name = requested.partition("/")
            candidate = self.models.get(name)
            if candidate is not None and (not candidate.providers or provider in candidate.providers):
                model = candidate
        if model is not None and model.serves:
            model = self.models.get(model.serves, model)
        if model is None:
            available = ", ".join(m.id for m in self.models.values() if not m.serves)
            raise ApiError(
                403,
                f"The model `{requested}` does not exist or has not been activated. Available models: {available}.",
                param="model",
            )
        return model
