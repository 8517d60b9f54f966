"""The /_emulator/ control API, in process: scenarios, isolation by test id, reset, fail_next, journal, guard."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.server.app import build_app
from emulator.server.url_scope import scoped_root

AUTH = {"authorization": "Bearer sk-test-abcdef-1234567890"}
PING = """
rules:
  - name: ping
    when: {last_user: ping}
    reply: {content: pong}
"""
FLAKY = """
rules:
  - name: flaky
    when: {last_user: flaky}
    sequence:
      - fail: {status: 503}
      - reply: {content: fine}
"""


def client(**settings) -> TestClient:
    return TestClient(build_app(Settings(**settings)), base_url="http://127.0.0.1", raise_server_exceptions=False)


def ask(http: TestClient, text: str, test_id: str | None = None, **body):
    headers = {**AUTH, **({"x-emulator-test-id": test_id} if test_id is not None else {})}
    payload = {"model": "glm-5", "messages": [{"role": "user", "content": text}], **body}
    return http.post("/v1/chat/completions", json=payload, headers=headers)


def content(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def load(http: TestClient, text: str, test_id: str | None = None, **params):
    headers = {"content-type": "application/yaml"}
    if test_id is not None:
        headers["x-emulator-test-id"] = test_id
    return http.post("/_emulator/scenarios", content=text, headers=headers, params=params)


@pytest.fixture
def http() -> TestClient:
    return client()


def test_health_and_ready(http):
    assert http.get("/_emulator/health").json()["status"] == "ok"
    ready = http.get("/_emulator/ready").json()
    assert ready["status"] == "ready" and ready["scenarios"] == 0


def test_shared_scenario_loads_lists_and_removes(http):
    response = load(http, PING, name="pingpong")
    assert response.status_code == 201, response.text
    assert response.json()["loaded"] == ["pingpong"]
    assert content(ask(http, "ping")) == "pong"
    listed = http.get("/_emulator/scenarios").json()["scenarios"]
    assert listed == [
        {
            "name": "pingpong",
            "file": "pingpong",
            "source": "api",
            "test_id": None,
            "description": "",
            "rules": ["ping"],
            "sequences": {},
            "models": [],
        }
    ]
    assert http.delete("/_emulator/scenarios/pingpong").json()["removed"] == ["pingpong"]
    assert content(ask(http, "ping")) != "pong"
    missing = http.delete("/_emulator/scenarios/pingpong")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "scenario_not_found"


def test_same_name_replaces_unnamed_loads_add_up(http):
    load(http, PING, name="a")
    load(http, PING.replace("pong", "PONG"), name="a")
    assert content(ask(http, "ping")) == "PONG"
    load(http, FLAKY)
    names = [s["name"] for s in http.get("/_emulator/scenarios").json()["scenarios"]]
    assert names[0] == "a" and len(names) == 2


def test_scenario_loaded_with_a_test_id_answers_that_test_only(http):
    assert load(http, PING, test_id="t1").status_code == 201
    assert content(ask(http, "ping", "t1")) == "pong"
    assert content(ask(http, "ping", "t2")) != "pong"
    assert content(ask(http, "ping")) != "pong"
    scoped = http.get("/_emulator/scenarios", headers={"x-emulator-test-id": "t1"}).json()["scenarios"]
    assert [(s["name"], s["test_id"]) for s in scoped][0][1] == "t1"
    assert http.get("/_emulator/scenarios").json()["scenarios"] == []


def test_reset_of_a_test_forgets_its_sequences_scenarios_and_journal(http):
    load(http, FLAKY)
    load(http, PING, test_id="a")
    assert ask(http, "flaky", "a").status_code == 503
    assert content(ask(http, "flaky", "a")) == "fine"
    assert ask(http, "flaky", "b").status_code == 503
    reset = http.post("/_emulator/reset", params={"test_id": "a"}, headers={"content-type": "application/json"})
    assert reset.json() == {"reset": True, "test_id": "a"}
    assert http.get("/_emulator/journal", params={"test_id": "a"}).json()["data"] == []
    assert len(http.get("/_emulator/journal", params={"test_id": "b"}).json()["data"]) == 1
    assert ask(http, "flaky", "a").status_code == 503  # the sequence starts over for a …
    assert content(ask(http, "flaky", "b")) == "fine"  # … and goes on for b
    assert content(ask(http, "ping", "a")) != "pong"  # a's own scenario is gone


def test_bad_yaml_answers_400_with_positions(http):
    response = load(http, "rules:\n  - when: {last_usr: hi}\n    reply: {content: x}\n", name="broken")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_scenario" and error["type"] == "invalid_request_error"
    assert error["problems"][0]["line"] == 2 and error["problems"][0]["column"] > 1
    assert "broken:2:" in error["message"] and "did you mean 'last_user'" in error["message"]
    syntax = load(http, "rules: [\n")
    assert syntax.status_code == 400 and syntax.json()["error"]["problems"][0]["line"] >= 1


def test_load_from_a_server_side_path_and_json_body(tmp_path):
    http = client(scenario_roots=[tmp_path])
    path = tmp_path / "pp.yaml"
    path.write_text(PING)
    response = http.post("/_emulator/scenarios", json={"path": str(path)})
    assert response.status_code == 201, response.text
    assert content(ask(http, "ping")) == "pong"
    assert http.get("/_emulator/scenarios").json()["scenarios"][0]["file"] == str(path)
    replaced = http.post("/_emulator/scenarios", json={"yaml": FLAKY, "name": "f", "replace": True})
    assert [s["name"] for s in replaced.json()["scenarios"]] == ["f"]
    gone = http.post("/_emulator/scenarios", json={"path": str(tmp_path / "nope.yaml")})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "path_not_found"
    relative = http.post("/_emulator/scenarios", json={"path": "pp.yaml"})  # inside the roots
    assert relative.status_code == 201, relative.text


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/_emulator/scenarios", {"content": b"\xff\xfe", "headers": {"content-type": "text/yaml"}}, 400),
        ("post", "/_emulator/scenarios", {"content": b"", "headers": {"content-type": "application/yaml"}}, 400),
        ("post", "/_emulator/scenarios", {"content": b"{", "headers": {"content-type": "application/json"}}, 400),
        ("post", "/_emulator/scenarios", {"json": [1]}, 400),
        ("post", "/_emulator/scenarios", {"json": {"yaml": 3}}, 400),
        ("post", "/_emulator/scenarios", {"content": b"x", "headers": {"content-type": "image/png"}}, 415),
        (
            "post",
            "/_emulator/scenarios?replace=maybe",
            {"content": PING, "headers": {"content-type": "text/plain", "x-emulator-test-id": "t"}},
            400,
        ),
        ("post", "/_emulator/fail_next", {"json": {"status": 200}}, 400),
        ("post", "/_emulator/fail_next", {"json": {"count": 0}}, 400),
        ("post", "/_emulator/fail_next", {"json": {"headers": []}}, 400),
        ("post", "/_emulator/fail_next", {"content": b"nope", "headers": {"x-emulator-test-id": "t"}}, 400),
        ("post", "/_emulator/fail_next", {"content": b"nope"}, 415),
        ("get", "/_emulator/journal?status=abc", {}, 400),
        ("get", "/_emulator/journal?since=yesterday", {}, 400),
        ("get", "/_emulator/journal/999", {}, 404),
        ("get", "/_emulator/journal/abc", {}, 404),
        ("get", "/_emulator/nope", {}, 404),
    ],
)
def test_bad_calls_get_a_clear_error_never_a_500(http, method, path, kwargs, status):
    response = getattr(http, method)(path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["message"]


def test_journal_lists_filters_and_masks_keys(http):
    load(http, PING)
    ask(http, "ping", "j")
    ask(http, "other", "j")
    ask(http, "ping", "k")
    entries = http.get("/_emulator/journal", params={"test_id": "j"}).json()["data"]
    assert [e["body"]["messages"][0]["content"] for e in entries] == ["ping", "other"]
    first = entries[0]
    assert first["rule"] == "ping" and first["status"] == 200 and first["protocol"] == "chat"
    assert first["headers"]["authorization"] == "Bearer sk-…7890"
    assert http.get(f"/_emulator/journal/{first['id']}").json()["id"] == first["id"]
    by_rule = http.get("/_emulator/journal", params={"rule": "ping"}).json()["data"]
    assert len(by_rule) == 2
    assert len(http.get("/_emulator/journal", params={"status": 200, "limit": 1}).json()["data"]) == 1
    assert http.get("/_emulator/journal", params={"since": first["time"] + 3600}).json()["data"] == []
    assert http.get("/_emulator/journal", params={"path": "/v1/models"}).json()["data"] == []
    http.delete("/_emulator/journal", headers={"x-emulator-test-id": "j"})
    assert len(http.get("/_emulator/journal").json()["data"]) == 1


def test_journal_explains_a_miss(http):
    load(
        http,
        PING + "  - name: weather\n    when: {last_user: {contains: weather}, model: qwen-plus}\n"
        "    reply: {content: sunny}\n",
    )
    ask(http, "what is the weather", "m")
    [entry] = http.get("/_emulator/journal", params={"test_id": "m"}).json()["data"]
    assert entry["action"] == "generated" and entry["rule"] is None
    misses = {miss["rule"]: miss for miss in entry["misses"]}
    assert set(misses) == {"weather", "ping"}
    assert misses["weather"]["satisfied"] == 1 and misses["weather"]["total"] == 2
    assert "glm-5" in misses["weather"]["reasons"][0]
    assert "what is the weather" in misses["ping"]["reasons"][0]


def test_fail_next_fails_the_scopes_next_requests_then_rules_answer(http):
    load(http, PING)
    queued = http.post(
        "/_emulator/fail_next",
        json={"count": 2, "status": 429, "headers": {"Retry-After": "0"}},
        headers={"x-emulator-test-id": "f"},
    )
    assert queued.status_code == 201 and queued.json()["queued"] == 2
    assert content(ask(http, "ping", "other")) == "pong"
    first = ask(http, "ping", "f")
    assert first.status_code == 429 and first.headers["retry-after"] == "0"
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    assert ask(http, "ping", "f").status_code == 429
    assert content(ask(http, "ping", "f")) == "pong"
    journal = http.get("/_emulator/journal", params={"test_id": "f"}).json()["data"]
    assert [e["rule"] for e in journal] == ["fail_next", "fail_next", "ping"]


def test_test_id_in_the_url_scopes_requests_of_clients_without_the_header(http):
    load(http, PING, test_id="url test/1")
    root = scoped_root("", "url test/1")
    response = http.post(
        root + "/v1/chat/completions",
        headers=AUTH,
        json={"model": "glm-5", "messages": [{"role": "user", "content": "ping"}]},
    )
    assert content(response) == "pong"
    [entry] = http.get("/_emulator/journal", params={"test_id": "url test/1"}).json()["data"]
    assert entry["path"] == "/v1/chat/completions" and entry["test_id"] == "url test/1"


def test_beyond_loopback_without_token_the_control_api_is_disabled():
    http = client(host="0.0.0.0")
    response = http.get("/_emulator/scenarios")
    assert response.status_code == 403
    assert "--control-token" in response.json()["error"]["message"]
    assert http.get("/_emulator/health").status_code == 200  # health checks stay open


def test_a_configured_token_is_required_and_compared(caplog):
    http = client(host="0.0.0.0", control_token="s3cret-token")
    assert http.get("/_emulator/journal").status_code == 401
    assert http.get("/_emulator/journal", headers={"x-emulator-control-token": "wrong"}).status_code == 401
    assert http.get("/_emulator/journal", headers={"x-emulator-control-token": "s3cret-token"}).status_code == 200
    assert http.get("/_emulator/journal", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
    assert "s3cret-token" not in caplog.text
    assert "s3cret-token" not in repr(Settings(control_token="s3cret-token"))


def test_journal_entries_of_rejected_and_count_tokens_requests_say_what_was_asked(http):
    headers = {**AUTH, "x-emulator-test-id": "asked"}
    refused = http.post(
        "/v1/chat/completions", json={"model": "glm-5", "stream": True, "messages": []}, headers=headers
    )
    assert refused.status_code == 400
    bad_model = ask(http, "hi", "asked", model="gpt-nope")
    assert bad_model.status_code == 403
    counted = http.post(
        "/v1/messages/count_tokens",
        json={"model": "zhipu/glm-5", "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    assert counted.status_code == 200
    rejected, unknown, count = http.get("/_emulator/journal", params={"test_id": "asked"}).json()["data"]
    assert (rejected["action"], rejected["model"], rejected["stream"]) == ("rejected", "glm-5", True)
    assert (unknown["model"], unknown["stream"]) == ("gpt-nope", False)
    assert count["body"]["model"] == "zhipu/glm-5" and count["model"] == "glm-5"
    for entry, response in ((rejected, refused), (unknown, bad_model), (count, counted)):
        assert entry["response_headers"]["x-request-id"] == response.headers["x-request-id"] == entry["request_id"]
