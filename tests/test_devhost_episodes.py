"""How the local host runs orchestration episodes: one per batch of ready messages, the history cached
between episodes (and read again when it changed behind the worker), the CPU work off the event loop,
and a rest after a long episode before the instance's next one.

Through the in-process engine (real SQLite task hub, real dispatcher and workers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df
import pytest
from hosttools.engine import Engine

from durableagent.devhost import _history as h
from durableagent.devhost import _orchestrations
from durableagent.devhost._history import EventType, HistoryEvent, RuntimeStatus
from durableagent.devhost._history_cache import CachedHistory, HistoryCache, history_array, played_json

app = df.DFApp()
TIMEOUT = 30.0
MANY = 1500  # more than the 1,000 messages one read used to take
SLOW_EPISODE_SECONDS = 0.2  # longer than the dispatcher's threshold for a rest
# (start, end) on time.monotonic() of each invocation of slow_steps.
SLOW_TIMES: list[tuple[float, float]] = []


@app.activity_trigger(input_name="value")
def plus_one(value: int) -> int:
    return value + 1


@app.orchestration_trigger(context_name="context")
def gather_events(context: df.DurableOrchestrationContext) -> Any:
    count = context.get_input()
    values = yield context.task_all([context.wait_for_external_event(f"e{i}") for i in range(count)])
    return len(values)


@app.orchestration_trigger(context_name="context")
def two_steps(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.wait_for_external_event("Go")
    second = yield context.call_activity("plus_one", 1)
    return [first, second]


@app.orchestration_trigger(context_name="context")
def one_activity(context: df.DurableOrchestrationContext) -> Any:
    return (yield context.call_activity("plus_one", context.get_input()))


@app.orchestration_trigger(context_name="context")
def slow_steps(context: df.DurableOrchestrationContext) -> Any:
    began = time.monotonic()
    time.sleep(SLOW_EPISODE_SECONDS)  # every invocation replays from the top: each episode is slow
    SLOW_TIMES.append((began, time.monotonic()))
    return (yield context.wait_for_external_event("a"))


def scenario(coroutine: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(coroutine)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(coroutine(*args, **kwargs), TIMEOUT))

    return run


def orchestrator_episodes(engine: Engine, name: str) -> int:
    return sum(1 for kind, called, _ in engine.invocations if kind == "orchestration" and called == name)


# The history's wire form ---------------------------------------------------------------------------------


def sample_events() -> list[HistoryEvent]:
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    return [
        h.orchestrator_started(now),
        h.execution_started(
            now,
            instance_id="i",
            execution_id="x",
            name="n",
            version=None,
            input_json=json.dumps('{"IsPlayed":false}'),
            parent=None,
        ),
        HistoryEvent(EventType.TASK_SCHEDULED, now, 0, {"Name": "a", "Version": "", "Input": '["IsPlayed":false]'}),
        h.orchestrator_completed(now),
        h.orchestrator_started(now + timedelta(seconds=1)),
        h.task_completed(now + timedelta(seconds=1), 0, '"IsPlayed":false'),
    ]


def test_cached_history_sends_what_the_events_encode_to() -> None:
    events = sample_events()
    cached = CachedHistory.decode("x", [e.to_json() for e in events[:4]])
    new = [e.to_json() for e in events[4:]]
    sent = json.loads(history_array(cached.played, new))
    assert sent == [e.to_wire(is_played=i < 4) for i, e in enumerate(events)]
    assert cached.started and cached.completed == set() and len(cached) == 4
    cached.extend(events[4:], new)
    assert cached.completed == {0} and len(cached) == 6
    assert played_json(events[5].to_json()).count('"IsPlayed":true') == 1


def test_rows_in_another_key_order_are_sent_as_the_events_encode() -> None:
    event = sample_events()[2]
    wire = event.to_wire()
    reordered = json.dumps({"Name": wire["Name"], **{k: v for k, v in wire.items() if k not in ("Name", "IsPlayed")}})
    cached = CachedHistory.decode("x", [reordered])
    assert json.loads(history_array(cached.played, [])) == [event.to_wire(is_played=True)]


def test_cache_entry_is_dropped_when_the_stored_history_differs() -> None:
    cache = HistoryCache(max_instances=2)
    cache.put("a", CachedHistory.decode("x1", [e.to_json() for e in sample_events()]))
    assert cache.get("a", "x1", 6) is not None
    assert cache.get("a", "x2", 6) is None  # another execution
    assert "a" not in cache
    cache.put("a", CachedHistory.decode("x1", []))
    assert cache.get("a", "x1", 3) is None  # rows the worker did not write
    for key in ("a", "b", "c"):
        cache.put(key, CachedHistory.decode("x", []))
    assert "a" not in cache and "b" in cache and "c" in cache


# Episodes ------------------------------------------------------------------------------------------------


@scenario
async def test_one_episode_takes_every_ready_message() -> None:
    async with Engine(app) as engine:
        # The start and every event are in the inbox before the dispatcher looks (no await in between).
        iid = engine.start("gather_events", MANY)
        for i in range(MANY):
            engine.raise_event(iid, f"e{i}", i)
        record = await engine.wait(iid, timeout=TIMEOUT)
        assert record.status == RuntimeStatus.Completed, record.output
        assert engine.output(iid) == MANY
        assert orchestrator_episodes(engine, "gather_events") == 1
        history = engine.history(iid)
        assert sum(1 for e in history if e.type == EventType.EVENT_RAISED) == MANY
        assert sum(1 for e in history if e.type == EventType.ORCHESTRATOR_STARTED) == 1


@scenario
async def test_history_rewritten_behind_the_worker_is_read_again() -> None:
    async with Engine(app) as engine:
        iid = engine.start("two_steps", instance_id="rewritten")
        await engine.wait_history(iid, lambda events: any(e.type == EventType.EXECUTION_STARTED for e in events))
        await engine.idle()
        old = engine.status(iid)
        # Another writer (as a restart does) replaces the execution while the worker holds its history.
        with engine.store.transaction() as db:
            engine.store.clear_history(db, iid)
            new = dataclasses.replace(old, execution_id="second", status=RuntimeStatus.Pending)
            engine.store.put_instance(db, new)
            engine.store.put_messages(db, [_orchestrations.start_message(new, engine.clock())])
        await engine.wait_history(iid, lambda events: any(e.type == EventType.EXECUTION_STARTED for e in events))
        await engine.idle()
        engine.raise_event(iid, "Go", "ok")
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed, record.output
        assert engine.output(iid) == [json.dumps("ok"), 2]
        history = engine.history(iid)
        started = [e for e in history if e.type == EventType.EXECUTION_STARTED]
        assert [e.get("OrchestrationInstance")["ExecutionId"] for e in started] == ["second"]
        assert [e.event_id for e in history if e.type == EventType.TASK_SCHEDULED] == [0]


@scenario
async def test_replay_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    released = threading.Event()
    blocked = threading.Event()
    waited: list[bool] = []
    original = _orchestrations.ShimReplay.run

    def slow_run(self: Any, history: list[HistoryEvent], new_from: int) -> Any:
        if self._instance.instance_id == "slow" and not blocked.is_set():
            blocked.set()
            # Held until the test, on the loop, has seen another instance finish meanwhile.
            waited.append(released.wait(10))
        return original(self, history, new_from)

    monkeypatch.setattr(_orchestrations.ShimReplay, "run", slow_run)
    async with Engine(app) as engine:
        slow = engine.start("one_activity", 1, instance_id="slow")
        await asyncio.to_thread(blocked.wait, 10)
        fast = engine.start("one_activity", 10, instance_id="fast")
        record = await engine.wait(fast)
        released.set()
        assert record.status == RuntimeStatus.Completed and engine.output(fast) == 11
        assert (await engine.wait(slow)).status == RuntimeStatus.Completed
        assert engine.output(slow) == 2
    assert waited == [True]


@scenario
async def test_instance_rests_after_a_long_episode() -> None:
    SLOW_TIMES.clear()
    async with Engine(app) as engine:
        iid = engine.start("slow_steps")
        await engine.wait_history(iid, lambda events: any(e.type == EventType.ORCHESTRATOR_COMPLETED for e in events))
        engine.raise_event(iid, "a", "done")  # ready at once: only the rest holds the next episode back
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed and engine.output(iid) == json.dumps("done")
    assert len(SLOW_TIMES) == 2
    (first_start, first_end), (second_start, _) = SLOW_TIMES
    # The rest lasts as long as the whole first episode took, which includes this invocation.
    assert second_start - first_end >= first_end - first_start
