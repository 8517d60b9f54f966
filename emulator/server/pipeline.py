"""The one pipeline every protocol's create endpoint runs: auth → body → parse (and the x-emulator-* headers) →
rate limits → faults → scenario engine → shape → JSON or SSE, delivered on the request's timing plan.

What a fault does is asked of its kind (emulator/faults/kinds.py); what differs by protocol is asked of the
adapter (emulator/protocols/base.py). The journal entry, when there is one, is handed in by the front.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator import json_steps
from emulator.errors import ApiError
from emulator.exchange import Exchange, Failure, Reply
from emulator.faults.behaviour import Ask
from emulator.faults.kinds import Hangup
from emulator.faults.rules import FaultRule, Who
from emulator.http import json_response, json_text_response, read_json
from emulator.journal import Entry, elapsed_ms
from emulator.names import TEST_ID_HEADER
from emulator.protocols.base import Adapter
from emulator.protocols.shared_turns import Record, kept_turns
from emulator.ratelimit import Admission, Limiter, retry_headers
from emulator.scenarios.actions import Decision
from emulator.scenarios.regexes import MoveOffLoop, matching
from emulator.server.delivery import Delivery
from emulator.server.runtime import Runtime
from emulator.server.transport import refusal_of
from emulator.shaping import Shaped, shape
from emulator.sse import SSE_HEADERS, Part, encode
from emulator.state import faults as shared_faults
from emulator.state import limits as shared_limits
from emulator.state.conversations import fetch_continued, share
from emulator.state.counters import CountNeeded, Slot, given_counts
from emulator.state.redis_state import RedisState, Stale, StateUnavailable
from emulator.timing import NO_TIMING, Plan, TimingSpec, seed_material, timing_from_headers
from emulator.tokens import count_messages

log = logging.getLogger("tokenhub_emulator")
SYNC_TRIES = 3  # a request retried after its worker caught up with the shared state, at most
SHUTTING_DOWN = "The server is shutting down; retry the request."
ON_LOOP_S = 0.005  # how long matching may hold the event loop before it moves to a worker thread
OFF_LOOP_BYTES = 256 * 1024  # a request body this large is read and matched in a worker thread


def note_asked(entry: Entry, body: Any) -> None:
    """The model and stream flag a request's body names, for a journal entry that never got an Exchange."""
    if isinstance(body, dict):
        model, stream = body.get("model"), body.get("stream")
        entry.model = model if isinstance(model, str) else None
        entry.stream = stream is True


def error_response(runtime: Runtime, adapter: Adapter, failure: Failure, entry: Entry | None = None) -> Response:
    body = adapter.error_body(failure, runtime.context, entry.request_id if entry is not None else None)
    if entry is not None:
        entry.error = dict(body)
        entry.rule = entry.rule or failure.rule
    return json_response(body, failure.status, adapter.error_headers(failure))


async def answer(runtime: Runtime, adapter: Adapter, request: Request, entry: Entry | None) -> ASGIApp:
    """The request → a Response, or a Delivery on the timing plan."""
    context = runtime.context
    size = 0
    body: Any = None

    def keep(raw: bytes | bytearray, value: Any, is_json: bool) -> None:
        nonlocal size
        size = len(raw)
        if entry is not None:
            runtime.journal.keep_body(entry, raw, value, is_json)

    try:
        key = adapter.authenticate(request, context)
        body = await read_json(request, runtime.settings.max_body_bytes, keep)
        if runtime.shared is not None:  # the turns of a chain kept on another replica, read before parsing
            await fetch_continued(runtime.shared, adapter, body, request.headers.get(TEST_ID_HEADER, ""))
        large = size > OFF_LOOP_BYTES or adapter.long_read(body)
        if large:  # read, matched and shaped in a worker thread: the Python part of the work stalls no one
            exchange, options = await asyncio.to_thread(adapter.parse, body, request, key, context)
        else:
            exchange, options = adapter.parse(body, request, key, context)
        asked_timing = timing_from_headers(exchange.headers)
        asked_fault = runtime.faults.from_header(exchange.headers)
    except ApiError as exc:
        if entry is not None:
            entry.action = "rejected"
            note_asked(entry, body)
        if size > OFF_LOOP_BYTES and isinstance(body, dict | list):  # millions of objects, maybe: freed in slices
            json_steps.free_in_slices(body)
        return error_response(runtime, adapter, exc.failure, entry)
    except ClientDisconnect:  # the client left while sending its body (or stopped sending it): nothing to answer
        refusal = refusal_of(request.scope)
        if entry is not None:
            entry.action, entry.disconnected = "rejected", refusal is None
            if refusal is not None:
                entry.error = {"message": refusal[1]}
        return Response(status_code=refusal[0] if refusal is not None else 499)
    except StateUnavailable as unavailable:
        return unavailable_response(runtime, adapter, unavailable, entry)
    if entry is not None:
        entry.model, entry.stream = exchange.model, exchange.stream
    call = Call(runtime, adapter, exchange, options, entry, asked_timing, asked_fault, large=large)
    if runtime.shared is not None:
        try:
            return await _with_shared_state(runtime.shared, adapter, call)
        except StateUnavailable as unavailable:
            return unavailable_response(runtime, adapter, unavailable, entry)
    return await _admitted(runtime, adapter, call)


