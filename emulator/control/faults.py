"""Run-time faults and the resilience report, under /_emulator/ (see docs/faults-and-timing.md).

GET    /_emulator/faults           the run-time faults, then the scenarios' background faults
POST   /_emulator/faults           switch a fault on: the JSON form of a scenario `fault:` mapping → 201
DELETE /_emulator/faults           switch every run-time fault off
DELETE /_emulator/faults/{id}      switch one off
GET    /_emulator/report           the resilience report (?test_id= or x-emulator-test-id for one test)
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulator.control import journal as control_journal
from emulator.control.endpoint import ControlError, by_method, control_body, control_endpoint, runtime_of, test_id_of
from emulator.faults import report as resilience
from emulator.faults.rules import parse_fault_json
from emulator.http import json_response

MAX_FAULT_BODY = 64 * 1024
log = logging.getLogger("tokenhub_emulator.faults")



@control_endpoint()
async def list_faults(request: Request) -> Response:
    runtime = runtime_of(request)
    background = list(runtime.engine.settings.faults)
    rules = [*runtime.faults.listed(), *background]
    return json_response({"object": "list", "data": [rule.as_dict() for rule in rules]})


@control_endpoint()
async def add_fault(request: Request) -> Response:
    runtime = runtime_of(request)
    raw = await control_body(request, MAX_FAULT_BODY)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:  # not JSON, not UTF-8, nested too deeply, a 5,000-digit number
        raise ControlError(400, f"The body is not valid JSON: {error}.", code="invalid_json") from None
    shared = runtime.shared
    fault_id = runtime.faults.new_id() if shared is None else await shared.new_fault_id()
    rule, problems = parse_fault_json(body, fault_id=fault_id)
    if rule is None:
        message = "Invalid fault: " + "; ".join(problems)
        raise ControlError(400, message if message.endswith((".", "?")) else message + ".", code="invalid_fault")
    runtime.faults.add(rule)
    if shared is not None:
        await shared.add_fault(rule.id, body)
    body = rule.as_dict()
    warning = window_warning(rule.pattern.window, time.monotonic() - runtime.faults.started)
    if warning:
        log.warning("fault %s (%s): %s", rule.id, rule.fault.label, warning)
        body["warning"] = warning
    return json_response(body, 201)


def window_warning(window: tuple[float, float] | None, elapsed: float) -> str | None:
    """A window is counted from the server's start (or the last full reset): one already over never fires."""
    if window is None or elapsed < window[1]:
        return None
    return (
        f"the window [{window[0]:g}, {window[1]:g}] is over: it counts seconds since the server started or was "
        f"last reset (POST /_emulator/reset), {elapsed:.0f} s ago, so this fault will never fire; give a window "
        f"from second {elapsed:.0f} on, or reset first"
    )


@control_endpoint()
async def clear_faults(request: Request) -> Response:
    runtime = runtime_of(request)
    count = len(runtime.faults.runtime)
    runtime.faults.clear()
    if runtime.shared is not None:
        count = await runtime.shared.remove_faults(None)
    return json_response({"removed": count})


@control_endpoint()
async def remove_fault(request: Request) -> Response:
    fault_id = request.path_params["fault_id"]
    runtime = runtime_of(request)
    removed = runtime.faults.remove(fault_id)
    if runtime.shared is not None:
        removed = await runtime.shared.remove_faults(fault_id) > 0
    if not removed:
        raise ControlError(404, f"No run-time fault {fault_id!r}.", code="fault_not_found", param="fault_id")
    return json_response({"removed": 1, "id": fault_id})


@control_endpoint()
async def resilience_report(request: Request) -> Response:
    runtime = runtime_of(request)
    test_id = test_id_of(request)
    entries = await control_journal.recorded(runtime, test_id)
    injected = runtime.faults.injected
    if runtime.shared is not None:  # what each request was given, as its entry in the shared journal says
        injected = {e.id: e.fault for e in entries if e.fault is not None}
    return json_response(resilience.report(entries, injected, test_id, runtime.faults.misbehaved))


def openapi_paths() -> dict[str, Any]:
    """These routes in the control API's OpenAPI document (emulator/control/openapi.py), schemas inline."""
    error = {"$ref": "#/components/schemas/Error"}
    test_id = [
        {"name": "x-emulator-test-id", "in": "header", "required": False, "schema": {"type": "string"}},
        {"name": "test_id", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    fault = {
        "type": "object",
        "description": "A fault, as a scenario's `fault:` mapping (docs/faults-and-timing.md), with its id, "
        "source (runtime | scenario) and label.",
        "required": ["id", "source", "label"],
        "properties": {
            "id": {"type": "string"},
            "source": {"type": "string"},
            "label": {"type": "string"},
            "warning": {"type": "string", "description": "when added: why it may never fire (a window already over)"},
        },
    }
    report = {
        "type": "object",
        "required": ["test_id", "requests", "chains", "faults", "retries", "gave_up", "problems", "ok"],
        "properties": {
            "test_id": {"type": ["string", "null"]},
            "requests": {"type": "integer"},
            "chains": {"type": "array", "items": {"type": "object"}},
            "faults": {"type": "object"},
            "retries": {"type": "integer"},
            "gave_up": {"type": "integer"},
            "problems": {"type": "array", "items": {"type": "string"}},
            "ok": {"type": "boolean"},
            "behaviour": {
                "type": "array",
                "items": {"type": "object"},
                "description": "each misbehaving answer: entry, fault, what the client did next (retried | "
                "re-asked | repaired | gave up | passed on) and why",
            },
            "behaviour_faults": {"type": "object", "description": "per behaviour kind: seen, and each verdict"},
            "loops": {"type": "array", "items": {"type": "object"}, "description": "the loop guard's flags"},
            "loops_stopped": {"type": "integer"},
        },
    }

    def answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    guard = {
        "401": answer("Control token required", error),
        "403": answer("Control API disabled, or a request a browser sent from another origin", error),
    }
    posted = {
        "413": answer("The body is too large", error),
        "415": answer("Neither a JSON content type nor an x-emulator-* header", error),
    }
    removed = {"type": "object", "required": ["removed"], "properties": {"removed": {"type": "integer"}}}
    return {
        "/faults": {
            "get": {
                "summary": "Run-time faults, then the scenarios' background faults",
                "responses": {
                    "200": answer(
                        "Faults",
                        {
                            "type": "object",
                            "required": ["object", "data"],
                            "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": fault}},
                        },
                    ),
                    **guard,
                },
            },
            "post": {
                "summary": "Switch a fault on",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {
                    "201": answer("Added", fault),
                    "400": answer("Not a valid fault", error),
                    **guard,
                    **posted,
                },
            },
            "delete": {
                "summary": "Switch every run-time fault off",
                "responses": {"200": answer("Removed", removed), **guard},
            },
        },
        "/faults/{fault_id}": {
            "parameters": [{"name": "fault_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "delete": {
                "summary": "Switch one run-time fault off",
                "responses": {"200": answer("Removed", removed), "404": answer("No such fault", error), **guard},
            },
        },
        "/report": {
            "parameters": test_id,
            "get": {
                "summary": "The resilience report of the run, or of one test id",
                "responses": {"200": answer("The report", report), **guard},
            },
        },
    }


def routes() -> list[BaseRoute]:
    return [
        Route(
            "/faults",
            by_method(GET=list_faults, POST=add_fault, DELETE=clear_faults),
            methods=["GET", "POST", "DELETE"],
        ),
        Route("/faults/{fault_id}", remove_fault, methods=["DELETE"]),
        Route("/report", resilience_report, methods=["GET"]),
    ]
