"""An Exchange built from user turns, as the engine sees a request: for the engine and index tests."""

from __future__ import annotations

from typing import Any

from emulator.exchange import Exchange, Message, Tool


def ask(*texts: str, tools: tuple[Tool, ...] = (), headers: dict[str, str] | None = None, **fields: Any) -> Exchange:
    messages = []
    for index, text in enumerate(texts):
        if index:
            messages.append(Message("assistant", "ok"))
        messages.append(Message("user", text))
    return Exchange(
        protocol="chat", model="glm-5", messages=messages, tools=list(tools), headers=headers or {}, **fields
    )

