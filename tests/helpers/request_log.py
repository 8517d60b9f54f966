"""The request-log tests' scenario: one hit, one miss, one fault, one stream."""

from __future__ import annotations

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

