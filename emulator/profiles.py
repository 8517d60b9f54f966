"""The documented gateways: model catalog, model-id resolution, and the profiles (paths, auth, error tables)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType

from emulator.errors import ApiError


@dataclass(frozen=True)
class CatalogModel:
    id: str
    owned_by: str
    created: int
    reasoning: bool = True  # can think when asked (reasoning_effort / enable_thinking)
    providers: tuple[str, ...] = ()  # prefixes accepted as `provider/model`
    serves: str | None = None  # a custom service id (ep-…) names the model it runs


# TokenHub's model catalog, plus the models tokenhub.link's and CloudBase's documentation use in their examples.
# `created` values are fixed so that /v1/models is byte-stable across runs.
BUILTIN_MODELS: tuple[CatalogModel, ...] = (
    CatalogModel("deepseek-v3.2", "deepseek", 1764547200, providers=("deepseek", "alibaba", "tencent")),
    CatalogModel("glm-5", "zhipu", 1770249600, providers=("zhipu", "z-ai")),
    CatalogModel("glm-5v-turbo", "zhipu", 1772150400, providers=("zhipu", "z-ai")),
    CatalogModel("glm-5-turbo", "zhipu", 1771545600, providers=("zhipu", "z-ai")),
    CatalogModel("glm-5.1", "zhipu", 1774224000, providers=("zhipu", "z-ai")),
    CatalogModel("kimi-k2.5", "moonshot", 1769385600, providers=("moonshot", "moonshotai")),
    CatalogModel("minimax-m2.5", "minimax", 1770854400, providers=("minimax",)),
    CatalogModel("minimax-m2.7", "minimax", 1773619200, providers=("minimax",)),
    CatalogModel("qwen-plus", "alibaba", 1735084800, providers=("alibaba", "qwen")),
    CatalogModel("hy3-preview", "tencent", 1775001600, providers=("tencent",)),
)


@dataclass(frozen=True)
class ErrorKind:
    type: str
    code: str | None
    message: str


# TokenHub's documented error table, and what the gateway answers for the HTTP-level failures around it.
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

    def find(self, requested: str) -> CatalogModel | None:
        """The model that serves `requested` (an id, a `provider/model` id or a custom service id), if any."""
        model = self.models.get(requested)
        if model is None and "/" in requested:
            provider, _, name = requested.partition("/")
            candidate = self.models.get(name)
            if candidate is not None and (not candidate.providers or provider in candidate.providers):
                model = candidate
        if model is not None and model.serves:
            model = self.models.get(model.serves, model)
        return model

    def resolve(self, requested: str, profile: Profile | None = None) -> CatalogModel:
        """The model that serves `requested`; raises the profile's unknown-model error when nothing does."""
        model = self.find(requested)
        if model is None:
            raise (profile or PROFILES[DEFAULT_PROFILE]).unknown_model(requested, self)
        return model

    def available(self) -> str:
        """The ids a request may name, aliases with what they serve: `glm-5, my-coder (serves glm-5)`."""
        return ", ".join(f"{m.id} (serves {m.serves})" if m.serves else m.id for m in self.models.values())


DECLARE_HINT = "To serve another model id, declare it under `models:` in a scenario, e.g. `models: [{id: my-model, serves: glm-5}]`."


# MaxToken's documented table: the same statuses, named as MaxToken names them.
MAXTOKEN_ERRORS: dict[int, ErrorKind] = {
    **TOKENHUB_ERRORS,
    401: ErrorKind("authentication_error", "unauthorized", "API key is missing or invalid"),
    403: ErrorKind(
        "permission_error",
        "forbidden",
        "Your API key doesn't have permission to access this resource, or insufficient balance for the requested operation",
    ),
    429: ErrorKind("rate_limit_error", "too_many_requests", "You've exceeded your rate limit"),
    500: ErrorKind("server_error", "internal_server_error", "An internal server error occurred"),
    503: ErrorKind("server_error", "service_unavailable", "The service is temporarily unavailable."),
}

