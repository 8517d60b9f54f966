"""A scenario can name its gateway profile and the API keys it accepts."""

from __future__ import annotations

import pytest

from emulator.scenarios import ScenarioError, parse_scenario


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("settings: {profile: cloudbse}\n", 1, 21, "did you mean 'cloudbase'"),
        ("settings: {api_keys: sk-a}\n", 1, 22, "'api_keys' must be a list"),
        ("settings: {api_keys: ['']}\n", 1, 23, "each of 'api_keys'"),
    ],
)
def test_bad_profile_and_keys_are_positioned(text, line, column, message):
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (line, column) and message in problem.message, problem
