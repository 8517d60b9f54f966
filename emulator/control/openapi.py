"""The OpenAPI 3.1 document of the control API, served at /_emulator/openapi.json.

Written by hand next to the handlers in control.py; tests/unit/control/test_openapi.py checks that every route is
described and that real answers validate against the schemas given here.
"""

from __future__ import annotations

from typing import Any

from emulator import __version__
from emulator.names import CONTROL_PREFIX
from emulator.protocols.registry import PROTOCOLS

PREFIX = CONTROL_PREFIX

NULLABLE_STRING = {"type": ["string", "null"]}
STRINGS = {"type": "array", "items": {"type": "string"}}


def _object(properties: dict[str, Any], *, required: list[str] | None = None, closed: bool = True) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": not closed,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


PROBLEM = _object(
    {
        "file": {"type": "string"},
        "line": {"type": "integer"},
        "column": {"type": "integer"},
        "message": {"type": "string"},
    }
)

SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": NULLABLE_STRING,
                    "code": NULLABLE_STRING,
                    "problems": {
                        "type": "array",
                        "items": _ref("Problem"),
                        "description": "Positioned scenario problems (invalid_scenario only).",
                    },
                },
                required=["message", "type", "param", "code"],
            )
        }
    ),
    "Problem": PROBLEM,
    "Health": _object({"status": {"const": "ok"}, "version": {"type": "string"}, "uptime_s": {"type": "number"}}),
    "Ready": _object(
        {
            "status": {"const": "ready"},
            "scenarios": {"type": "integer"},
            "rules": {"type": "integer"},
            "last_reload_error": {"type": "boolean"},
        }
    ),
    "Scenario": _object(
        {
            "name": {"type": "string"},
            "file": NULLABLE_STRING,
            "source": {"enum": ["file", "api"], "description": "file: from --scenario paths; api: loaded here"},
            "test_id": {**NULLABLE_STRING, "description": "the test it answers; null: shared by every request"},
            "description": {"type": "string"},
            "rules": {**STRINGS, "description": "rule names, in match order"},
            "sequences": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "the rules whose action is a sequence, and how many steps each has",
            },
            "models": {**STRINGS, "description": "model ids it declares"},
        }
    ),
    "ReloadStatus": _object(
        {
            "count": {"type": "integer", "description": "successful reloads of the scenario files (--watch)"},
            "last_reload": {"type": ["number", "null"]},
            "last_error": {
                "oneOf": [
                    {"type": "null"},
                    _object(
                        {
                            "time": {"type": ["number", "null"]},
                            "message": {"type": "string"},
                            "problems": {"type": "array", "items": _ref("Problem")},
                        }
                    ),
                ],
                "description": "why the last reload failed (the previous scenarios keep serving); null once one works",
            },
        }
    ),
    "ScenarioList": _object(
        {
            "test_id": NULLABLE_STRING,
            "scenarios": {"type": "array", "items": _ref("Scenario")},
            "reload": _ref("ReloadStatus"),
        }
    ),
    "LoadRequest": _object(
        {
            "yaml": {"type": "string", "description": "the scenario file's text"},
            "path": {"type": "string", "description": "a scenario file or folder on the server"},
            "name": {"type": "string", "description": "name to load it under; the same name replaces it"},
            "file": {"type": "string", "description": "the file name problems and the listing show"},
            "replace": {"type": "boolean", "description": "replace every scenario of the scope"},
        },
        required=[],
    ),
    "LoadResult": _object(
        {"loaded": STRINGS, "test_id": NULLABLE_STRING, "scenarios": {"type": "array", "items": _ref("Scenario")}}
    ),
    "Removed": _object({"removed": STRINGS, "test_id": NULLABLE_STRING}),
    "Reset": _object({"reset": {"const": True}, "test_id": NULLABLE_STRING}),
    "FailNextRequest": _object(
        {
            "count": {"type": "integer", "minimum": 1, "default": 1},
            "status": {"type": "integer", "minimum": 400, "maximum": 599, "default": 429},
            "message": NULLABLE_STRING,
            "type": NULLABLE_STRING,
            "code": NULLABLE_STRING,
            "param": NULLABLE_STRING,
            "headers": {
                "type": "object",
                "propertyNames": {"pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"},
                "additionalProperties": {"type": ["string", "number"], "pattern": "^[^\\r\\n\\u0000]*$"},
                "description": "response headers: token names, values of visible ASCII on one line",
            },
        },
        required=[],
    ),
    "FailNextResult": _object({"queued": {"type": "integer"}, "test_id": {"type": "string"}}),
    "Cleared": _object({"cleared": {"const": True}, "test_id": NULLABLE_STRING}),
    "JournalEntry": _object(
        {
            "id": {"type": "integer"},
            "request_id": {"type": "string", "description": "the x-request-id / request-id the response carried"},
            "time": {"type": "number", "description": "wall-clock seconds when the request arrived"},
            "method": {"type": "string"},
            "path": {"type": "string"},
            "protocol": {"enum": [*PROTOCOLS, None]},
            "test_id": {"type": "string"},
            "model": NULLABLE_STRING,
            "stream": {"type": "boolean"},
            "status": {"type": ["integer", "null"]},
            "rule": {**NULLABLE_STRING, "description": "the rule that answered (fail_next for an injected failure)"},
            "action": {
                **NULLABLE_STRING,
                "description": "reply | fail | generated | rejected | fault | rate_limited | loop_stopped",
            },
            "fault": {**NULLABLE_STRING, "description": "the fault injected, when one answered"},
            "headers": {"type": "object", "description": "request headers, keys masked"},
            "body": {"description": "the request body as JSON, in full"},
            "response_headers": {"type": "object"},
            "error": {"type": ["object", "null"], "description": "the error body sent, when there was one"},
            "misses": {
                "type": "array",
                "items": _ref("RuleMiss"),
                "description": "when no rule matched: the nearest rules and why each did not match",
            },
            "first_byte_ms": {"type": ["number", "null"]},
            "duration_ms": {"type": ["number", "null"]},
            "chunk_times_ms": {"type": "array", "items": {"type": "number"}},
            "disconnected": {"type": "boolean"},
            "time_scale": {"type": ["number", "null"], "description": "the time scale the waits were carried out at"},
            "planned_ms": {
                "type": "array",
                "items": {"type": "number"},
                "description": "when each event (or a reply's body) was due by the timing plan, unscaled",
            },
            "loop": {
                "type": ["object", "null"],
                "description": "the agent-loop guard's flag: kind, repeats, what, first, stopped",
            },
        },
        required=["id", "time", "method", "path", "protocol", "test_id", "status", "rule", "action", "misses"],
        closed=False,
    ),
    "RuleMiss": _object(
        {
            "rule": {"type": "string"},
            "file": {"type": "string"},
            "line": {"type": "integer"},
            "satisfied": {"type": "integer", "description": "top-level conditions that held"},
            "total": {"type": "integer"},
            "reasons": {**STRINGS, "description": "why each failed condition failed"},
        }
    ),
    "JournalList": _object({"object": {"const": "list"}, "data": {"type": "array", "items": _ref("JournalEntry")}}),
}

