"""The /_emulator/ control API: health, scenarios, state reset, injected failures and the request journal.

Every call is scoped by the `x-emulator-test-id` header (or a `test_id` query parameter): scenarios loaded
with a test id answer that test only, and reset / journal calls touch that test's state only. The routes
and their bodies are described in control_openapi.py, served at /_emulator/openapi.json.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulator import __version__
from emulator.control import journal as control_journal
from emulator.control import openapi as control_openapi
from emulator.control import scenarios as control_scenarios
from emulator.control.endpoint import (
    ControlError,
    by_method,
    control_body,
    control_endpoint,
    float_param,
    int_param,
    runtime_of,
    test_id_of,
)
from emulator.exchange import Failure
from emulator.headers import header_problem
from emulator.http import json_response
from emulator.protocols.registry import PROTOCOLS
from emulator.scenarios.scoped_engine import FAIL_NEXT_RULE

STARTED = time.time()
YAML_TYPES = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
)  # text/plain
# passes check_browser only with an x-emulator-* header
MAX_FAIL_NEXT = 10_000
LOAD_KEYS = frozenset({"yaml", "path", "name", "file", "replace"})
FAIL_NEXT_KEYS = frozenset({"count", "status", "message", "type", "code", "param", "headers"})



# ---------------------------------------------------------------- health


@control_endpoint(guarded=False)
async def health(request: Request) -> Response:
    return json_response({"status": "ok", "version": __version__, "uptime_s": round(time.time() - STARTED, 3)})


@control_endpoint(guarded=False)
async def ready(request: Request) -> Response:
    runtime = runtime_of(request)
    return json_response(
        {
            "status": "ready",
            "scenarios": len(runtime.engine.scenarios),
            "rules": len(runtime.engine.rules),
            "last_reload_error": runtime.scenario_status.last_error is not None,
        }
    )


@control_endpoint(guarded=False)
async def openapi(request: Request) -> Response:
    return json_response(control_openapi.document())


# ---------------------------------------------------------------- scenarios


@control_endpoint()
async def list_scenarios(request: Request) -> Response:
    runtime = runtime_of(request)
    test_id = test_id_of(request)
    return json_response(
        {
            "test_id": test_id,
            "scenarios": control_scenarios.describe(runtime, test_id),
            "reload": control_scenarios.reload_status(runtime),
        }
    )


@control_endpoint()
async def load_scenarios(request: Request) -> Response:
    """A YAML body (application/yaml or text/plain), or JSON {"yaml": …} / {"path": …}; ?name=, ?file=, ?replace=."""
    runtime = runtime_of(request)
    test_id = test_id_of(request)
    options = await _load_request(request)
    if options.get("path"):
        scenarios = control_scenarios.load_path(runtime, str(options["path"]))
    else:
        scenarios = [control_scenarios.parse_body(options["yaml"], options.get("name"), options.get("file"))]
    control_scenarios.install(runtime, test_id, scenarios, replace_all=bool(options.get("replace")))
    await control_scenarios.shared(runtime, test_id)
    loaded = [s.name for s in scenarios]
    return json_response(
        {"loaded": loaded, "test_id": test_id, "scenarios": control_scenarios.describe(runtime, test_id)}, 201
    )


async def _load_request(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raw = await control_body(request)
    query = request.query_params
    options: dict[str, Any] = {
        "name": query.get("name") or None,
        "file": query.get("file") or None,
        "replace": _flag(query.get("replace"), "replace"),
    }
    if media_type in YAML_TYPES or (not media_type and raw):
        options["yaml"] = _text(raw)
    elif media_type == "application/json":
        body = _json_object(raw)
        for key in ("yaml", "path", "name", "file"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise ControlError(400, f"'{key}' must be a string.", code="invalid_parameter", param=key)
        unknown = sorted(set(body) - LOAD_KEYS)
        if unknown:
            raise ControlError(
                400, f"Unknown key {unknown[0]!r}: expected {', '.join(sorted(LOAD_KEYS))}.", code="invalid_parameter"
            )
        options.update({k: v for k, v in body.items() if v is not None})
        if not isinstance(options.get("yaml"), str) and not isinstance(options.get("path"), str):
            raise ControlError(
                400,
                'The JSON body needs "yaml" (the scenario text) or "path" (a file or folder on the server).',
                code="invalid_request",
            )
        options["replace"] = _flag(options.get("replace"), "replace")
    else:
        raise ControlError(
            415,
            f"Send the scenario as YAML (Content-Type: application/yaml) or JSON with 'yaml' or 'path', not "
            f"{media_type or 'an empty body'}.",
            code="unsupported_media_type",
        )
    if not options.get("path") and not options.get("yaml", "").strip():
        raise ControlError(400, "The scenario body is empty.", code="invalid_scenario")
    return options


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ControlError(400, "The body is not UTF-8 text.", code="invalid_request") from None


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"null")
    except (ValueError, RecursionError) as error:  # not JSON, not UTF-8, nested too deeply, a 5,000-digit number
        raise ControlError(400, f"The body is not valid JSON: {error}.", code="invalid_json") from None
    if not isinstance(value, dict):
        raise ControlError(400, "The JSON body must be an object.", code="invalid_request")
    return value


def _flag(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if str(value).lower() in ("1", "true", "yes"):
        return True
    if str(value).lower() in ("0", "false", "no", ""):
        return False
    raise ControlError(400, f"'{name}' must be true or false, got {value!r}.", code="invalid_parameter", param=name)


@control_endpoint()
async def remove_scenario(request: Request) -> Response:
    runtime = runtime_of(request)
    test_id = test_id_of(request)
    removed = control_scenarios.remove(runtime, test_id, request.path_params["name"])
    await control_scenarios.shared(runtime, test_id)
    return json_response({"removed": removed, "test_id": test_id})


@control_endpoint()
async def remove_all_scenarios(request: Request) -> Response:
    runtime = runtime_of(request)
    test_id = test_id_of(request)
    removed = control_scenarios.remove(runtime, test_id, None)
    await control_scenarios.shared(runtime, test_id)
    return json_response({"removed": removed, "test_id": test_id})


# ---------------------------------------------------------------- state


@control_endpoint()
async def reset(request: Request) -> Response:
    """Sequence counters, journal, stored responses, a test's own scenarios and queued failures."""
    test_id = test_id_of(request)
    runtime = runtime_of(request)
    runtime.reset(test_id)
    if runtime.shared is not None:
        await runtime.shared.reset(test_id)
    return json_response({"reset": True, "test_id": test_id})


