"""The request-log tests' scenario: one hit, one miss, one fault, one stream; a module-scoped file of it."""

from __future__ import annotations

from pathlib import Path

import pytest

SCENARIO = """\
rules:
  - name: greet
    when: {last_user: hello}
    reply: {content: "Hello there, friend."}
  - name: weather
    when: {last_user: {contains: weather}, model: glm-5}
    reply: {content: Sunny.}
  - name: busy
    when: {last_user: busy}
    fault: {error: 429}
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("log") / "demo.yaml"
    path.write_text(SCENARIO)
    return path