TEST_ID = [
    {
        "name": "x-emulator-test-id",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Scope the call to one test: its scenarios, state and journal.",
    },
    {
        "name": "test_id",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "The same as the header, for clients that cannot set one.",
    },
]


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _op(summary: str, ok: tuple[int, str, str], *errors: int, guarded: bool = True, **more: Any) -> dict[str, Any]:
    status, schema, description = ok
    responses = {str(status): _json(schema, description)}
    for code in sorted({*errors, *((401, 403) if guarded else ())}):
        responses[str(code)] = _json("Error", _ERROR_TEXT[code])
    operation: dict[str, Any] = {"summary": summary, "responses": responses, **more}
    if not guarded:
        operation["security"] = []
    return operation


_ERROR_TEXT = {
    400: "Invalid parameters or an invalid scenario (with its positioned problems)",
    401: "A control token is configured and the call did not send it",
    403: "Bound beyond loopback without a control token (the control API is disabled); a host name that is not "
    "loopback; a request from another origin or site; a path outside the scenario roots",
    404: "Not found",
    413: "The body is larger than the server's control_body_bytes",
    415: "The body is neither YAML nor JSON, or a POST has neither a JSON or YAML content type nor an x-emulator-* header",
}

_QUERY = {
    name: {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
    for name, schema, text in [
        ("path", {"type": "string"}, "only requests to this path"),
        ("status", {"type": "integer", "minimum": 100, "maximum": 599}, "only answers with this status"),
        ("rule", {"type": "string"}, "only requests answered by this rule"),
        ("protocol", {"enum": list(PROTOCOLS)}, "only this protocol"),
        ("since", {"type": "number"}, "only requests that arrived at or after this time (epoch seconds)"),
        ("limit", {"type": "integer", "minimum": 1, "maximum": 1_000_000}, "only the last N"),
        ("request_id", {"type": "string"}, "only the request whose response carried this x-request-id"),
        ("name", {"type": "string"}, "name to load the scenario under"),
        ("replace", {"type": "boolean"}, "replace every scenario of the scope"),
        ("file", {"type": "string"}, "the file name problems and the listing show"),
    ]
}


def paths() -> dict[str, Any]:
    journal_filters = [_QUERY[n] for n in ("path", "status", "rule", "protocol", "request_id", "since", "limit")]
    return {
        "/health": {"get": _op("Liveness", (200, "Health", "Serving"), guarded=False)},
        "/ready": {"get": _op("Readiness: scenarios loaded", (200, "Ready", "Ready"), guarded=False)},
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        },
        "/scenarios": {
            "parameters": TEST_ID,
            "get": _op(
                "Loaded scenarios (the test's own first) and the last reload's status",
                (200, "ScenarioList", "Scenarios"),
            ),
            "post": _op(
                "Load a scenario from a YAML body or a server-side path",
                (201, "LoadResult", "Loaded"),
                400,
                413,
                415,
                parameters=[_QUERY["name"], _QUERY["file"], _QUERY["replace"]],
                requestBody={
                    "required": True,
                    "content": {
                        "application/yaml": {"schema": {"type": "string"}},
                        "text/plain": {"schema": {"type": "string"}},
                        "application/json": {"schema": _ref("LoadRequest")},
                    },
                },
            ),
            "delete": _op("Remove every scenario of the scope", (200, "Removed", "Removed")),
        },
        "/scenarios/{name}": {
            "parameters": [
                *TEST_ID,
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "delete": _op("Remove one scenario", (200, "Removed", "Removed"), 404),
        },
        "/reset": {
            "parameters": TEST_ID,
            "post": _op(
                "Reset sequence counters, journal, stored responses, the test's scenarios and queued failures",
                (200, "Reset", "Reset"),
                413,
                415,
            ),
        },
        "/fail_next": {
            "parameters": TEST_ID,
            "post": _op(
                "Fail the scope's next N API requests with this status",
                (201, "FailNextResult", "Queued"),
                400,
                413,
                415,
                requestBody={"content": {"application/json": {"schema": _ref("FailNextRequest")}}},
            ),
        },
        "/journal": {
            "parameters": TEST_ID,
            "get": _op(
                "Journaled requests, oldest first", (200, "JournalList", "Entries"), 400, parameters=journal_filters
            ),
            "delete": _op("Clear the journal (of the scope)", (200, "Cleared", "Cleared")),
        },
        "/journal/{entry_id}": {
            "parameters": [
                *TEST_ID,
                {
                    "name": "entry_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "the entry's number (`id`), or the x-request-id / request-id its response carried",
                },
            ],
            "get": _op("One journaled request, by number or by request id", (200, "JournalEntry", "The entry"), 404),
        },
    }


def _other_paths() -> dict[str, Any]:
    """Paths that other control modules describe themselves: faults and the resilience report."""
    from emulator.control import faults as fault_control

    return fault_control.openapi_paths()


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tokenhub-emulator control API",
            "version": __version__,
            "description": "Scenarios, state, injected failures and the request journal of a running emulator. "
            "Open on loopback; beyond loopback every call but health, ready and this document needs the control "
            "token.",
        },
        "servers": [{"url": PREFIX}],
        "paths": {**paths(), **_other_paths()},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "controlToken": {"type": "apiKey", "in": "header", "name": "x-emulator-control-token"},
            },
        },
        "security": [{}, {"controlToken": []}],
    }
