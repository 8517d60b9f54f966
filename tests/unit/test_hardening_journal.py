"""The journal keeps no secret and stays within its bounds, in bytes as well as entries (issue 11).

Short forms; bench/hostile.py runs the large versions against a real server and measures its memory.
"""

from __future__ import annotations

import json

from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.journal import Journal, bounded_copy
from emulator.server.app import build_app

KEY = "sk-live-0123456789abcdefXYZW"
CHAT = {"model": "glm-5", "messages": [{"role": "user", "content": "hi"}]}


def client(**settings) -> TestClient:
    return TestClient(build_app(Settings(**settings)), base_url="http://127.0.0.1", raise_server_exceptions=False)


def everything_kept(entry) -> str:
    """Every string the journal holds for an entry, as it holds them (not as the API shows them)."""
    return json.dumps({k: v for k, v in vars(entry).items() if k != "started"}, default=repr)


def test_secrets_are_masked_when_stored_not_when_read():
    with client() as http:
        headers = {
            "authorization": f"Bearer {KEY}",
            "x-api-key": "first-word second-secret-part",
            "cookie": "session=cookie-secret-1; theme=cookie-secret-2",
            "x-emulator-control-token": "control-token-secret",
            "api-key": "short9key",
        }
        assert http.post("/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
        entry = http.app.state.runtime.journal.entries()[-1]
        kept = everything_kept(entry)
        for secret in ("0123456789abcdef", "first-word", "second-secret", "cookie-secret", "control-token-secret"):
            assert secret not in kept, secret
        assert "short9" not in kept and "9key" not in kept  # a short key shows nothing of itself
        shown = http.get("/_emulator/journal").json()["data"][-1]["headers"]
        assert shown["authorization"] == "Bearer sk-…XYZW"  # a long key: enough to recognise it
        assert shown["cookie"] == "session=****; theme=****"  # each cookie's name, none of their values
        assert shown["x-api-key"] == "fir…part"  # one key, spaces and all: not a scheme and a credential
        assert shown["x-emulator-control-token"] == "con…cret" and shown["api-key"] == "****"


def test_a_large_body_is_journaled_in_part_with_markers():
    with client(journal_body_bytes=1024) as http:
        body = {**CHAT, "messages": [{"role": "user", "content": "x" * 100_000}], "metadata": {"k": "v"}}
        raw = json.dumps(body).encode()
        headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        assert http.post("/v1/chat/completions", content=raw, headers=headers).is_success
        entry = http.get("/_emulator/journal").json()["data"][-1]
        assert entry["body_bytes"] == len(raw)
        content = entry["body"]["messages"][0]["content"]
        assert content.startswith("x" * 100) and content.endswith("more characters]") and len(content) < 1100
        assert entry["body"]["model"] == "glm-5"  # what fits is kept as it came


def test_many_small_values_are_cut_by_count_too():
    kept = bounded_copy({"messages": [{}] * 3_000_000}, 4096)
    assert len(kept["messages"]) < 4096 and kept["messages"][-1].endswith("more items]")
    assert len(json.dumps(kept)) < 3 * 4096


def test_a_body_within_the_bound_is_kept_as_it_came_and_read_as_json():
    with client() as http:
        http.post("/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {KEY}"})
        headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        http.post("/v1/chat/completions", content=b'{"model": ', headers=headers)
        entries = http.app.state.runtime.journal.entries()
        assert isinstance(entries[-2]._body, bytes) and entries[-2].body == CHAT
        assert entries[-1].body == '{"model": '  # not JSON: its text, as it was rejected for it


def test_long_header_values_are_cut_with_a_marker():
    with client(journal_header_bytes=100) as http:
        headers = {"authorization": f"Bearer {KEY}", "x-long": "y" * 10_000}
        http.post("/v1/chat/completions", json=CHAT, headers=headers)
        shown = http.get("/_emulator/journal").json()["data"][-1]["headers"]["x-long"]
        assert shown == "y" * 100 + "…[9900 more characters]"


def test_the_journal_stays_within_its_byte_budget_and_drops_the_oldest():
    budget = 200_000
    with client(journal_bytes=budget, journal_body_bytes=20_000) as http:
        body = {**CHAT, "messages": [{"role": "user", "content": "z" * 50_000}]}
        for _ in range(40):
            http.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})
        journal = http.app.state.runtime.journal
        kept = journal.entries()
        assert journal.bytes <= budget and 2 < len(kept) < 40
        assert kept[-1].id == 40 and all(e.size for e in kept)


def test_rejected_requests_are_bounded_too():
    with client(journal_bytes=100_000, journal_body_bytes=1000) as http:
        junk = b"[" + b"{}," * 200_000 + b"{}]"
        for _ in range(5):
            response = http.post(
                "/v1/chat/completions",
                content=junk,
                headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
            )
            assert response.status_code == 400
        assert http.app.state.runtime.journal.bytes <= 100_000


def test_entries_and_clearing_keep_the_count_right():
    journal = Journal(3, max_bytes=10**9)
    for _ in range(5):
        journal.open("POST", "/v1/chat/completions", {}, "chat")
    assert [e.id for e in journal.entries()] == [3, 4, 5]
    journal.clear()
    assert journal.bytes == 0 and journal.entries() == []


def test_three_million_bad_items_fail_at_the_first_not_after_all():
    """A 9 MB body of `{}` items: validation stops at the first bad one (it made three million errors: 20 s, 4 GB)."""
    with client() as http:
        for path, field in (
            ("/v1/chat/completions", "messages"),
            ("/v1/responses", "input"),
            ("/v1/messages", "messages"),
        ):
            raw = (
                b'{"model": "glm-5", "max_tokens": 5, "%s": [' % field.encode() + b",".join([b"{}"] * 3_000_000) + b"]}"
            )
            headers = {"authorization": f"Bearer {KEY}", "x-api-key": KEY, "content-type": "application/json"}
            answer = http.post(path, content=raw, headers=headers)
            assert answer.status_code == 400
            assert f"{field}.0" in answer.text or f"{field}[0]" in answer.text, answer.text  # the first bad item
            entry = http.get("/_emulator/journal", params={"limit": 1}).json()["data"][-1]
            # all three million errors took 20 s and 4 GB; the first alone takes ~1 s here, several under load
            assert entry["duration_ms"] < 10_000, (path, entry["duration_ms"])
