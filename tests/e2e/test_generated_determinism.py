"""The generated reply (no scenario) is a function of the request and the seed: two `serve` processes, with
different hash seeds, answer the same request with the same text, on every protocol, streamed or not."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.servers import start_server, stop_server

HEADERS = {"authorization": "Bearer sk-test", "x-api-key": "sk-test", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def two_servers() -> Iterator[list[httpx.Client]]:
    started = [start_server("--seed", "7", env={"PYTHONHASHSEED": seed}) for seed in ("1", "2")]
    clients = [httpx.Client(base_url=server.url, headers=HEADERS, timeout=10) for server in started]
    yield clients
    for client in clients:
        client.close()
    for server in started:
        stop_server(server)


def chat_text(client: httpx.Client, prompt: str, **extra: object) -> str:
    body = {"model": "glm-5", "messages": [{"role": "user", "content": prompt}], **extra}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    if extra.get("stream"):
        deltas = [json.loads(line[6:])["choices"] for line in response.text.splitlines() if line.startswith("data: {")]
        return "".join(choice[0]["delta"].get("content") or "" for choice in deltas if choice)
    return response.json()["choices"][0]["message"]["content"]


def responses_text(client: httpx.Client, prompt: str) -> str:
    response = client.post("/v1/responses", json={"model": "glm-5", "input": prompt})
    assert response.status_code == 200, response.text
    return response.json()["output"][0]["content"][0]["text"]


def messages_text(client: httpx.Client, prompt: str) -> str:
    body = {"model": "glm-5", "max_tokens": 200, "messages": [{"role": "user", "content": prompt}]}
    response = client.post("/v1/messages", json=body)
    assert response.status_code == 200, response.text
    return response.json()["content"][0]["text"]


@pytest.mark.parametrize(
    "read",
    [chat_text, lambda c, p: chat_text(c, p, stream=True), responses_text, messages_text],
    ids=["chat", "chat-stream", "responses", "messages"],
)
def test_the_same_request_gets_the_same_text_in_another_process(two_servers: list[httpx.Client], read) -> None:
    prompts = ["Calculate 1+1", "What is the capital of France?", "Write a haiku about the sea"]
    first = [read(two_servers[0], prompt) for prompt in prompts]
    second = [read(two_servers[1], prompt) for prompt in prompts]
    assert first == second
    assert [read(two_servers[0], prompt) for prompt in prompts] == first  # and again in the same process
    assert len(set(first)) == len(prompts)  # different requests, different replies
    assert all(text.strip().endswith(".") for text in first)


def test_the_streamed_text_is_the_text_of_the_reply(two_servers: list[httpx.Client]) -> None:
    assert chat_text(two_servers[0], "Tell me a story", stream=True) == chat_text(two_servers[1], "Tell me a story")
