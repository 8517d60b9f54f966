"""Stored responses: GET, DELETE, input_items, chaining, store: false, errors, bounds and per-test reset."""

from __future__ import annotations

from emulator.protocols.responses_store import ResponseStore, StoredResponse


def stored(store: ResponseStore, response_id: str, test_id: str = "", previous: str | None = None) -> StoredResponse:
    body = {"id": response_id, "output": [{"id": f"msg_{response_id}", "type": "message"}]}
    before = store.get(previous) if previous else None
    return store.put(body, ({"id": f"in_{response_id}", "type": "message"},), before, test_id)


def test_store_is_bounded_least_recently_used_first():
    store = ResponseStore(limit=3)
    for n in range(3):
        stored(store, f"r{n}")
    store.get("r0")  # used: r1 is now the oldest
    stored(store, "r3")
    assert len(store) == 3
    assert store.get("r1") is None and store.get("r0") is not None


def test_store_memory_stays_flat():
    store = ResponseStore(limit=100)
    for n in range(10_000):
        stored(store, f"r{n}")
    assert len(store) == 100 and store.get("r9999") is not None and store.get("r0") is None


def test_store_reset_by_test_id():
    store = ResponseStore()
    stored(store, "a", test_id="t1")
    stored(store, "b", test_id="t2")
    store.clear("t1")
    assert store.get("a") is None and store.get("b") is not None
    assert store.find_item("msg_b") == {"id": "msg_b", "type": "message"}
    store.clear()
    assert len(store) == 0
