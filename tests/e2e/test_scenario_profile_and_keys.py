"""A scenario can name its gateway profile and the API keys it accepts."""

from __future__ import annotations

import pytest

from tests.helpers.servers import start_server, stop_server

SCENARIO = """
settings:
  profile: cloudbase
  api_keys: [sk-team-a, sk-team-b]
rules:
  - {when: {last_user: hi}, reply: {content: hello}}
"""


@pytest.fixture(scope="module")
def from_scenario(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "gateway.yaml"
    path.write_text(SCENARIO)
    running = start_server("--scenario", str(path), "--api-key", "sk-flag")
    yield running
    stop_server(running)


def chat(server, key: str, path: str = "/v1/ai/cloudbase/chat/completions"):
    with server.http(headers={"authorization": f"Bearer {key}"}) as http:
        return http.post(path, json={"model": "glm-5", "messages": [{"role": "user", "content": "hi"}]})


def test_the_scenario_profile_decides_the_paths(from_scenario):
    assert chat(from_scenario, "sk-team-a").json()["choices"][0]["message"]["content"] == "hello"
    assert chat(from_scenario, "sk-team-a", "/v1/chat/completions").status_code == 404


def test_keys_from_scenarios_and_flags_are_accepted_together(from_scenario):
    assert chat(from_scenario, "sk-team-b").status_code == 200
    assert chat(from_scenario, "sk-flag").status_code == 200
    refused = chat(from_scenario, "sk-other")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "authentication_error"


def test_a_profile_flag_wins_over_the_scenario(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(SCENARIO)
    running = start_server("--scenario", str(path), "--profile", "tokenhub")
    try:
        assert chat(running, "sk-team-a", "/v1/chat/completions").status_code == 200
    finally:
        stop_server(running)
