"""GET /v1/models and model-id resolution: the seeds' catalog, provider/model ids and custom service ids."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, start_server, stop_server
from tests.spec import assert_valid

SEED_CATALOG = {
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


def test_list_models_has_the_seed_catalog_and_declared_models(gateway):
    with gateway.http() as http:
        body = http.get("/v1/models").json()
    assert_valid("ListModelsResponse", body)
    ids = {m["id"] for m in body["data"]}
    assert SEED_CATALOG | {"ep-a1b2c3d4", "acme-thinker"} <= ids
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
