"""`GET …/models` and `…/models/{id}`: the catalog, in the shape of the client that asks.

An OpenAI client and an Anthropic client ask the same path; the adapter that claims the caller by its headers
(emulator/protocols/base.py `claims`) checks its key the way its protocol does and writes the list its API
writes. The model list is also served beside each client's base URL (an Anthropic client's SDK appends
/v1/models to the base URL it appends /v1/messages to).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulator.http import json_response
from emulator.server.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def list_models(request: Request) -> Response:
    runtime = _runtime(request)
    adapter = runtime.adapter_for(request.url.path, request.headers)
    adapter.authenticate(request, runtime.context)
    return json_response(adapter.model_list(runtime.catalog.listed(), request.query_params))


async def retrieve_model(request: Request) -> Response:
    runtime = _runtime(request)
    adapter = runtime.adapter_for(request.url.path, request.headers)
    adapter.authenticate(request, runtime.context)
    requested = request.path_params["model_id"]
    model = runtime.catalog.models.get(requested)
    return json_response(adapter.model_info(model, requested, runtime.catalog))


def model_routes(runtime: Runtime) -> list[BaseRoute]:
    """The profile's models path, and the one beside each client's base URL (the same, mostly)."""
    paths = runtime.profile.paths
    beside = (adapter.base_path(paths) + adapter.sdk_models_path for adapter in runtime.adapters)
    routes: list[BaseRoute] = []
    for models in dict.fromkeys((paths["models"], *beside)):
        routes.append(Route(models, list_models, methods=["GET"]))
        routes.append(Route(models + "/{model_id:path}", retrieve_model, methods=["GET"]))
    return routes