@control_endpoint()
async def fail_next(request: Request) -> Response:
    """The next `count` API requests of this test id (or of requests without one) fail with this error."""
    runtime = runtime_of(request)
    test_id = test_id_of(request) or ""
    spec = _json_object(await control_body(request))
    unknown = sorted(set(spec) - FAIL_NEXT_KEYS)
    if unknown:
        raise ControlError(
            400,
            f"Unknown key {unknown[0]!r}: expected {', '.join(sorted(FAIL_NEXT_KEYS))}.",
            code="invalid_parameter",
            param=unknown[0],
        )
    count = spec.get("count", 1)
    status = spec.get("status", 429)
    if not _int_between(count, 1, MAX_FAIL_NEXT):
        raise ControlError(
            400, f"'count' must be an integer from 1 to {MAX_FAIL_NEXT}.", code="invalid_parameter", param="count"
        )
    if not _int_between(status, 400, 599):
        raise ControlError(
            400, "'status' must be an integer from 400 to 599.", code="invalid_parameter", param="status"
        )
    headers = spec.get("headers", {})
    texts = {key: spec.get(key) for key in ("message", "type", "code", "param")}
    if not isinstance(headers, dict) or not all(v is None or isinstance(v, str) for v in texts.values()):
        raise ControlError(
            400, "'message', 'type', 'code', 'param' are strings; 'headers' an object.", code="invalid_parameter"
        )
    headers = {k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in headers.items()}
    problem = next((p for p in (header_problem(k, v) for k, v in headers.items()) if p), None)
    if problem is not None:
        raise ControlError(400, f"'headers': {problem}.", code="invalid_parameter", param="headers")
    failure = Failure(
        status=status,
        message=texts["message"] or "",  # none given: the profile's wording for the status
        type=texts["type"],
        code=texts["code"],
        param=texts["param"],
        headers={str(k).lower(): str(v) for k, v in headers.items()},
        rule=FAIL_NEXT_RULE,
    )
    if runtime.shared is not None:
        queued = await runtime.shared.fail_next(test_id, [failure] * count)
    else:
        runtime.engine.fail_next(test_id, [failure] * count)
        queued = runtime.engine.pending_failures(test_id)
    return json_response({"queued": queued, "test_id": test_id}, 201)


def _int_between(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


# ---------------------------------------------------------------- journal


@control_endpoint()
async def list_journal(request: Request) -> Response:
    runtime = runtime_of(request)
    query = request.query_params
    protocol = query.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        raise ControlError(
            400,
            f"'protocol' must be one of {', '.join(PROTOCOLS)}, got {protocol!r}.",
            code="invalid_parameter",
            param="protocol",
        )
    entries = await control_journal.select(
        runtime,
        test_id=test_id_of(request),
        path=query.get("path") or None,
        status=int_param(request, "status", low=100, high=599),
        rule=query.get("rule") or None,
        protocol=protocol,
        request_id=query.get("request_id") or None,
        since=float_param(request, "since"),
        limit=int_param(request, "limit", low=1, high=1_000_000),
    )
    return json_response({"object": "list", "data": [control_journal.entry_body(runtime, e) for e in entries]})


@control_endpoint()
async def journal_entry(request: Request) -> Response:
    runtime = runtime_of(request)
    raw = request.path_params["entry_id"]  # its number, or the request id the client saw
    entries = await control_journal.recorded(runtime)
    entry = next((e for e in entries if str(e.id) == raw or e.request_id == raw), None)
    test_id = test_id_of(request)
    if entry is None or (test_id is not None and entry.test_id != test_id):
        raise ControlError(404, f"No journal entry {raw!r}.", code="entry_not_found", param="entry_id")
    return json_response(control_journal.entry_body(runtime, entry))


@control_endpoint()
async def clear_journal(request: Request) -> Response:
    test_id = test_id_of(request)
    await control_journal.clear(runtime_of(request), test_id)
    return json_response({"cleared": True, "test_id": test_id})


def routes() -> list[BaseRoute]:
    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route(
            "/scenarios",
            by_method(GET=list_scenarios, POST=load_scenarios, DELETE=remove_all_scenarios),
            methods=["GET", "POST", "DELETE"],
        ),
        Route("/scenarios/{name:path}", remove_scenario, methods=["DELETE"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/fail_next", fail_next, methods=["POST"]),
        Route("/journal", by_method(GET=list_journal, DELETE=clear_journal), methods=["GET", "DELETE"]),
        Route("/journal/{entry_id}", journal_entry, methods=["GET"]),
    ]