def unavailable_response(
    runtime: Runtime, adapter: Adapter, unavailable: StateUnavailable, entry: Entry | None
) -> Response:
    """Redis went away: a 503 in the protocol's envelope, which the clients retry, until it is back."""
    log.warning("%s", unavailable)
    if entry is not None:
        entry.action = "rejected"
    failure = Failure(status=503, message=f"{unavailable}. Retry the request.", code="shared_state_unavailable")
    return error_response(runtime, adapter, failure, entry)


async def _with_shared_state(shared: RedisState, adapter: Adapter, call: Call) -> ASGIApp:
    """The answer when state is shared: again from the rate limits on, should this worker turn out to be behind
    the shared scenarios and faults; the conversation turns it stored written before the reply goes out."""
    turns: list[Record] = []
    kept = kept_turns.set(turns)
    try:
        for _ in range(SYNC_TRIES):
            try:
                response = await _admitted(call.runtime, adapter, call)
            except Stale:  # scenarios or faults changed on another worker: this one catches up, then again
                turns.clear()
                call.limits = None
                await shared.sync(call.runtime)
                continue
            await share(shared, turns)  # the next turn of the chain may go to another replica
            return response
    finally:
        kept_turns.reset(kept)
    raise StateUnavailable("The emulator's shared state kept changing while this request was answered")


async def _admitted(runtime: Runtime, adapter: Adapter, call: Call) -> ASGIApp:
    """The rate limits' word, then the answer."""
    limiter = runtime.limiter()
    if limiter is None:
        return await call.answer()
    exchange, entry = call.exchange, call.entry
    prompt = count_messages(exchange.messages, exchange.tools) if limiter.limits.tokens else 0
    shared = runtime.shared
    if shared is None:
        admission = limiter.admit(exchange, prompt, adapter.limit_headers)
    else:
        admission = await shared_limits.admit(shared, limiter, exchange, prompt, adapter.limit_headers)
    if admission.refusal is not None:
        call.note("rate_limited", f"rate limit ({admission.reason})")
        return error_response(runtime, adapter, admission.refusal, entry)
    call.limits = (limiter, admission)

    def release() -> None:
        if shared is None:
            limiter.release(admission)
        else:
            shared_limits.release(shared, limiter, admission)

    try:
        response = await call.answer()
    except BaseException:
        release()
        raise
    return Finally(response, release)


