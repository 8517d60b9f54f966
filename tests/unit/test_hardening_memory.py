"""What the server keeps per test id, per fault header or per request stays bounded however long it runs."""

from __future__ import annotations

import tracemalloc
from types import SimpleNamespace

from emulator.faults.book import MAX_SLOTS, FaultBook
from emulator.faults.rules import Who, parse_fault_json
from emulator.ratelimit import MAX_BUCKETS, Limiter, RateLimits, openai_limit_headers


def who(test_id: str = "") -> Who:
    return Who("glm-5", "glm-5", "sk-k", test_id, True)


def test_fault_counters_stay_bounded_with_endless_test_ids_and_header_texts():
    book = FaultBook(seed=1)
    background, problems = parse_fault_json({"error": 503, "probability": 0.01}, fault_id="bg")
    assert background is not None, problems
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(3 * MAX_SLOTS):
            book.pick([background], who(f"load-test-{i}"))  # a client that sends a new test id every time
            book.pick([book.from_header({"x-emulator-fault": f"stall={i}"})], who())  # or a new fault header
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(book._counts) <= MAX_SLOTS and len(book._rngs) <= MAX_SLOTS
    assert held < 20_000_000, held  # one random.Random per slot, ~3 KB: these 24,576 slots held ~75 MB unbounded


def test_a_slot_in_use_keeps_its_count_and_draws_while_others_come_and_go():
    every_third, _ = parse_fault_json({"error": 500, "every": 3}, fault_id="third")
    coin, _ = parse_fault_json({"error": 500, "probability": 0.5}, fault_id="coin")
    assert every_third is not None and coin is not None
    churned, quiet = FaultBook(seed=3), FaultBook(seed=3)
    fired_churned, fired_quiet = [], []
    for i in range(30):
        fired_churned.append((churned.pick([every_third], who("kept")), churned.pick([coin], who("kept"))))
        fired_quiet.append((quiet.pick([every_third], who("kept")), quiet.pick([coin], who("kept"))))
        for j in range(MAX_SLOTS // 10):  # other test ids come and go in between
            churned.pick([coin], who(f"other-{i}-{j}"))
    assert fired_churned == fired_quiet
    assert [a is not None for a, _ in fired_quiet] == [(i + 1) % 3 == 0 for i in range(30)]


def test_rate_limit_buckets_stay_bounded_with_endless_api_keys():
    now = [0.0]
    limiter = Limiter(RateLimits(requests=10, tokens=1000, window_s=1.0), clock=lambda: now[0])
    for round_ in range(4):  # a fuzzer or a load test with a new key per request, four seconds in a row
        for i in range(MAX_BUCKETS):
            limiter.admit(SimpleNamespace(api_key=f"sk-{round_}-{i}", model="glm-5"), 10, openai_limit_headers)
        now[0] += 2.0  # every bucket refills: a full bucket is the same as a new one
    assert len(limiter._requests) <= 2 * MAX_BUCKETS and len(limiter._tokens) <= 2 * MAX_BUCKETS
    again = limiter.admit(SimpleNamespace(api_key="sk-0-0", model="glm-5"), 10, openai_limit_headers)  # forgotten: starts full
    assert again.refusal is None and again.headers["x-ratelimit-remaining-requests"] == "9"


def test_a_bucket_in_use_is_not_forgotten():
    now = [0.0]
    limiter = Limiter(RateLimits(requests=2, window_s=60.0), clock=lambda: now[0])
    busy = SimpleNamespace(api_key="sk-busy", model="glm-5")
    limiter.admit(busy, 0, openai_limit_headers)
    limiter.admit(busy, 0, openai_limit_headers)
    for i in range(2 * MAX_BUCKETS):
        limiter.admit(SimpleNamespace(api_key=f"sk-{i}", model="glm-5"), 0, openai_limit_headers)
    assert limiter.admit(busy, 0, openai_limit_headers).refusal is not None  # still spent: its bucket was kept
