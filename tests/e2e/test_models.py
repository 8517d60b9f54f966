"""GET /v1/models and model-id resolution: the gateways' documented catalog, provider/model ids and custom service ids."""

from __future__ import annotations

import pytest

from tests.helpers.servers import ROOT, start_server, stop_server
from tests.helpers.spec import assert_valid

DOCUMENTED_CATALOG = {
    "deepseek-v3.2",
    "glm-5",
    "glm-5v-turbo",
    "glm-5-turbo",
    "glm-5.1",
    "kimi-k2.5",
    "minimax-m2.5",
    "minimax-m2.7",
    "qwen-plus",
    "hy3-preview",
}


@pytest.fixture(scope="module")
def gateway():
    running = start_server("--scenario", str(ROOT / "tests" / "fixtures" / "gateway.yaml"))
    yield running
    stop_server(running)


def test_list_models_has_the_documented_catalog_and_declared_models(gateway):
    with gateway.http() as http:
        body = http.get("/v1/models").json()
    assert_valid("ListModelsResponse", body)
    ids = {m["id"] for m in body["data"]}
    assert DOCUMENTED_CATALOG | {"ep-a1b2c3d4", "acme-thinker"} <= ids
    listed = gateway.openai().models.list()
    assert {m.id for m in listed} == ids


def test_retrieve_model_by_id_including_provider_prefixed_path(gateway):
    client = gateway.openai()
    model = client.models.retrieve("kimi-k2.5")
    assert (model.id, model.object, model.owned_by) == ("kimi-k2.5", "model", "moonshot")
    with gateway.http() as http:
        response = http.get("/v1/models/gpt-7")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_custom_service_id_answers_as_the_model_it_serves(gateway):
    completion = gateway.openai().chat.completions.create(
        model="ep-a1b2c3d4", messages=[{"role": "user", "content": "which model?"}]
    )
    assert completion.model == "glm-5"
    assert completion.choices[0].message.content == "I am glm-5."


def test_declared_model_is_usable_and_can_think(gateway):
    with gateway.http() as http:
        body = http.post(
            "/v1/chat/completions",
            json={"model": "acme-thinker", "enable_thinking": True, "messages": [{"role": "user", "content": "Hi"}]},
        ).json()
    assert body["model"] == "acme-thinker"
    assert body["choices"][0]["message"]["reasoning_content"]


def test_unknown_provider_prefix_is_not_available(gateway):
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions", json={"model": "nobody/glm-5", "messages": [{"role": "user", "content": "Hi"}]}
        )
    assert response.status_code == 403


def test_models_need_a_key(gateway):
    with gateway.http(headers={"authorization": ""}) as http:
        assert http.get("/v1/models").status_code == 401


@pytest.fixture
def env_server():
    running = start_server(env={"TOKENHUB_EMULATOR_API_KEYS": "sk-env-1,sk-env-2", "TOKENHUB_EMULATOR_SEED": "3"})
    yield running
    stop_server(running)


def test_settings_from_environment(env_server):
    with env_server.http(headers={"authorization": "Bearer sk-env-2"}) as http:
        assert http.get("/v1/models").status_code == 200
    with env_server.http(headers={"authorization": "Bearer sk-other"}) as http:
        assert http.get("/v1/models").status_code == 401


# ── the Anthropic shape, for Anthropic clients on the same path ──────────────


def _anthropic(server, under: str = ""):
    import anthropic

    return anthropic.Anthropic(api_key="sk-test", base_url=server.url + under, max_retries=0)


def test_anthropic_client_lists_and_retrieves_models(gateway):
    client = _anthropic(gateway)
    listed = list(client.models.list(limit=4))  # pages of four, followed by `last_id` until `has_more` is false
    assert {m.id for m in listed} == DOCUMENTED_CATALOG | {"ep-a1b2c3d4", "acme-thinker"}
    assert all(m.type == "model" and m.display_name == m.id and m.lifecycle == "active" for m in listed)
    created = [m.created_at for m in listed]
    assert created == sorted(created, reverse=True)  # newest first, as the API lists them
    assert next(m for m in listed if m.id == "glm-5").created_at.isoformat() == "2026-02-05T00:00:00+00:00"
    first = client.models.list(limit=2)
    assert (first.has_more, first.first_id, first.last_id) == (True, first.data[0].id, first.data[1].id)
    assert client.models.retrieve("kimi-k2.5").id == "kimi-k2.5"
    with gateway.http(headers={"anthropic-version": "2023-06-01"}) as http:
        before = http.get("/v1/models", params={"before_id": first.last_id}).json()
        assert [m["id"] for m in before["data"]] == [first.first_id] and before["has_more"] is False
        assert http.get("/v1/models", params={"limit": "0"}).json()["error"]["type"] == "invalid_request_error"


def test_anthropic_client_unknown_model_and_bad_key_use_the_anthropic_envelope(gateway):
    import anthropic

    with pytest.raises(anthropic.NotFoundError) as caught:
        _anthropic(gateway).models.retrieve("claude-nope")
    assert caught.value.body["error"] == {"type": "not_found_error", "message": "model: claude-nope"}
    with gateway.http(headers={"authorization": "", "anthropic-version": "2023-06-01"}) as http:
        refused = http.get("/v1/models")
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"


def test_cloudbase_serves_anthropic_models_beside_its_messages_path():
    running = start_server("--profile", "cloudbase")
    try:
        client = _anthropic(running, "/v1/ai/cloudbase")
        assert "glm-5" in {m.id for m in client.models.list()}
    finally:
        stop_server(running)


def test_unknown_model_names_aliases_and_how_to_declare_one(gateway):
    with gateway.http() as http:
        error = http.post(
            "/v1/chat/completions", json={"model": "gpt-7", "messages": [{"role": "user", "content": "Hi"}]}
        ).json()["error"]
    assert "ep-a1b2c3d4 (serves " in error["message"] and "`models:`" in error["message"]


def test_openai_profile_unknown_model_is_404_model_not_found():
    import openai

    running = start_server("--profile", "openai")
    try:
        with pytest.raises(openai.NotFoundError) as caught:
            running.openai().chat.completions.create(model="gpt-7", messages=[{"role": "user", "content": "Hi"}])
        error = caught.value.body
        assert (error["code"], error["param"]) == ("model_not_found", "model")
        assert error["message"].startswith("The model `gpt-7` does not exist or you do not have access to it.")
    finally:
        stop_server(running)
