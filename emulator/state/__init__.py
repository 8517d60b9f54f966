"""Where the server's state lives.

In memory (the default, one process): the Runtime's own objects — the engine's sequence counters and tests'
scenarios, the journal, the fault book, the protocols' stores, the rate limiter — exactly as they always were,
and `Runtime.shared` is None, so the request path pays nothing for this room.

In Redis (`serve --state redis://…`, and `serve --workers N`): the same objects stay as each worker's copy,
and `RedisState` (emulator/state/redis_state.py) shares what must be one for all workers and replicas:
sequence counters (emulator/state/counters.py), queued failures, the journal, scenarios and faults loaded
through the control API, stored conversations (emulator/protocols/shared_turns.py), rate-limit buckets
(emulator/state/limits.py). docs/scaling.md says what consistency each gets.
"""
