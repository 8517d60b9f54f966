"""The requests behind the README's log excerpt (the `weather.yaml` example): run against a server's root URL.

python tests/docs/log_requests.py http://127.0.0.1:8000
"""

from __future__ import annotations

import sys

import httpx

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def send(url: str) -> list[str]:
    """A tool call, the same streamed, the flaky rule's first answer, a miss, a wrong URL: their request ids."""
    headers = {"authorization": "Bearer any-key"}

    def chat(content: str, path: str = "/v1/chat/completions", **extra: object) -> str:
        body = {"model": "glm-5", "messages": [{"role": "user", "content": content}], **extra}
        return httpx.post(url + path, headers=headers, json=body, timeout=30).headers["x-request-id"]

    return [
        chat("Weather in Beijing?", tools=[WEATHER_TOOL]),
        chat("Weather in Beijing?", tools=[WEATHER_TOOL], stream=True),
        chat("flaky: please"),
        chat("hello"),
        chat("hello", path="/chat/completions"),
    ]


if __name__ == "__main__":
    print("\n".join(send(sys.argv[1])))
