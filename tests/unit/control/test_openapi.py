"""The served OpenAPI document describes every control route, and real answers validate against it."""

from __future__ import annotations

import jsonschema
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.control import api as control
from emulator.control import faults as fault_control
from emulator.server.app import build_app

PING = "rules:\n  - name: ping\n    when: {last_user: ping}\n    reply: {content: pong}\n"


@pytest.fixture(scope="module")
def http() -> TestClient:
    return TestClient(build_app(Settings()), base_url="http://127.0.0.1", raise_server_exceptions=False)


@pytest.fixture(scope="module")
def document(http) -> dict:
    response = http.get("/_emulator/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_the_document_is_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    jsonschema.Draft202012Validator.check_schema({"$defs": document["components"]["schemas"]})


def test_every_route_is_described(document):
    described = {
        (path, method) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    served = {
        (route.path.replace(":path", ""), method.lower())
        for route in [*control.routes(), *fault_control.routes()]
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert served == described


def _conforms(document: dict, path: str, method: str, response) -> None:
    operation = document["paths"][path][method]
    declared = operation["responses"]
    assert str(response.status_code) in declared, f"{method} {path}: {response.status_code} is not documented"
    content = declared[str(response.status_code)]["content"]["application/json"]
    if "schema" in content:
        schema = {**content["schema"], "components": document["components"]}
        jsonschema.validate(response.json(), schema, cls=jsonschema.Draft202012Validator)


def test_answers_match_the_documented_schemas(http, document):
    scoped = {"x-emulator-test-id": "doc"}
    calls = [
        ("/health", "get", http.get("/_emulator/health")),
        ("/ready", "get", http.get("/_emulator/ready")),
        ("/openapi.json", "get", http.get("/_emulator/openapi.json")),
        ("/scenarios", "post", http.post("/_emulator/scenarios", content=PING, headers={"content-type": "text/plain"})),
        (
            "/scenarios",
            "post",
            http.post("/_emulator/scenarios", content="rules: [", headers={"content-type": "text/plain"}),
        ),
        ("/scenarios", "post", http.post("/_emulator/scenarios", content="x", headers={"content-type": "image/png"})),
        ("/scenarios", "post", http.post("/_emulator/scenarios", json={"yaml": PING, "name": "p"}, headers=scoped)),
        ("/scenarios", "get", http.get("/_emulator/scenarios", headers=scoped)),
        ("/fail_next", "post", http.post("/_emulator/fail_next", json={"status": 503}, headers=scoped)),
        ("/fail_next", "post", http.post("/_emulator/fail_next", json={"status": 99})),
    ]
    chat = {"model": "glm-5", "messages": [{"role": "user", "content": "hello"}]}
    http.post("/v1/chat/completions", json=chat, headers={**scoped, "authorization": "Bearer sk-x"})
    http.post("/v1/chat/completions", json=chat, headers={**scoped, "authorization": "Bearer sk-x"})
    entries = http.get("/_emulator/journal", headers=scoped)
    entry_id = entries.json()["data"][-1]["id"]
    assert entries.json()["data"][-1]["misses"], "a generated answer is explained"
    calls += [
        ("/journal", "get", entries),
        ("/journal", "get", http.get("/_emulator/journal?status=x")),
        ("/journal/{entry_id}", "get", http.get(f"/_emulator/journal/{entry_id}")),
        ("/journal/{entry_id}", "get", http.get("/_emulator/journal/0")),
        ("/scenarios/{name}", "delete", http.delete("/_emulator/scenarios/p", headers=scoped)),
        ("/scenarios/{name}", "delete", http.delete("/_emulator/scenarios/nothing")),
        ("/scenarios", "delete", http.delete("/_emulator/scenarios")),
        ("/journal", "delete", http.delete("/_emulator/journal", headers=scoped)),
        ("/reset", "post", http.post("/_emulator/reset", headers=scoped)),
        ("/reset", "post", http.post("/_emulator/reset")),
        ("/journal", "get", http.get("/_emulator/journal", headers={"origin": "https://evil.example"})),
        ("/scenarios", "post", http.post("/_emulator/scenarios", json={"path": "/etc/passwd"})),
    ]
    for path, method, response in calls:
        _conforms(document, path, method, response)


def test_guard_errors_are_documented():
    http = TestClient(build_app(Settings(host="0.0.0.0")))
    document = http.get("/_emulator/openapi.json").json()
    _conforms(document, "/journal", "get", http.get("/_emulator/journal"))
    guarded = TestClient(build_app(Settings(host="0.0.0.0", control_token="t")))
    _conforms(document, "/reset", "post", guarded.post("/_emulator/reset"))
