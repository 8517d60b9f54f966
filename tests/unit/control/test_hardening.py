"""The control API reads no file outside the scenario roots and answers no web page (issue 11)."""

from __future__ import annotations

import os

import pytest
from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.server.app import build_app

PING = "rules:\n  - name: ping\n    when: {last_user: ping}\n    reply: {content: pong}\n"
SECRET = "hunter2-do-not-show"


def client(**settings) -> TestClient:
    return TestClient(build_app(Settings(**settings)), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)


@pytest.fixture
def roots(tmp_path):
    root = tmp_path / "scenarios"
    root.mkdir()
    (root / "ping.yaml").write_text(PING)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text(f"password: {SECRET}\n")
    return root, outside


def load_path(http: TestClient, path: str):
    return http.post("/_emulator/scenarios", json={"path": path})


def test_a_path_outside_the_roots_is_refused_the_same_whether_it_exists_or_not(roots):
    root, outside = roots
    http = client(scenarios=[root])
    for path in ("/etc/passwd", "/etc/shadow", str(outside / "secret.yaml"), "/nonexistent/x.yaml", "../outside"):
        response = load_path(http, path)
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "path_not_allowed" and "problems" not in error
        assert "root:" not in response.text and SECRET not in response.text
    existing, missing = load_path(http, "/etc/passwd").json(), load_path(http, "/etc/passwd-nope").json()
    assert existing["error"]["message"].replace("/etc/passwd", "X") == missing["error"]["message"].replace(
        "/etc/passwd-nope", "X"
    )


def test_a_path_inside_the_roots_loads(roots):
    root, _ = roots
    http = client(scenarios=[root / "ping.yaml"])  # a file's folder is a root
    assert load_path(http, "ping.yaml").status_code == 201
    assert load_path(http, str(root)).status_code == 201
    assert load_path(http, str(root / "nope.yaml")).status_code == 404


def test_links_out_of_the_roots_are_not_followed(roots):
    root, outside = roots
    os.symlink(outside / "secret.yaml", root / "link.yaml")
    os.symlink(outside, root / "linked-folder")
    http = client(scenario_roots=[root])
    for path in ("link.yaml", str(root / "link.yaml"), "linked-folder", "linked-folder/secret.yaml"):
        response = load_path(http, path)
        assert response.status_code == 403 and SECRET not in response.text, response.text
    folder = load_path(http, str(root))  # the folder's own files load; the link in it is left out
    assert folder.status_code == 201 and folder.json()["loaded"] == ["ping"] and SECRET not in folder.text


@pytest.mark.parametrize(
    "text",
    [
        f"password: {SECRET}\n",
        f"{SECRET}\n",
        f"- {SECRET}\n- other\n",
        f"name: x\nservices: {{db: {{password: {SECRET}}}}}\n",
        f"key: [{SECRET}\n",
    ],
    ids=["mapping", "scalar", "list", "scenario-like", "broken-yaml"],
)
def test_a_file_that_is_not_a_scenario_is_never_quoted_back(roots, text):
    root, _ = roots
    http = client(scenarios=[root])
    (root / "other.yaml").write_text(text)
    response = load_path(http, "other.yaml")
    assert response.status_code == 400 and SECRET not in response.text, response.text
    assert "not a scenario file" in response.json()["error"]["message"]


def test_a_broken_scenario_in_the_roots_still_says_what_is_wrong(roots):
    root, _ = roots
    http = client(scenarios=[root])
    (root / "broken.yaml").write_text("rules:\n  - when: {last_usr: hi}\n    reply: {content: x}\n")
    response = load_path(http, "broken.yaml")
    assert response.status_code == 400 and "did you mean 'last_user'" in response.text


def test_files_that_are_not_yaml_are_not_read(roots):
    root, _ = roots
    (root / ".env").write_text(f"KEY={SECRET}\n")
    response = load_path(client(scenarios=[root]), ".env")
    assert response.status_code == 400 and SECRET not in response.text


def test_no_roots_no_path_loads():
    response = load_path(client(), "/etc/passwd")
    assert response.status_code == 403 and "--scenario-root" in response.json()["error"]["message"]


def test_another_host_name_is_refused_on_loopback():
    http = client()
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "10.0.0.1"):
        response = http.get("/_emulator/journal", headers={"host": host})
        assert response.status_code == 403 and response.json()["error"]["code"] == "host_not_allowed", host
    for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost:1"):
        assert http.get("/_emulator/journal", headers={"host": host}).status_code == 200, host


def test_a_control_token_lets_any_host_name_in():
    http = client(control_token="tok")
    response = http.get("/_emulator/journal", headers={"host": "emulator.internal", "x-emulator-control-token": "tok"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": "http://localhost:9999"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
def test_requests_from_other_origins_are_refused(headers):
    http = client()
    for response in (
        http.get("/_emulator/journal", headers=headers),
        http.post("/_emulator/scenarios", content=PING, headers={**headers, "content-type": "application/yaml"}),
    ):
        assert response.status_code == 403 and response.json()["error"]["code"] == "cross_origin_refused"
    assert http.get("/_emulator/scenarios").json()["scenarios"] == []


def test_same_origin_and_typed_requests_pass():
    http = client()
    same = {"origin": "http://127.0.0.1:8000", "sec-fetch-site": "same-origin"}
    assert http.get("/_emulator/journal", headers=same).status_code == 200
    assert http.get("/_emulator/health", headers={"origin": "https://evil.example"}).status_code == 200


def test_a_simple_post_a_page_could_send_changes_nothing():
    http = client()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
        headers = {"content-type": content_type} if content_type else {}
        response = http.post("/_emulator/scenarios", content=PING, headers=headers)
        assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
        assert http.post("/_emulator/reset", headers=headers).status_code == 415
    assert http.get("/_emulator/scenarios").json()["scenarios"] == []
    scoped = http.post(
        "/_emulator/scenarios", content=PING, headers={"content-type": "text/plain", "x-emulator-test-id": "t"}
    )
    assert scoped.status_code == 201  # a header of our own: a page cannot send it without asking first


def test_control_bodies_are_bounded():
    http = client(control_body_bytes=1000)
    big = "rules: []\n" + "#" * 5000
    response = http.post("/_emulator/scenarios", content=big, headers={"content-type": "application/yaml"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    response = http.post("/_emulator/fail_next", content=b"{" * 5000, headers={"content-type": "application/json"})
    assert response.status_code == 413
