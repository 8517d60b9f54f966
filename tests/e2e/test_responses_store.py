"""Stored responses: GET, DELETE, input_items, chaining, store: false, errors, bounds and per-test reset."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.helpers.responses import WEATHER_RESULT, WEATHER_TOOL
from tests.helpers.servers import RunningServer, start_server, stop_server
from tests.helpers.spec import assert_valid


def post(server: RunningServer, body: dict, path: str = "/v1/responses", **headers: str):
    with server.http(headers=headers) as http:
        return http.post(path, json=body)


def assert_error(response, status: int, param: str | None, message: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    if message is not None:
        assert error["message"] == message
    return error


# ── retrieve, delete, input items ────────────────────────────────────────────


def test_retrieve_returns_what_create_returned(server):
    client = server.openai()
    created = client.responses.with_raw_response.create(model="glm-5", input="Calculate 1+1", metadata={"k": "v"})
    with server.http() as http:
        fetched = http.get(f"/v1/responses/{created.parse().id}")
    assert fetched.status_code == 200
    assert_valid("Response", fetched.json())
    assert fetched.json() == json.loads(created.text)


def test_delete_then_404(server):
    client = server.openai()
    response = client.responses.create(model="glm-5", input="Calculate 1+1")
    with server.http() as http:
        deleted = http.delete(f"/v1/responses/{response.id}")
        assert deleted.json() == {"id": response.id, "object": "response.deleted", "deleted": True}
        assert_error(
            http.get(f"/v1/responses/{response.id}"), 404, None, f"Response with id '{response.id}' not found."
        )
        assert http.delete(f"/v1/responses/{response.id}").status_code == 404
    client.responses.delete(client.responses.create(model="glm-5", input="x").id)  # the SDK's own call


@pytest.mark.parametrize("suffix", ["", "/input_items"])
def test_unknown_ids_are_404_in_the_openai_envelope(server, suffix):
    with server.http() as http:
        error = assert_error(http.get(f"/v1/responses/resp_nope{suffix}"), 404, None)
    assert error["message"] == "Response with id 'resp_nope' not found."
    with pytest.raises(openai.NotFoundError):
        server.openai().responses.retrieve("resp_nope")


def test_stored_routes_need_a_key(server):
    response = server.openai().responses.create(model="glm-5", input="Calculate 1+1")
    with server.http() as http:
        for method in ("GET", "DELETE"):
            assert (
                http.request(method, f"/v1/responses/{response.id}", headers={"authorization": ""}).status_code == 401
            )


def test_input_items_list_the_whole_chain(server):
    client = server.openai()
    first = client.responses.create(model="glm-5", input="What is the weather in Beijing?", tools=[WEATHER_TOOL])
    call = first.output[0]
    second = client.responses.create(
        model="glm-5",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": WEATHER_RESULT}],
    )
    with server.http() as http:
        listed = http.get(f"/v1/responses/{second.id}/input_items", params={"order": "asc"}).json()
    assert_valid("ResponseItemList", listed)
    kinds = [(item["type"], item.get("role")) for item in listed["data"]]
    assert kinds == [("message", "user"), ("function_call", None), ("function_call_output", None)]
    user, function_call, output = listed["data"]
    assert user["content"] == [{"type": "input_text", "text": "What is the weather in Beijing?"}]
    assert function_call["id"] == call.id and function_call["call_id"] == call.call_id
    assert output["output"] == WEATHER_RESULT and output["status"] == "completed"
    assert (listed["first_id"], listed["last_id"], listed["has_more"]) == (user["id"], output["id"], False)
    # the default order is newest first, and the SDK pages through it
    assert [item.id for item in client.responses.input_items.list(second.id)] == [
        output["id"],
        function_call["id"],
        user["id"],
    ]


def test_input_items_pagination(server):
    client = server.openai()
    messages = [{"role": "user", "content": f"message {n}"} for n in range(5)]
    response = client.responses.create(model="glm-5", input=messages)
    with server.http() as http:
        url = f"/v1/responses/{response.id}/input_items"
        page = http.get(url, params={"limit": 2, "order": "asc"}).json()
        assert [item["content"][0]["text"] for item in page["data"]] == ["message 0", "message 1"]
        assert page["has_more"] is True
        rest = http.get(url, params={"limit": 10, "order": "asc", "after": page["last_id"]}).json()
        assert [item["content"][0]["text"] for item in rest["data"]] == ["message 2", "message 3", "message 4"]
        assert rest["has_more"] is False
        assert_error(http.get(url, params={"limit": 0}), 400, "limit")
        assert_error(http.get(url, params={"order": "sideways"}), 400, "order")
        assert_error(http.get(url, params={"after": "msg_unknown"}), 400, "after")
    all_items = list(client.responses.input_items.list(response.id, limit=2))
    assert [item.content[0].text for item in all_items] == [f"message {n}" for n in range(4, -1, -1)]


# ── chaining ─────────────────────────────────────────────────────────────────


def test_a_chain_of_three_turns(server):
    client = server.openai()
    first = client.responses.create(model="deepseek-v3.2", input="Please introduce quantum computing")
    second = client.responses.create(
        model="deepseek-v3.2",
        previous_response_id=first.id,
        input="What is the difference between it and traditional computing?",
    )
    third = client.responses.create(model="deepseek-v3.2", previous_response_id=second.id, input="Calculate 1+1")
    assert second.output_text.startswith("Classical computers process bits")
    assert third.output_text == "1+1=2"
    items = list(client.responses.input_items.list(third.id, order="asc"))
    assert [(item.type, item.role) for item in items] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]
    assert items[1].content[0].text == first.output_text and items[3].id == second.output[0].id
    assert third.usage.input_tokens > second.usage.input_tokens > first.usage.input_tokens


def test_chain_survives_deleting_an_earlier_link(server):
    client = server.openai()
    first = client.responses.create(model="deepseek-v3.2", input="Please introduce quantum computing")
    second = client.responses.create(model="deepseek-v3.2", previous_response_id=first.id, input="Go on")
    client.responses.delete(first.id)
    third = client.responses.create(
        model="deepseek-v3.2",
        previous_response_id=second.id,
        input="What is the difference between it and traditional computing?",
    )
    assert third.output_text.startswith("Classical computers process bits")


def test_item_reference_resolves_a_stored_item(server):
    client = server.openai()
    first = client.responses.create(model="glm-5", input="Please introduce quantum computing")
    second = client.responses.create(
        model="glm-5",
        input=[
            {"role": "user", "content": "Please introduce quantum computing"},
            {"type": "item_reference", "id": first.output[0].id},
            {"role": "user", "content": "What is the difference between it and traditional computing?"},
        ],
    )
    assert second.output_text.startswith("Classical computers process bits")
    body = {"model": "glm-5", "input": [{"type": "item_reference", "id": "msg_nope"}]}
    assert_error(post(server, body), 404, "input[0].id", "Item with id 'msg_nope' not found.")


def test_store_false_keeps_nothing(server):
    client = server.openai()
    response = client.responses.create(model="glm-5", input="Calculate 1+1", store=False)
    assert response.store is False and response.output_text == "1+1=2"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    body = {"model": "glm-5", "previous_response_id": response.id, "input": "And 2+2?"}
    assert_error(post(server, body), 404, "previous_response_id")


def test_unknown_previous_response_id(server):
    body = {"model": "glm-5", "previous_response_id": "resp_x", "input": "hi"}
    error = assert_error(post(server, body), 404, "previous_response_id")
    assert error["message"] == "Previous response with id 'resp_x' not found."


def test_output_answering_no_call_is_400(server):
    client = server.openai()
    first = client.responses.create(model="glm-5", input="Calculate 1+1")
    body = {
        "model": "glm-5",
        "previous_response_id": first.id,
        "input": [
            {"role": "user", "content": "and?"},
            {"type": "function_call_output", "call_id": "call_unknown", "output": "{}"},
        ],
    }
    error = assert_error(post(server, body), 400, "input[1].call_id")
    assert error["message"] == "No tool call found for function call output with call_id call_unknown."


def test_call_left_unanswered_is_400(server):
    client = server.openai()
    first = client.responses.create(model="glm-5", input="What is the weather in Beijing?", tools=[WEATHER_TOOL])
    body = {"model": "glm-5", "previous_response_id": first.id, "input": "Never mind."}
    error = assert_error(post(server, body), 400, "input")
    assert error["message"] == f"No tool output found for function call {first.output[0].call_id}."


# ── request validation ───────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": "glm-5", "input": 5}, "input"),
        ({"model": "glm-5", "input": [{"type": "bogus"}]}, "input[0].type"),
        ({"model": "glm-5", "input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
        ({"model": "glm-5", "input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, "input[0].content[0].type"),
        ({"model": "glm-5", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"model": "glm-5", "input": "hi", "temperature": 2.5}, "temperature"),
        ({"model": "glm-5", "input": "hi", "top_p": "high"}, "top_p"),
        ({"model": "glm-5", "input": "hi", "max_output_tokens": 8}, "max_output_tokens"),
        ({"model": "glm-5", "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "glm-5", "input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "glm-5", "input": "hi", "tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name"),
        ({"model": "glm-5", "input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"model": "glm-5", "input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"model": "glm-5", "input": "hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"model": "glm-5", "input": "hi", "metadata": {"n": 1}}, "metadata.n"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_param(server, body, param):
    error = assert_error(post(server, body), 400, param)
    assert error["type"] == "invalid_request_error"
    assert f"'{param}'" in error["message"]


def test_unknown_fields_are_ignored(server):
    response = post(server, {"model": "glm-5", "input": "Calculate 1+1", "frobnicate": True, "background": False})
    assert response.status_code == 200 and response.json()["output"][0]["content"][0]["text"] == "1+1=2"


def test_unknown_model_is_403(server):
    error = assert_error(post(server, {"model": "gpt-9", "input": "hi"}), 403, "model")
    assert error["type"] == "model_not_available" and "Available models:" in error["message"]


def test_the_sdk_raises_bad_request(server):
    with pytest.raises(openai.BadRequestError) as raised:
        server.openai().responses.create(model="glm-5", input="hi", temperature=3)
    assert raised.value.body["param"] == "temperature"


def test_reset_forgets_the_responses_of_one_test(server):
    def create(test_id: str) -> str:
        client = server.openai(default_headers={"x-emulator-test-id": test_id})
        return client.responses.create(model="glm-5", input="Calculate 1+1").id

    dropped, kept = create("responses-reset"), create("responses-keep")
    with server.http(headers={"x-emulator-test-id": "responses-reset"}) as http:
        assert http.post("/_emulator/reset").status_code == 200
    with server.http() as http:
        assert http.get(f"/v1/responses/{dropped}").status_code == 404
        assert http.get(f"/v1/responses/{kept}").status_code == 200


@pytest.fixture(scope="module")
def cloudbase() -> Iterator[RunningServer]:
    from tests.helpers.servers import SCENARIOS

    running = start_server("--profile", "cloudbase", "--scenario", str(SCENARIOS))
    yield running
    stop_server(running)


def test_cloudbase_serves_responses_at_its_documented_path(cloudbase):
    """CloudBase: `…/v1/ai/cloudbase/responses`, so an OpenAI client's base URL is `…/v1/ai/cloudbase`."""
    client = openai.OpenAI(api_key="sk-test", base_url=cloudbase.url + "/v1/ai/cloudbase", max_retries=0)
    first = client.responses.create(
        model="hy3-preview",
        input="What is the weather like in Beijing today?",
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    call = first.output[0]
    second = client.responses.create(
        model="hy3-preview",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": WEATHER_RESULT}],
    )
    assert second.output_text == "It is sunny in Beijing today, 26°C with 40% humidity."
    assert client.responses.retrieve(second.id).id == second.id
    assert [item.type for item in client.responses.input_items.list(second.id)][0] == "function_call_output"
    assert post(cloudbase, {"model": "glm-5", "input": "hi"}).status_code == 404  # not at /v1/responses there


def test_an_output_without_call_id_answers_the_last_open_call(server):
    """The SDK leaves `call_id` optional on a function_call_output: it answers the call still waiting."""
    call = {"type": "function_call", "call_id": "call_a1", "name": "get_weather", "arguments": "{}"}
    body = {
        "model": "glm-5",
        "input": [{"role": "user", "content": "hi"}, call, {"type": "function_call_output", "output": "sunny"}],
    }
    response = post(server, body)
    assert response.status_code == 200, response.text