# The upstream OpenAI API's own types and codes.
OPENAI_ERRORS: dict[int, ErrorKind] = {
    400: ErrorKind("invalid_request_error", None, "The request is invalid."),
    401: ErrorKind("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ErrorKind("invalid_request_error", "model_not_found", "You do not have access to this model."),
    404: ErrorKind("invalid_request_error", "unknown_url", "Unknown request URL."),
    405: ErrorKind("invalid_request_error", "method_not_allowed", "Method not allowed."),
    408: ErrorKind("invalid_request_error", "request_timeout", "The request timed out."),
    413: ErrorKind("invalid_request_error", "request_too_large", "The request body is too large."),
    415: ErrorKind("invalid_request_error", "unsupported_media_type", "Content-Type must be application/json."),
    422: ErrorKind("invalid_request_error", None, "The request could not be processed."),
    429: ErrorKind("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ErrorKind("server_error", None, "The server had an error while processing your request."),
    502: ErrorKind("server_error", None, "Bad gateway."),
    503: ErrorKind("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ErrorKind("server_error", None, "The server did not answer in time."),
}


STANDARD_PATHS: Mapping[str, str] = MappingProxyType(
    {
        "chat": "/v1/chat/completions",
        "responses": "/v1/responses",
        "messages": "/v1/messages",
        "models": "/v1/models",
    }
)
# CloudBase's documentation: an OpenAI client's base URL is …/v1/ai/cloudbase, an Anthropic client's base URL the same
# (the SDK appends /v1/messages).
CLOUDBASE_PATHS: Mapping[str, str] = MappingProxyType(
    {
        "chat": "/v1/ai/cloudbase/chat/completions",
        "responses": "/v1/ai/cloudbase/responses",
        "messages": "/v1/ai/cloudbase/v1/messages",
        "models": "/v1/ai/cloudbase/models",
    }
)


@dataclass(frozen=True)
class Range:
    low: float
    high: float


@dataclass(frozen=True)
class AnthropicRoute:
    """How a gateway's Anthropic Messages route behaves."""

    key_header: bool = True  # `x-api-key` accepted (Bearer always is)
    version_required: bool = False  # `anthropic-version` must be sent
    ignored_fields: frozenset[str] = frozenset()  # accepted and dropped (TokenHub documents them as "Ignored")
    unsupported_blocks: frozenset[str] = frozenset()  # refused with a 400 (TokenHub: "Not supported")
    prompt_caching: bool = True  # cache_control breakpoints are accounted (as CloudBase documents); TokenHub ignores them
    parallel_switch: bool = True  # tool_choice.disable_parallel_tool_use is honoured
    history_thinking: bool = True  # thinking blocks of earlier turns reach the model
    upstream: bool = False  # api.anthropic.com itself: unknown model → 404, temperature at most 1


@dataclass(frozen=True)
class UnknownModel:
    """How a gateway refuses a model it does not serve: status, code and the first words of the message."""

    status: int = 403
    code: str | None = None  # None: the error table's code for `status`
    wording: str = "The model `{model}` does not exist or has not been activated."


TOKENHUB_ANTHROPIC = AnthropicRoute(
    ignored_fields=frozenset({"container", "mcp_servers", "metadata", "service_tier", "thinking", "top_k"}),
    unsupported_blocks=frozenset({"image", "document", "search_result", "redacted_thinking"}),
    prompt_caching=False,
    parallel_switch=False,
    history_thinking=False,
)


@dataclass(frozen=True)
class Profile:
    """One documented gateway: where its endpoints live, how it authenticates, what it calls its errors."""

    name: str
    description: str
    paths: Mapping[str, str] = field(default_factory=lambda: STANDARD_PATHS)  # chat, responses, messages, models
    anthropic: AnthropicRoute = AnthropicRoute()
    errors: dict[int, ErrorKind] = field(default_factory=lambda: TOKENHUB_ERRORS)
    ranges: dict[str, Range] = field(default_factory=dict)  # stricter sampling ranges than the protocol's
    unknown: UnknownModel = UnknownModel()

    def unknown_model(self, requested: str, catalog: Catalog) -> ApiError:
        """The error for a model nothing serves: the gateway's words, then what is available and how to add one."""
        message = (
            f"{self.unknown.wording.format(model=requested)} Available models: {catalog.available()}. {DECLARE_HINT}"
        )
        return ApiError(self.unknown.status, message, code=self.unknown.code, param="model")

    def error_kind(self, status: int) -> ErrorKind:
        """The type, code and wording for `status`; a status the table lacks gets its class's type and code
        (400's or 500's) and the HTTP reason phrase as its message."""
        if status in self.errors:
            return self.errors[status]
        kind = self.errors.get(400 if status < 500 else 500, TOKENHUB_ERRORS[400 if status < 500 else 500])
        try:
            phrase = f"{HTTPStatus(status).phrase}."
        except ValueError:
            phrase = f"The request failed with status {status}."
        return ErrorKind(kind.type, kind.code, phrase)

    def check_ranges(self, values: dict[str, float | None]) -> None:
        """Raise the gateway's 400 for a sampling value outside its documented range."""
        for name, value in values.items():
            allowed = self.ranges.get(name)
            if value is not None and allowed is not None and not allowed.low <= value <= allowed.high:
                raise ApiError.invalid(
                    f"Invalid '{name}': {value} is outside the range [{allowed.low:g}, {allowed.high:g}] "
                    f"this gateway accepts.",
                    param=name,
                )


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "tokenhub",
            "Tencent Cloud TokenHub: chat completions, Anthropic messages, responses",
            anthropic=TOKENHUB_ANTHROPIC,
        ),
        Profile("tokenhub-link", "tokenhub.link: provider/model ids, enable_thinking, enable_search"),
        Profile(
            "cloudbase",
            "Tencent CloudBase AI gateway: everything under /v1/ai/cloudbase/, Bearer auth on messages",
            paths=CLOUDBASE_PATHS,
            anthropic=AnthropicRoute(key_header=False, version_required=True),
        ),
        Profile(
            "maxtoken",
            "MaxToken: its error table and parameter ranges",
            errors=MAXTOKEN_ERRORS,
            ranges={"temperature": Range(0.0, 1.0), "top_p": Range(0.0, 1.0)},
        ),
        Profile(
            "openai",
            "The upstream OpenAI API shapes",
            errors=OPENAI_ERRORS,
            unknown=UnknownModel(
                404, "model_not_found", "The model `{model}` does not exist or you do not have access to it."
            ),
        ),
        Profile(
            "anthropic",
            "The upstream Anthropic API shapes",
            anthropic=AnthropicRoute(version_required=True, upstream=True),
        ),
    )
}
DEFAULT_PROFILE = "tokenhub"
