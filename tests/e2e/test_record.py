"""`tokenhub-emulator record`, end to end: a second emulator is the upstream; record, then replay offline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
import yaml

from tests.helpers.servers import ROOT, RunningServer, start_server, stop_server

UPSTREAM_SCENARIO = """
settings:
  timing: {ttft_ms: 150, chunk_delay_ms: 20}
rules:
  - name: plain
    when: {last_user: hello}
    reply:
      content: 'Hello! Braces {{ "{{" }} stay }} as they are.'
      usage: {prompt_tokens: 11, completion_tokens: 7, total_tokens: 18}
  - name: thinking
    when: {last_user: think}
    reply: {reasoning: "Let me think.", content: "Thought it through."}
  - name: tool
    when: {last_user: weather, tool_result: absent}
    reply:
      tool_calls: [{name: get_weather, arguments: {city: Paris}, id: call_recorded0001}]
  - name: after tool
    when: {tool_result: {name: get_weather}}
    reply: {content: "It is sunny in Paris."}
  - name: busy
    when: {last_user: busy}
    fail: {status: 429, message: Slow down, headers: {retry-after: "0"}}
  - name: counting
    when: {last_user: count}
    sequence:
      - reply: {content: one}
      - reply: {content: two}
"""
KEY = "sk-live-supersecret-0123456789"
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def start_recorder(*args: str) -> RunningServer:
    command = [sys.executable, "-m", "emulator", "record", "--port", "0", "--log-level", "warning", *args]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"recorder did not start: {line!r} {process.communicate(timeout=10)[1]}")
    return RunningServer(process, line.rsplit(" ", 1)[-1].strip())


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    scenario = tmp_path_factory.mktemp("upstream") / "upstream.yaml"
    scenario.write_text(UPSTREAM_SCENARIO)
    running = start_server("--scenario", str(scenario))
    yield running
    stop_server(running)


def chat(server: RunningServer, text: str, **kwargs):
    client = openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
    messages = kwargs.pop("messages", [{"role": "user", "content": text}])
    return client.chat.completions.create(model="glm-5", messages=messages, **kwargs)


def summary(completion) -> dict:
    choice = completion.choices[0]
    message = choice.message
    return {
        "content": message.content,
        "reasoning": (message.model_extra or {}).get("reasoning_content"),
        "tool_calls": [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []],
        "finish_reason": choice.finish_reason,
        "usage": (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens),
    }


def streamed(server: RunningServer, text: str) -> tuple[str, float]:
    """The streamed text and the time to its first content delta, in ms."""
    client = openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
    started = time.monotonic()
    first = None
    parts = []
    for chunk in client.chat.completions.create(
        model="glm-5", messages=[{"role": "user", "content": text}], stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            first = first if first is not None else (time.monotonic() - started) * 1000
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts), first or 0.0


def tool_round_trip(server: RunningServer) -> list[dict]:
    first = chat(server, "weather", tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    messages = [
        {"role": "user", "content": "weather"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
    ]
    second = chat(server, "", messages=messages, tools=[WEATHER_TOOL])
    return [summary(first), summary(second)]


def conversation(server: RunningServer) -> dict:
    answers = {
        "hello": summary(chat(server, "hello")),
        "think": summary(chat(server, "think", reasoning_effort="high")),
        "tools": tool_round_trip(server),
        "count": [summary(chat(server, "count"))["content"] for _ in range(3)],
        "stream": streamed(server, "hello")[0],
    }
    with pytest.raises(openai.RateLimitError) as busy:
        chat(server, "busy")
    answers["busy"] = (busy.value.status_code, busy.value.body["message"], busy.value.response.headers["retry-after"])
    return answers


def test_record_then_replay_offline_chat(upstream, tmp_path):
    out = tmp_path / "recorded.yaml"
    recorder = start_recorder("--upstream", upstream.url, "--out", str(out))
    try:
        recorded = conversation(recorder)
        _, recorded_ttft = streamed(recorder, "think")
    finally:
        stop_server(recorder)
    httpx.post(
        upstream.url + "/_emulator/reset", headers={"content-type": "application/json"}
    )  # its sequence starts over
    assert recorded == conversation(upstream)
    text = out.read_text()
    assert KEY not in text and "supersecret" not in text and "authorization" not in text.lower()
    data = yaml.safe_load(text)
    assert data["settings"] == {"fallback": "error"}
    count_rule = next(rule for rule in data["rules"] if rule["when"]["last_user"] == {"equals": "count"})
    assert [step["reply"]["content"] for step in count_rule["sequence"]] == ["one", "two", "two"]
    stream_rule = next(
        r for r in data["rules"] if r["when"]["last_user"] == {"equals": "think"} and "body" in r["when"]
    )
    assert stream_rule["timing"]["ttft_ms"] > 0 and stream_rule["timing"]["chunk_delay_ms"] > 0
    plain_rule = next(r for r in data["rules"] if r["when"]["last_user"] == {"equals": "think"} and "not" in r["when"])
    assert plain_rule["timing"]["latency_ms"] > 0

    replay = start_recorder("--mode", "replay", "--out", str(out))  # the upstream is not asked any more
    try:
        before = len(journal(upstream))
        assert conversation(replay) == recorded
        _, replayed_ttft = streamed(replay, "think")
        assert len(journal(upstream)) == before
        with pytest.raises(openai.BadRequestError) as miss:
            chat(replay, "never recorded")
        assert "Nearest rules: 1) 'chat #" in miss.value.body["message"]
    finally:
        stop_server(replay)
    assert recorded_ttft >= 150  # the upstream's scenario asks for 150 ms …
    assert abs(replayed_ttft - recorded_ttft) < 60  # … and the replay keeps it


def journal(server: RunningServer) -> list[dict]:
    return httpx.get(server.url + "/_emulator/journal").json()["data"]


def test_mode_new_replays_known_requests_and_records_new_ones(upstream, tmp_path):
    out = tmp_path / "new.yaml"
    first = start_recorder("--upstream", upstream.url, "--out", str(out), "--mode", "new")
    try:
        assert chat(first, "hello").choices[0].message.content.startswith("Hello!")
        before = len(journal(upstream))
        assert chat(first, "hello").choices[0].message.content.startswith("Hello!")  # replayed
        assert len(journal(upstream)) == before
        assert chat(first, "think").choices[0].message.content == "Thought it through."  # recorded
        assert len(journal(upstream)) == before + 1
    finally:
        stop_server(first)
    assert len(yaml.safe_load(out.read_text())["rules"]) == 2


def test_once_with_an_existing_file_only_replays(upstream, tmp_path):
    out = tmp_path / "once.yaml"
    out.write_text("settings: {fallback: error}\nrules: [{name: r, when: {last_user: hi}, reply: {content: kept}}]\n")
    recorder = start_recorder("--upstream", upstream.url, "--out", str(out))
    try:
        assert chat(recorder, "hi").choices[0].message.content == "kept"
        with pytest.raises(openai.BadRequestError):
            chat(recorder, "hello")
    finally:
        stop_server(recorder)


def test_a_client_that_disconnects_loses_nothing(upstream, tmp_path):
    out = tmp_path / "cut.yaml"
    recorder = start_recorder("--upstream", upstream.url, "--out", str(out))
    try:
        body = {"model": "glm-5", "messages": [{"role": "user", "content": "hello"}], "stream": True}
        headers = {"authorization": f"Bearer {KEY}"}
        with httpx.stream("POST", recorder.url + "/v1/chat/completions", json=body, headers=headers) as response:
            next(response.iter_raw())  # one chunk, then hang up
        deadline = time.monotonic() + 10
        while not out.exists():
            assert time.monotonic() < deadline, "nothing was recorded"
            time.sleep(0.02)
    finally:
        stop_server(recorder)
    [rule] = yaml.safe_load(out.read_text())["rules"]
    assert rule["reply"]["content"] == 'Hello! Braces {{ "{{" }} stay }} as they are.'


def test_replay_without_a_recording_or_upstream_is_refused(tmp_path):
    command = [sys.executable, "-m", "emulator", "record", "--mode", "replay", "--out", str(tmp_path / "none.yaml")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30, env=os.environ.copy())
    assert result.returncode == 2 and "no recording" in result.stderr


# ---------------------------------------------------------------- Responses and Anthropic Messages


def responses_summary(response) -> dict:
    items = []
    for item in response.output:
        if item.type == "message":
            items.append(("message", "".join(part.text for part in item.content if part.type == "output_text")))
        elif item.type == "function_call":
            items.append(("function_call", item.call_id, item.name, item.arguments))
        elif item.type == "reasoning":
            items.append(("reasoning", [s.text for s in item.summary]))
    usage = response.usage
    return {"items": items, "status": response.status, "usage": (usage.input_tokens, usage.output_tokens)}


def responses_conversation(server: RunningServer) -> list:
    client = openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL["function"]["parameters"]}
    answers = [
        responses_summary(client.responses.create(model="glm-5", input="hello")),
        responses_summary(client.responses.create(model="glm-5", input="think", reasoning={"effort": "high"})),
        responses_summary(client.responses.create(model="glm-5", input="weather", tools=[tool])),
    ]
    with client.responses.stream(model="glm-5", input="hello") as stream:
        answers.append(responses_summary(stream.get_final_response()))
    return answers


def messages_summary(message) -> dict:
    blocks = []
    for block in message.content:
        if block.type == "text":
            blocks.append(("text", block.text))
        elif block.type == "thinking":
            blocks.append(("thinking", block.thinking))
        elif block.type == "tool_use":
            blocks.append(("tool_use", block.id, block.name, block.input))
    usage = message.usage
    return {"blocks": blocks, "stop": message.stop_reason, "usage": (usage.input_tokens, usage.output_tokens)}


def messages_conversation(server: RunningServer) -> list:
    import anthropic

    client = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)
    tool = {"name": "get_weather", "input_schema": WEATHER_TOOL["function"]["parameters"]}

    def ask(text: str, **kwargs):
        return client.messages.create(
            model="glm-5", max_tokens=500, messages=[{"role": "user", "content": text}], **kwargs
        )

    answers = [
        messages_summary(ask("hello")),
        messages_summary(ask("think", thinking={"type": "enabled", "budget_tokens": 1024})),
        messages_summary(ask("weather", tools=[tool])),
    ]
    with client.messages.stream(model="glm-5", max_tokens=500, messages=[{"role": "user", "content": "hello"}]) as s:
        answers.append(messages_summary(s.get_final_message()))
    try:
        ask("busy")
    except anthropic.RateLimitError as error:
        answers.append((error.status_code, error.body["error"]["message"]))
    return answers


@pytest.mark.parametrize(
    "conversation_of", [responses_conversation, messages_conversation], ids=["responses", "messages"]
)
def test_record_then_replay_offline_responses_and_messages(upstream, tmp_path, conversation_of):
    out = tmp_path / "recorded.yaml"
    recorder = start_recorder("--upstream", upstream.url, "--out", str(out))
    try:
        recorded = conversation_of(recorder)
    finally:
        stop_server(recorder)
    assert recorded == conversation_of(upstream)
    assert KEY not in out.read_text()
    replay = start_recorder("--mode", "replay", "--out", str(out))
    try:
        assert conversation_of(replay) == recorded
    finally:
        stop_server(replay)


def test_the_upstream_key_comes_from_the_environment_and_is_never_written(upstream, tmp_path):
    out = tmp_path / "keyed.yaml"
    command = [sys.executable, "-m", "emulator", "record", "--port", "0", "--log-level", "warning"]
    command += ["--upstream", upstream.url, "--out", str(out), "--upstream-key-env", "UPSTREAM_KEY"]
    env = {**os.environ, "UPSTREAM_KEY": "sk-upstream-key-abcdef9876"}
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    recorder = RunningServer(process, process.stdout.readline().rsplit(" ", 1)[-1].strip())
    try:
        client = openai.OpenAI(api_key="sk-dummy", base_url=recorder.base_url, max_retries=0)
        client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "hello"}])
    finally:
        stop_server(recorder)
    assert journal(upstream)[-1]["headers"]["authorization"] == "Bearer sk-…9876"
    assert "abcdef9876" not in out.read_text() and "sk-dummy" not in out.read_text()
