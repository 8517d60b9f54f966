"""`GET /v1/models` and `/v1/models/{id}` as Anthropic's Models API answers them.

An Anthropic client (`anthropic.Anthropic().models.list()`, Claude Code) asks the same path an OpenAI
client asks; it is told apart by what it sends with every request: `anthropic-version` or `x-api-key`.
The list is newest first and paged with `limit`, `after_id` and `before_id`, as the API pages it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from emulator.errors import ApiError
from emulator.profiles import CatalogModel

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
LIFECYCLES = ("active", "deprecated", "retired")


def wants_anthropic_shape(headers: Mapping[str, str]) -> bool:
    """Whether the caller is an Anthropic client: every one sends `anthropic-version`, most `x-api-key`."""
    return "anthropic-version" in headers or "x-api-key" in headers


def created_at(model: CatalogModel) -> str:
    """RFC 3339; a model declared without a release date gets the epoch, as the API gives an unknown date."""
    return datetime.fromtimestamp(model.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def model_info(model: CatalogModel) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.id,
        "created_at": created_at(model),
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
    }


def not_found(model_id: str) -> ApiError:
    return ApiError(404, f"model: {model_id}", param="model")


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError.invalid(f"limit: Input should be an integer between 1 and {MAX_LIMIT}, got {raw!r}", "limit")
    return int(raw)


def _lifecycles(values: Sequence[str]) -> set[str]:
    asked = {part.strip() for value in values for part in value.split(",") if part.strip()}
    unknown = sorted(asked.difference(LIFECYCLES))
    if unknown:
        allowed = ", ".join(f"'{name}'" for name in LIFECYCLES)
        raise ApiError.invalid(f"lifecycle: Input should be {allowed}, got {unknown[0]!r}", "lifecycle")
    return asked or {"active", "deprecated"}


def _position(models: Sequence[CatalogModel], model_id: str, name: str) -> int:
    for index, model in enumerate(models):
        if model.id == model_id:
            return index
    raise ApiError.invalid(f"{name}: no model with id {model_id!r} in this list", name)


def model_page(models: Sequence[CatalogModel], query: Mapping[str, str], lifecycle: Sequence[str]) -> dict[str, Any]:
    """One page of the catalogue, newest first: `limit` models after `after_id`, or before `before_id`."""
    size = _limit(query.get("limit"))
    listed = sorted(models, key=lambda m: -m.created) if "active" in _lifecycles(lifecycle) else []
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        raise ApiError.invalid("after_id: cannot be combined with before_id", "after_id")
    if before is not None:
        end = _position(listed, before, "before_id")
        start = max(end - size, 0)
        page, more = listed[start:end], start > 0
    else:
        start = _position(listed, after, "after_id") + 1 if after is not None else 0
        page, more = listed[start : start + size], start + size < len(listed)
    return {
        "data": [model_info(m) for m in page],
        "has_more": more,
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
    }
