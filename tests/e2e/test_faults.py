"""Faults: reading them (scenario, header, JSON), when they fire (seeded patterns), what they do to a stream,
and the run-time control API. How each SDK sees them is in test_faults_sdk.py."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.helpers.servers import RunningServer, start_server, stop_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path = tmp_path_factory.mktemp("faults") / "background.yaml"
    path.write_text(
        "settings:\n  faults:\n    - {error: 503, model: background-model, message: background outage}\n"
        "models:\n  - {id: background-model, serves: glm-5}\n"
        "rules:\n  - when: {last_user: rule-fault}\n    fault: {error: 502, first: 1}\n"
    )
    running = start_server("--scenario", str(path), "--seed", "5")
    yield running
    stop_server(running)


def ask(server: RunningServer, text: str, test_id: str, model: str = "glm-5", **headers: str) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    with server.http() as client:
        return client.post("/v1/chat/completions", json=body, headers={"x-emulator-test-id": test_id, **headers})


def test_faults_switched_on_and_off_at_run_time(served: RunningServer) -> None:
    with served.http() as client:
        created = client.post("/_emulator/faults", json={"error": 503, "first": 2, "test_id": "rt"})
        assert created.status_code == 201, created.text
        fault = created.json()
        assert fault["error"] == 503 and fault["first"] == 2 and fault["id"].startswith("fault_")
        assert [ask(served, "hi", "rt").status_code for _ in range(3)] == [503, 503, 200]
        assert ask(served, "hi", "other").status_code == 200
        listed = client.get("/_emulator/faults").json()["data"]
        assert [f["id"] for f in listed][0] == fault["id"] and listed[-1]["source"] == "scenario"
        assert client.delete(f"/_emulator/faults/{fault['id']}").json() == {"removed": 1, "id": fault["id"]}
        client.post("/_emulator/faults", json={"reset": True, "test_id": "rt2"})
        client.post("/_emulator/faults", json={"empty": True, "test_id": "rt2"})
        assert client.delete("/_emulator/faults").json() == {"removed": 2}
        assert ask(served, "hi", "rt2").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "The body is not valid JSON"),
        (b"[]", 400, "the body must be a JSON object describing a fault, got a list"),
        (b'{"eror": 500}', 400, "unknown key 'eror' in fault; did you mean 'error'?"),
        (b'{"error": 500, "reset": true}', 400, "a fault needs exactly one kind"),
        (b'{"stall": "long"}', 400, "'stall' must be a number of at least 0 (milliseconds), got 'long'"),
        (b'{"error": 429, "window": [1]}', 400, "'window' must be [from, to]"),
    ],
)
def test_bad_control_bodies_are_clear_4xx(served: RunningServer, body: bytes, status: int, says: str) -> None:
    with served.http() as client:
        response = client.post("/_emulator/faults", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert says in error["message"]
    assert error["code"] in ("invalid_json", "invalid_fault")


def test_removing_an_unknown_fault_is_a_404(served: RunningServer) -> None:
    with served.http() as client:
        response = client.delete("/_emulator/faults/fault_999")
    assert response.status_code == 404 and response.json()["error"]["code"] == "fault_not_found"


def test_a_background_fault_for_one_model(served: RunningServer) -> None:
    failed = ask(served, "hi", "bg", model="background-model")
    assert failed.status_code == 503
    assert failed.json()["error"]["message"] == "background outage"
    assert ask(served, "hi", "bg").status_code == 200


def test_a_test_ids_own_scenario_brings_its_background_faults(served: RunningServer) -> None:
    own = "settings:\n  faults:\n    - {error: 429, first: 1, message: this test's outage}\nrules: []\n"
    with served.http(headers={"x-emulator-test-id": "own-bg"}) as client:
        loaded = client.post("/_emulator/scenarios", content=own, headers={"content-type": "application/yaml"})
        assert loaded.status_code in (200, 201), loaded.text
    failed = ask(served, "hi", "own-bg")
    assert failed.status_code == 429 and failed.json()["error"]["message"] == "this test's outage"
    assert ask(served, "hi", "own-bg").status_code == 200  # first: 1
    assert ask(served, "hi", "another-test").status_code == 200  # the test's own scenario is its own
    assert ask(served, "hi", "own-bg", model="background-model").status_code == 503  # the shared background stays


def test_a_rule_fault_with_a_pattern(served: RunningServer) -> None:
    assert [ask(served, "rule-fault", "rf").status_code for _ in range(2)] == [502, 200]


def test_a_header_fault_with_a_pattern_and_the_journal(served: RunningServer) -> None:
    statuses = [ask(served, "hi", "hf", **{"x-emulator-fault": "error=429; every=2"}).status_code for _ in range(4)]
    assert statuses == [200, 429, 200, 429]
    with served.http() as client:
        entries = client.get("/_emulator/journal", params={"test_id": "hf"}).json()["data"]
    assert [e["action"] for e in entries] == ["generated", "fault", "generated", "fault"]
    assert entries[1]["response_headers"]["retry-after"] == "1"


def test_faults_are_seeded_by_the_server_seed(served: RunningServer) -> None:
    header = {"x-emulator-fault": "error=500; probability=0.5"}
    first = [ask(served, "hi", "seeded-a", **header).status_code for _ in range(12)]
    with served.http() as client:
        client.post("/_emulator/reset", headers={"x-emulator-test-id": "seeded-a"})
    again = [ask(served, "hi", "seeded-a", **header).status_code for _ in range(12)]
    assert first == again
    assert set(first) == {200, 500}
    expected = random.Random("5|header:error=500; probability=0.5|seeded-a")
    assert first == [500 if expected.random() < 0.5 else 200 for _ in range(12)]


def test_the_fault_routes_are_described_and_answer_as_described(served: RunningServer) -> None:
    from starlette.routing import Route

    from emulator.control import faults as fault_control
    from emulator.control import openapi as control_openapi

    paths = fault_control.openapi_paths()
    described = {(path, method) for path, item in paths.items() for method in item if method != "parameters"}
    routes = [route for route in fault_control.routes() if isinstance(route, Route)]
    assert described == {(r.path, m.lower()) for r in routes for m in r.methods or () if m != "HEAD"}
    components = control_openapi.document()["components"]
    with served.http() as client:
        calls = [
            ("/faults", "post", client.post("/_emulator/faults", json={"reset": True, "key": "nobody"})),
            ("/faults", "post", client.post("/_emulator/faults", json={"rest": True})),
            ("/faults", "get", client.get("/_emulator/faults")),
            ("/faults/{fault_id}", "delete", client.delete("/_emulator/faults/nope")),
            ("/faults", "delete", client.delete("/_emulator/faults")),
            ("/report", "get", client.get("/_emulator/report", params={"test_id": "hf"})),
        ]
    for path, method, response in calls:
        declared = paths[path][method]["responses"][str(response.status_code)]
        schema = {**declared["content"]["application/json"]["schema"], "components": components}
        Draft202012Validator(schema).validate(response.json())
