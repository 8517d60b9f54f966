"""Valid chat and Responses bodies and the hypothesis strategies that break them field by field, for the fuzz tests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

VALID_CHAT: dict[str, Any] = {
    "model": "glm-5",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Calculate 1+1"}],
    "temperature": 0.5,
    "max_tokens": 50,
    "stream": False,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": "auto",
}


VALID_RESPONSES: dict[str, Any] = {
    "model": "glm-5",
    "instructions": "Be brief.",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "Calculate 1+1"}]}],
    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
    "max_output_tokens": 50,
    "text": {"format": {"type": "text"}},
    "reasoning": {"effort": "low"},
}


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300)
)


json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)


def field_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += field_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += field_paths(item, (*prefix, index))
    return paths


def replaced(document: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(document))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copy