@dataclass(slots=True)
class Call:
    """One parsed request on its way to an answer: faults first, then the engine, then the timing plan."""

    runtime: Runtime
    adapter: Adapter
    exchange: Exchange
    options: Any
    entry: Entry | None
    asked_timing: TimingSpec | None
    asked_fault: FaultRule | None
    large: bool = False  # a body this large is matched in a worker thread from the start
    limits: tuple[Limiter, Admission] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return self.limits[1].headers if self.limits else {}

    def note(self, action: str, fault: str | None = None) -> None:
        if self.entry is not None:
            self.entry.action = action
            if fault is not None:
                self.entry.fault = fault
                self.runtime.faults.record(self.entry.id, fault)

    def injected(self, rule: FaultRule, label: str | None = None) -> None:
        """A fault is applied to this request: journaled (as `label`, by default the fault's), counted by kind."""
        self.note("fault", label or rule.fault.label)
        metrics = self.runtime.metrics
        if metrics is not None:
            metrics.fault(rule.fault.kind)

    async def answer(self) -> ASGIApp:
        runtime, exchange, entry = self.runtime, self.exchange, self.entry
        settings = runtime.engine.settings_for(exchange)  # the test's own scenarios' over the shared ones
        guard = settings.loop_guard or runtime.settings.loop_guard
        if guard is not None:
            stop = runtime.loops.check(guard, exchange, entry)
            if stop is not None:  # a runaway agent: the configured error instead of another turn
                self.note("loop_stopped")
                return error_response(runtime, self.adapter, stop, entry)
        faults, background = runtime.faults, settings.faults
        fault = who = None
        if self.asked_fault is not None or faults.runtime or background:  # else there is nothing to count or draw
            who = Who.of(exchange)
            if runtime.shared is None:
                fault = faults.before_reply(self.asked_fault, who, background)
            else:
                candidates = [self.asked_fault, *faults.runtime.values(), *background]
                fault = await shared_faults.pick(runtime.shared, faults, candidates, who)
            if fault is not None and not fault.fault.spec.needs_reply:
                if runtime.shared is not None:  # the faults this worker holds are still the shared ones
                    await runtime.shared.current(runtime)
                return self.fault_response(fault, settings.timing)
        budget = runtime.settings.match_budget_ms / 1000
        if runtime.shared is None:
            decision, shaped = await self.decide(budget)
        else:
            decision, shaped = await self.decide_shared(runtime.shared, budget)
        outcome = decision.outcome
        if entry is not None:
            entry.rule = outcome.rule
            entry.action = "fail" if isinstance(outcome, Failure) else ("reply" if outcome.rule else "generated")
            if decision.misses:
                entry.misses = [asdict(miss) for miss in decision.misses]
        if fault is None and decision.fault is not None:
            who = who or Who.of(exchange)
            if runtime.shared is None:
                fault = faults.pick([decision.fault], who)
            else:
                fault = await shared_faults.pick(runtime.shared, faults, [decision.fault], who)
            if fault is not None and not fault.fault.spec.needs_reply:
                return self.fault_response(fault, decision.timing)
        timing = (self.asked_timing or NO_TIMING).over(decision.timing).over(runtime.settings.timing)
        if isinstance(outcome, Failure):  # a fault that breaks replies leaves an error be; a wait still applies
            waiting = fault if fault and fault.fault.spec.delays_errors else None
            return self.failure_response(outcome, waiting, timing.time_scale)
        if fault is not None:
            label = fault.fault.label
            misbehaved = fault.fault.spec.misbehave(fault.fault, outcome, self.ask(fault))
            if misbehaved is not None:  # the model misbehaves: another reply, shaped anew
                outcome, shaped = misbehaved.reply, None
                label = fault.fault.kind + (f" {misbehaved.way}" if misbehaved.way else "")
                label += "" if misbehaved.applied else " (nothing to break)"
                if entry is not None:
                    runtime.faults.record_behaviour(entry.id, misbehaved.detail(fault.fault.kind))
            self.injected(fault, label)
        plan = timing.plan(lambda: seed_material(runtime.settings.seed, Who.of(exchange).test_id, exchange.body))
        if shaped is None:
            shaped = shape(outcome, exchange)
        metrics = runtime.metrics
        if metrics is not None:
            usage = shaped.usage
            metrics.served_tokens(exchange.protocol, exchange.model, usage.prompt_tokens, usage.completion_tokens)
        if plan.chunk is not None:
            shaped.chunker = plan.chunk.split
        headers = self.headers
        if self.limits is not None:
            limiter, admission = self.limits
            completion = shaped.usage.completion_tokens
            if runtime.shared is None:
                headers = limiter.charge(admission, completion, self.adapter.limit_headers)
            elif limiter.limits.tokens:
                headers = await shared_limits.charge(
                    runtime.shared, limiter, admission, completion, self.adapter.limit_headers
                )
        if exchange.stream:
            return self.stream_response(shaped, plan, headers, fault)
        return self.json_response(shaped, plan, headers, fault)

    async def decide(self, budget: float) -> tuple[Decision, Shaped | None]:
        """The engine's decision: on the loop, or in a worker thread for long texts and slow matching."""
        try:
            if self.large:
                raise MoveOffLoop
            engine = self.runtime.engine
            if engine.matches_with_regex:
                with matching(budget, ON_LOOP_S):
                    return engine.decide(self.exchange), None
            return engine.decide(self.exchange), None  # without a regex, matching a short request is short
        except MoveOffLoop:  # long texts, or slow matching: the whole of it again, where it stalls no one
            return await asyncio.to_thread(self.decide_within, budget)

    async def decide_shared(self, shared: RedisState, budget: float) -> tuple[Decision, Shaped | None]:
        """The decision with the shared state: one round trip (emulator/state/redis_state.py) for a queued
        failure, the sequence count a matching rule needs, the journal entry. Raises Stale."""
        counts: dict[Slot, int] = {}
        given = given_counts.set(counts)
        try:
            try:
                decided, need = await self.decide(budget), None
            except CountNeeded as needed:
                decided, need = None, needed
            scope = self.exchange.headers.get(TEST_ID_HEADER, "")
            begun = await shared.begin(scope, need.slot[1] if need else None, self.entry)
            if begun.failure is not None:
                return Decision(begun.failure), None
            while need is not None:
                counts[need.slot] = (
                    begun.count if not counts and begun.count is not None else await shared.count(*need.slot)
                )
                try:
                    decided, need = await self.decide(budget), None
                except CountNeeded as needed:
                    need = needed
            assert decided is not None
            return decided
        finally:
            given_counts.reset(given)

    def ask(self, rule: FaultRule) -> Ask:
        """What a behaviour fault is given: the request, and a random source seeded by the server seed, the
        fault, the test id and the body less its stream options (the same request is broken the same way,
        streamed or not)."""
        exchange, generator = self.exchange, self.runtime.engine.generator
        body = {k: v for k, v in exchange.body.items() if k not in ("stream", "stream_options")}
        keys = (rule.id, seed_material(0, exchange.headers.get(TEST_ID_HEADER, ""), body))
        return Ask(
            exchange,
            generator.rng("misbehave", *keys),
            generator,
            protocol_objects_only=self.adapter.tool_input_is_object,
            keys=keys,
        )

    def decide_within(self, budget: float) -> tuple[Decision, Shaped | None]:
        """The engine's decision in a worker thread, with the whole matching budget; a reply shaped there too
        (its token counts are the other long part)."""
        with matching(budget):
            decision = self.runtime.engine.decide(self.exchange)
        outcome = decision.outcome
        return decision, shape(outcome, self.exchange) if isinstance(outcome, Reply) else None

    def stream_response(self, shaped: Shaped, plan: Plan, headers: dict[str, str], fault: FaultRule | None) -> ASGIApp:
        adapter, context = self.adapter, self.runtime.context
        events = adapter.events(shaped, self.exchange, self.options)
        if fault is not None and fault.fault.spec.applies == "stream":
            parts, ending = fault.fault.spec.broken(
                fault.fault,
                plan.schedule(events),
                lambda failure: adapter.error_event(failure, context),
                adapter.overload_status,
            )
        elif plan.instant:  # every event at once: no schedule to work out
            parts, ending = ((encode(event), 0.0) for event in events), "complete"
        else:
            parts, ending = ((encode(event), at) for event, at in plan.schedule(events)), "complete"
        metrics, on_done, on_chunk = self.runtime.metrics, self.on_stream_done, None
        if metrics is not None:
            protocol = self.exchange.protocol
            on_chunk = metrics.stream_opened(protocol).add

            def on_done(client_left: bool) -> None:
                metrics.stream_closed(protocol)
                self.on_stream_done(client_left)

        delay = _delay_s(fault)
        if fault is not None or not plan.instant:  # waits to plan: carried out on the time scale, journaled
            parts, delay = self.carried_out(parts, delay, plan.scale), delay * plan.scale
        return Delivery(
            200,
            {**SSE_HEADERS, **headers},
            parts,
            delay=delay,
            ending=ending,
            chunked=True,
            on_done=on_done,
            on_write=self.on_stream_write,
            on_chunk=on_chunk,
        )

    def json_response(self, shaped: Shaped, plan: Plan, headers: dict[str, str], fault: FaultRule | None) -> ASGIApp:
        response = json_text_response(self.adapter.render_json(shaped, self.exchange, self.options), headers=headers)
        delay = _delay_s(fault)
        cut = fault.fault.spec.cut_at(fault.fault, len(response.body)) if fault is not None else None
        if cut is None:
            delay += plan.latency_ms / 1000
        delay = self.scaled_wait(delay, plan.scale)
        if cut is not None:
            return Delivery.of(response, delay=delay, cut=cut, on_done=self.on_stream_done)
        return Delivery.of(response, delay=delay, on_done=self.on_stream_done) if delay > 0 else response

    def carried_out(self, parts: Iterator[Part], delay_s: float, scale: float) -> Iterator[Part]:
        """The parts at their planned offsets times the time scale; the planned times (from the request, as the
        journal's chunk_times_ms count) noted in the journal entry as each part is taken."""
        entry = self.entry
        if entry is not None and scale != 1.0:
            entry.time_scale = scale
        planned = entry.planned_ms if entry is not None else None
        for part, at in parts:
            if planned is not None:
                planned.append(round((delay_s + at) * 1000, 3))
            yield part, at * scale

    def scaled_wait(self, delay_s: float, scale: float | None) -> float:
        """A wait before a whole reply, on the time scale; the planned wait noted in the journal entry."""
        if delay_s <= 0:
            return delay_s
        if self.entry is not None:
            self.entry.planned_ms.append(round(delay_s * 1000, 3))
            if scale is not None and scale != 1.0:
                self.entry.time_scale = scale
        return delay_s * (1.0 if scale is None else scale)

    def on_stream_write(self) -> None:
        """A chunk the pump wrote past the middleware: the journal times it as its middleware would."""
        entry = self.entry
        if entry is not None:
            now = elapsed_ms(entry)
            if entry.first_byte_ms is None:
                entry.first_byte_ms = now
            entry.chunk_times_ms.append(now)

    def on_stream_done(self, client_left: bool) -> None:
        if client_left and self.entry is not None:
            self.entry.disconnected = True

    def failure_response(self, failure: Failure, waiting: FaultRule | None, scale: float | None = None) -> ASGIApp:
        runtime, entry = self.runtime, self.entry
        if waiting is not None:
            self.injected(waiting)
        if self.headers:
            failure = replace(failure, headers={**self.headers, **failure.headers})
        response = error_response(runtime, self.adapter, failure, entry)
        delay = self.scaled_wait(_delay_s(waiting), scale)
        return Delivery.of(response, delay=delay, on_done=self.on_stream_done) if delay > 0 else response

    def fault_response(self, rule: FaultRule, timing: TimingSpec | None) -> ASGIApp:
        """A fault that replaces the answer: an HTTP error, or a connection that breaks instead. `timing`: the
        scenario's (or the rule's), under the request's own and over the flags'."""
        self.injected(rule)
        replacement = rule.fault.spec.replacement(rule.fault, self.headers, self.adapter.limit_headers)
        if isinstance(replacement, Failure):
            spec = (self.asked_timing or NO_TIMING).over(timing).over(self.runtime.settings.timing)
            if spec.retry_after_scale != 1.0 and "retry-after-ms" in replacement.headers:  # asked to scale it
                seconds = float(replacement.headers["retry-after-ms"]) / 1000 * spec.retry_after_scale
                replacement = replace(replacement, headers={**replacement.headers, **retry_headers(seconds)})
            return error_response(self.runtime, self.adapter, replacement, self.entry)
        return self.hangup(replacement)

    def hangup(self, hangup: Hangup) -> Delivery:
        """No status line: silence for `wait_s` (if the server stops meanwhile, a 503 in the protocol's envelope
        instead), then the connection closed or reset."""
        stopping = None
        if hangup.wait_s:
            stopping = error_response(self.runtime, self.adapter, Failure(status=503, message=SHUTTING_DOWN))
        return Delivery(
            0,
            {},
            (),
            delay=hangup.wait_s,
            send_headers=False,
            ending=hangup.ending,
            on_done=self.on_stream_done,
            drained=stopping,
        )


def _delay_s(fault: FaultRule | None) -> float:
    """The wait before the headers the fault asks for (a `latency`)."""
    return fault.fault.spec.delay_s(fault.fault) if fault is not None else 0.0


class Finally:
    """A response that runs `callback` once it has been sent (or abandoned)."""

    def __init__(self, response: ASGIApp, callback: Callable[[], None]) -> None:
        self.response = response
        self.callback = callback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            self.callback()
