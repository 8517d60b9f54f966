"""emulator/json_steps.py decodes what json.loads decodes, the same way, and fails where it fails."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import json_steps

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=40,
)


def decoded(text: str):
    return asyncio.run(json_steps.loads(text))


@settings(max_examples=200, deadline=None)
@given(VALUES, st.sampled_from([None, 0, 2]))
def test_the_same_values_as_json_loads(value, indent):
    text = json.dumps(value, indent=indent)
    assert decoded(text) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    ['{"a" 1}', "[1,2", '{"a":1,}', "[1,]", "{", "", " ", "[1] x", '{"a":1}}', "{1:2}", '{"a": "\\x"}', "[tru]"],
)
def test_the_same_errors_as_json_loads(text):
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        decoded(text)
    assert (got.value.msg, got.value.pos) == (expected.value.msg, expected.value.pos)


def test_duplicate_keys_nan_and_deep_nesting_as_json_loads():
    assert decoded('{"a": 1, "a": 2, "n": [NaN, Infinity]}')["a"] == 2
    with pytest.raises(RecursionError):
        decoded("[" * 5000 + "]" * 5000)


def test_a_dense_body_lets_the_loop_run_while_it_is_decoded():
    text = "[" + ",".join(["{}"] * 300_000) + "]"
    assert json_steps.dense(text.encode())

    async def ticks_while_decoding() -> int:
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        value = await json_steps.loads(text)
        ticker.cancel()
        assert len(value) == 300_000
        return ticks

    assert asyncio.run(ticks_while_decoding()) > 10
