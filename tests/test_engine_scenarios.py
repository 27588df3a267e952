"""End-to-end Durable scenarios through the in-process engine: real SQLite task hub, real dispatcher.

Every scenario runs a ``DFApp``'s functions through ``hosttools.engine.Engine`` and checks the instance's
status, output and the history the engine recorded (event types and sequence ids in DTFx order).
"""

from __future__ import annotations

import asyncio
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

from durableagent.devhost._history import EventType, HistoryEvent, RuntimeStatus, parse_timestamp
from durableagent.devhost._management import Gone, StatusOptions

app = df.DFApp()
SCENARIO_TIMEOUT = 20.0
RETRY_MS = 100


# Test controls ---------------------------------------------------------------------------------------


class Gates:
    """Named threading events that activities block on, so a test decides when each one finishes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}
        self.entered: dict[str, threading.Event] = {}
        self.calls: list[str] = []

    def _get(self, table: dict[str, threading.Event], name: str) -> threading.Event:
        with self._lock:
            return table.setdefault(name, threading.Event())

    def wait(self, name: str, timeout: float = 10.0) -> None:
        """Called by an activity: announce it runs, then block until the test opens the gate."""
        with self._lock:
            self.calls.append(name)
        self._get(self.entered, name).set()
        if not self._get(self._events, name).wait(timeout):
            raise TimeoutError(f"gate {name} never opened")

    def open(self, name: str) -> None:
        self._get(self._events, name).set()

    async def reached(self, name: str, timeout: float = 10.0) -> None:
        """Wait (off the loop thread) until an activity is blocked at gate ``name``."""
        entered = self._get(self.entered, name)
        if not await asyncio.to_thread(entered.wait, timeout):
            raise AssertionError(f"no activity reached gate {name}")

    def open_all(self) -> None:
        with self._lock:
            events = list(self._events.values())
        for event in events:
            event.set()


GATES = Gates()
FLAKY_CALLS: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _reset_controls() -> Any:
    global GATES
    GATES = Gates()
    FLAKY_CALLS.clear()
    yield
    GATES.open_all()  # never leave a worker thread blocked (asyncio.run waits for them)


def scenario(coroutine: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async scenario in a fresh event loop, with an overall time limit."""

    @functools.wraps(coroutine)
    def run(*args: Any, **kwargs: Any) -> None:
        async def bounded() -> None:
            try:
                await asyncio.wait_for(coroutine(*args, **kwargs), SCENARIO_TIMEOUT)
            finally:
                GATES.open_all()

        asyncio.run(bounded())

    return run


# History helpers -------------------------------------------------------------------------------------

_SKIP = {EventType.ORCHESTRATOR_STARTED, EventType.ORCHESTRATOR_COMPLETED}
_SHORT = {
    EventType.EXECUTION_STARTED: "ExecutionStarted",
    EventType.EXECUTION_COMPLETED: "ExecutionCompleted",
    EventType.EXECUTION_TERMINATED: "ExecutionTerminated",
    EventType.TASK_SCHEDULED: "TaskScheduled",
    EventType.TASK_COMPLETED: "TaskCompleted",
    EventType.TASK_FAILED: "TaskFailed",
    EventType.SUB_ORCHESTRATION_CREATED: "SubOrchestrationInstanceCreated",
    EventType.SUB_ORCHESTRATION_COMPLETED: "SubOrchestrationInstanceCompleted",
    EventType.SUB_ORCHESTRATION_FAILED: "SubOrchestrationInstanceFailed",
    EventType.TIMER_CREATED: "TimerCreated",
    EventType.TIMER_FIRED: "TimerFired",
    EventType.EVENT_SENT: "EventSent",
    EventType.EVENT_RAISED: "EventRaised",
    EventType.EXECUTION_SUSPENDED: "ExecutionSuspended",
    EventType.EXECUTION_RESUMED: "ExecutionResumed",
}


def steps(history: list[HistoryEvent]) -> list[tuple[str, int | None]]:
    """(event, sequence id) for every event but the episode markers; completions show the id they close."""
    rows: list[tuple[str, int | None]] = []
    for event in history:
        if event.type in _SKIP:
            continue
        if event.type in (
            EventType.TASK_SCHEDULED,
            EventType.TIMER_CREATED,
            EventType.SUB_ORCHESTRATION_CREATED,
            EventType.EVENT_SENT,
        ):
            ref: int | None = event.event_id
        elif event.get("TaskScheduledId") is not None:
            ref = int(event.get("TaskScheduledId"))
        elif event.get("TimerId") is not None:
            ref = int(event.get("TimerId"))
        else:
            ref = None
        rows.append((_SHORT[event.type], ref))
    return rows


def of_type(history: list[HistoryEvent], kind: EventType) -> list[HistoryEvent]:
    return [e for e in history if e.type == kind]


def has(kind: EventType, event_id: int | None = None) -> Callable[[list[HistoryEvent]], bool]:
    def check(history: list[HistoryEvent]) -> bool:
        for event in history:
            if event.type != kind:
                continue
            ref = event.event_id
            if kind in (EventType.TASK_FAILED, EventType.TASK_COMPLETED):
                ref = int(event.get("TaskScheduledId"))
            elif kind == EventType.TIMER_FIRED:
                ref = int(event.get("TimerId"))
            if event_id is None or ref == event_id:
                return True
        return False

    return check


def scheduled_inputs(history: list[HistoryEvent]) -> dict[int, Any]:
    """Sequence id -> the activity input (TaskScheduled.Input is ``[df_dumps(input)]``)."""
    scheduled = of_type(history, EventType.TASK_SCHEDULED)
    return {e.event_id: json.loads(json.loads(e.get("Input"))[0]) for e in scheduled}


# The app ---------------------------------------------------------------------------------------------


@app.activity_trigger(input_name="city")
def hello(city: Any) -> str:
    return f"Hello {city}"


@app.activity_trigger(input_name="payload")
def echo_types(payload: Any) -> dict[str, Any]:
    # What the activity received after ActivityTriggerConverter.decode (df_loads).
    return {"type": type(payload).__name__, "value": payload}


@app.activity_trigger(input_name="n")
def double(n: int) -> int:
    return n * 2


@app.activity_trigger(input_name="n")
def count_to(n: int) -> int:
    return n


@app.activity_trigger(input_name="spec")
def flaky(spec: dict[str, Any]) -> str:
    key = spec["key"]
    FLAKY_CALLS[key] = FLAKY_CALLS.get(key, 0) + 1
    attempt = FLAKY_CALLS[key]
    if attempt <= spec["failures"]:
        raise ValueError(f"{key} attempt {attempt} failed")
    return f"{key} ok on attempt {attempt}"


@app.activity_trigger(input_name="spec")
def gated(spec: dict[str, Any]) -> str:
    """Blocks on gate ``<city>#<attempt>``; fails on the attempts listed in ``fail``."""
    city = spec["city"]
    with GATES._lock:
        FLAKY_CALLS[city] = FLAKY_CALLS.get(city, 0) + 1
        attempt = FLAKY_CALLS[city]
    GATES.wait(f"{city}#{attempt}")
    if attempt in spec.get("fail", []):
        raise RuntimeError(f"{city} attempt {attempt} failed")
    return f"Hello {city}"


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext) -> Any:
    a = yield context.call_activity("hello", "Tokyo")
    b = yield context.call_activity("hello", "Seattle")
    c = yield context.call_activity("hello", "London")
    d = yield context.call_activity("echo_types", {"a": [1, 2], "s": "x"})
    return [a, b, c, d, context.get_input()]


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Any:
    n = yield context.call_activity("count_to", context.get_input())
    results = yield context.task_all([context.call_activity("double", i) for i in range(n)])
    return results


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext) -> Any:
    spec = context.get_input()
    options = df.RetryOptions(RETRY_MS, spec.get("attempts", 3))
    return (yield context.call_activity_with_retry("flaky", options, spec))


@app.orchestration_trigger(context_name="context")
def two_retries(context: df.DurableOrchestrationContext) -> Any:
    options = df.RetryOptions(context.get_input()["interval_ms"], 3)
    tokyo = context.call_activity_with_retry("gated", options, {"city": "Tokyo", "fail": [1]})
    seattle = context.call_activity_with_retry("gated", options, {"city": "Seattle", "fail": [1]})
    return (yield context.task_all([tokyo, seattle]))


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext) -> Any:
    due = context.current_utc_datetime + timedelta(seconds=0.2)
    yield context.create_timer(due)
    return context.current_utc_datetime.isoformat()


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext) -> Any:
    spec = context.get_input()
    timeout = context.create_timer(context.current_utc_datetime + timedelta(seconds=spec["timeout"]))
    approved = context.wait_for_external_event("Approve")
    winner = yield context.task_any([approved, timeout])
    if winner == approved:
        timeout.cancel()
        after = None
        if spec.get("then_gate"):
            # Keep running past the cancelled timer's due time, so its TimerFired arrives while running.
            after = yield context.call_activity("gated", {"city": spec["then_gate"]})
        return ["approved", approved.result, after]
    return "timed out"


@app.orchestration_trigger(context_name="context")
def late_waiter(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.call_activity("gated", {"city": "Busy"})
    event = yield context.wait_for_external_event("Go")
    return [first, event]


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext) -> Any:
    value = context.get_input()
    doubled = yield context.call_activity("double", value)
    return {"instance": context.instance_id, "parent": context.parent_instance_id, "value": doubled}


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext) -> Any:
    implicit = yield context.call_sub_orchestrator("child", 5)
    explicit = yield context.call_sub_orchestrator("child", 6, context.get_input()["child_id"])
    return [implicit, explicit]


@app.orchestration_trigger(context_name="context")
def bad_child(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("hello", "before failing")
    raise ValueError("child broke")


@app.orchestration_trigger(context_name="context")
def careful_parent(context: df.DurableOrchestrationContext) -> Any:
    try:
        yield context.call_sub_orchestrator("bad_child", None)
    except Exception as exc:
        return f"caught: {exc}"
    return "not caught"


@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        value += context.get_input()
    elif operation == "reset":
        value = 0
    elif operation == "fail":
        raise ValueError("counter refuses")
    context.set_state(value)
    context.set_result(value)


@app.orchestration_trigger(context_name="context")
def entity_user(context: df.DurableOrchestrationContext) -> Any:
    counter_id = df.EntityId("Counter", context.get_input())
    context.signal_entity(counter_id, "add", 5)
    after_call = yield context.call_entity(counter_id, "add", 10)
    current = yield context.call_entity(counter_id, "get")
    try:
        yield context.call_entity(counter_id, "fail")
        failure = None
    except Exception as exc:
        failure = str(exc)
    return [after_call, current, failure]


@app.orchestration_trigger(context_name="context")
def generations(context: df.DurableOrchestrationContext) -> Any:
    n = context.get_input()
    if n < 5:
        yield context.call_activity("double", n)
        context.continue_as_new(n + 1)
        return None
    return f"done after {n} generations"


@app.orchestration_trigger(context_name="context")
def with_status(context: df.DurableOrchestrationContext) -> Any:
    context.set_custom_status({"stage": "waiting", "n": 1})
    go = yield context.wait_for_external_event("Go")
    context.set_custom_status({"stage": "done"})
    return go


@app.orchestration_trigger(context_name="context")
def raiser(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("hello", "x")
    raise RuntimeError("boom: the orchestrator gave up")


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext) -> Any:
    go = yield context.wait_for_external_event("Go")
    return f"got {go}"


@app.orchestration_trigger(context_name="context")
def evolving(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.call_activity("gated", {"city": "v1"})
    second = yield context.call_activity("hello", "v1")
    return [first, second]


def evolving_v2(context: df.DurableOrchestrationContext) -> Any:
    # A code change between episodes: the first call now targets another activity.
    first = yield context.call_activity("double", 1)
    second = yield context.call_activity("hello", "v2")
    return [first, second]


# Scenarios -------------------------------------------------------------------------------------------


@scenario
async def test_function_chaining() -> None:
    async with Engine(app) as engine:
        iid = engine.start("chain", {"k": "v"})
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed
        assert engine.output(iid) == [
            "Hello Tokyo",
            "Hello Seattle",
            "Hello London",
            {"type": "dict", "value": {"a": [1, 2], "s": "x"}},
            {"k": "v"},
        ]
        history = engine.history(iid)
        assert steps(history) == [
            ("ExecutionStarted", None),
            ("TaskScheduled", 0),
            ("TaskCompleted", 0),
            ("TaskScheduled", 1),
            ("TaskCompleted", 1),
            ("TaskScheduled", 2),
            ("TaskCompleted", 2),
            ("TaskScheduled", 3),
            ("TaskCompleted", 3),
            ("ExecutionCompleted", None),
        ]
        names = [e.get("Name") for e in of_type(history, EventType.TASK_SCHEDULED)]
        assert names == ["hello"] * 3 + ["echo_types"]
        # The wire forms of §4.3: TaskScheduled.Input is [df_dumps(x)]; TaskCompleted.Result is df_dumps(ret).
        assert of_type(history, EventType.TASK_SCHEDULED)[0].get("Input") == json.dumps([json.dumps("Tokyo")])
        assert of_type(history, EventType.TASK_COMPLETED)[0].get("Result") == json.dumps("Hello Tokyo")
        # The stored input is the JSON string literal of df_dumps(input), as the extension stores it.
        assert record.input == json.dumps(json.dumps({"k": "v"}))


@scenario
async def test_fan_out_fan_in_100() -> None:
    async with Engine(app) as engine:
        iid = engine.start("fan_out", 100)
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed, record.output
        assert engine.output(iid) == [2 * i for i in range(100)]
        history = engine.history(iid)
        scheduled = of_type(history, EventType.TASK_SCHEDULED)
        assert [e.event_id for e in scheduled] == list(range(101))
        assert scheduled[0].get("Name") == "count_to"
        assert {e.get("Name") for e in scheduled[1:]} == {"double"}
        # Ids 1..100 go to the activities in call order.
        inputs = scheduled_inputs(history)
        assert [inputs[i] for i in range(1, 101)] == list(range(100))
        completed = sorted(int(e.get("TaskScheduledId")) for e in of_type(history, EventType.TASK_COMPLETED))
        assert completed == list(range(101))
        # The hundred were scheduled in one episode, after task 0 completed.
        first = history.index(scheduled[1])
        assert all(history[first + i].type == EventType.TASK_SCHEDULED for i in range(100))


@scenario
async def test_retry_succeeds_on_third_attempt() -> None:
    async with Engine(app) as engine:
        iid = engine.start("retrying", {"key": "k1", "failures": 2})
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed, record.output
        assert engine.output(iid) == "k1 ok on attempt 3"
        history = engine.history(iid)
        assert steps(history) == [
            ("ExecutionStarted", None),
            ("TaskScheduled", 0),
            ("TaskFailed", 0),
            ("TimerCreated", 1),
            ("TimerFired", 1),
            ("TaskScheduled", 2),
            ("TaskFailed", 2),
            ("TimerCreated", 3),
            ("TimerFired", 3),
            ("TaskScheduled", 4),
            ("TaskCompleted", 4),
            ("ExecutionCompleted", None),
        ]
        failed = of_type(history, EventType.TASK_FAILED)[0]
        # Two spaces, as in Azure: the extension cuts the message after "\nException:" (no trailing space).
        assert failed.get("Reason") == "Activity function 'flaky' failed:  ValueError: k1 attempt 1 failed"
        _assert_retry_timers(history)


def _assert_retry_timers(history: list[HistoryEvent]) -> None:
    """Each retry timer is due firstRetryInterval after the episode that created it started."""
    started_at = None
    for event in history:
        if event.type == EventType.ORCHESTRATOR_STARTED:
            started_at = event.timestamp
        if event.type == EventType.TIMER_CREATED:
            assert started_at is not None
            assert parse_timestamp(event.get("FireAt")) - started_at == timedelta(milliseconds=RETRY_MS)


@scenario
async def test_retry_exhausted_fails_after_the_extra_timer() -> None:
    async with Engine(app) as engine:
        iid = engine.start("retrying", {"key": "k2", "failures": 99, "attempts": 3})
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Failed
        history = engine.history(iid)
        assert steps(history) == [
            ("ExecutionStarted", None),
            ("TaskScheduled", 0),
            ("TaskFailed", 0),
            ("TimerCreated", 1),
            ("TimerFired", 1),
            ("TaskScheduled", 2),
            ("TaskFailed", 2),
            ("TimerCreated", 3),
            ("TimerFired", 3),
            ("TaskScheduled", 4),
            ("TaskFailed", 4),
            ("TimerCreated", 5),
            ("TimerFired", 5),
            ("ExecutionCompleted", None),
        ]
        assert FLAKY_CALLS["k2"] == 3
        output = engine.output(iid)
        assert output.startswith(
            "Orchestrator function 'retrying' failed: "
            "Activity function 'flaky' failed:  ValueError: k2 attempt 3 failed"
        ), output
        completed = of_type(history, EventType.EXECUTION_COMPLETED)[0]
        assert completed.get("OrchestrationStatus") == int(RuntimeStatus.Failed)
        _assert_retry_timers(history)


@scenario
async def test_concurrent_retries_ids_follow_failure_order() -> None:
    """protocol §3.3: Tokyo(0), Seattle(1); Seattle fails first -> timer 2; Tokyo -> timer 3; re-runs 4, 5."""
    async with Engine(app) as engine:
        iid = engine.start("two_retries", {"interval_ms": 600})
        await GATES.reached("Tokyo#1")
        await GATES.reached("Seattle#1")
        GATES.open("Seattle#1")
        await engine.wait_history(iid, has(EventType.TIMER_CREATED, 2))
        GATES.open("Tokyo#1")
        await engine.wait_history(iid, has(EventType.TIMER_CREATED, 3))
        GATES.open("Seattle#2")
        GATES.open("Tokyo#2")
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed, record.output
        assert engine.output(iid) == ["Hello Tokyo", "Hello Seattle"]
        history = engine.history(iid)
        assert steps(history)[:7] == [
            ("ExecutionStarted", None),
            ("TaskScheduled", 0),
            ("TaskScheduled", 1),
            ("TaskFailed", 1),
            ("TimerCreated", 2),
            ("TaskFailed", 0),
            ("TimerCreated", 3),
        ]
        cities = {i: spec["city"] for i, spec in scheduled_inputs(history).items()}
        assert cities == {0: "Tokyo", 1: "Seattle", 4: "Seattle", 5: "Tokyo"}
        fired = [int(e.get("TimerId")) for e in of_type(history, EventType.TIMER_FIRED)]
        assert fired == [2, 3]
        # Each re-run is scheduled in the episode its own timer fired in (or later), never before.
        order = steps(history)
        assert order.index(("TimerFired", 2)) < order.index(("TaskScheduled", 4))
        assert order.index(("TimerFired", 3)) < order.index(("TaskScheduled", 5))


@scenario
async def test_durable_timer() -> None:
    async with Engine(app) as engine:
        began = time.time()
        iid = engine.start("sleeper")
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed
        assert time.time() - began >= 0.2
        history = engine.history(iid)
        assert steps(history) == [
            ("ExecutionStarted", None),
            ("TimerCreated", 0),
            ("TimerFired", 0),
            ("ExecutionCompleted", None),
        ]
        created = of_type(history, EventType.TIMER_CREATED)[0]
        fired = of_type(history, EventType.TIMER_FIRED)[0]
        assert created.get("FireAt") == fired.get("FireAt")
        # The timer fired no earlier than due, and the replaying code saw the time of the firing episode.
        due = parse_timestamp(created.get("FireAt"))
        assert due - created.timestamp == timedelta(seconds=0.2)
        last_start = [e for e in history if e.type == EventType.ORCHESTRATOR_STARTED][-1]
        assert last_start.timestamp >= due
        assert engine.output(iid) == last_start.timestamp.isoformat()


@scenario
async def test_event_beats_timer_and_late_timer_is_ignored() -> None:
    async with Engine(app) as engine:
        iid = engine.start("approval", {"timeout": 0.5, "then_gate": "after"})
        await engine.wait_history(iid, has(EventType.TIMER_CREATED, 0))
        engine.raise_event(iid, "Approve", "yes")
        await GATES.reached("after#1")
        # Let the cancelled timer come due and be delivered while the instance is still running.
        await engine.wait_history(iid, has(EventType.TIMER_FIRED, 0), timeout=5)
        assert engine.status(iid).status == RuntimeStatus.Running
        GATES.open("after#1")
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed, record.output
        # Raised through the client, any value arrives as its JSON text (the SDK client encodes it twice;
        # Azure/azure-functions-durable-python#295), so "yes" arrives as '"yes"'.
        assert engine.output(iid) == ["approved", json.dumps("yes"), "Hello after"]
        history = engine.history(iid)
        assert steps(history) == [
            ("ExecutionStarted", None),
            ("TimerCreated", 0),
            ("EventRaised", None),
            ("TaskScheduled", 1),
            ("TimerFired", 0),
            ("TaskCompleted", 1),
            ("ExecutionCompleted", None),
        ]


@scenario
async def test_event_beats_timer_then_completes() -> None:
    async with Engine(app) as engine:
        iid = engine.start("approval", {"timeout": 5})
        await engine.wait_history(iid, has(EventType.TIMER_CREATED, 0))
        engine.raise_event(iid, "Approve", {"by": "me"})
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed, record.output
        # A dict raised through the client arrives as its JSON text (azure-functions-durable-python#295).
        assert engine.output(iid) == ["approved", json.dumps({"by": "me"}), None]
        # The orchestration is done; the timer's later firing is dropped (it is still pending in the hub).
        assert engine.history(iid)[-2].type == EventType.EXECUTION_COMPLETED


@scenario
async def test_timer_beats_event() -> None:
    async with Engine(app) as engine:
        iid = engine.start("approval", {"timeout": 0.2})
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed
        assert engine.output(iid) == "timed out"
        assert steps(engine.history(iid)) == [
            ("ExecutionStarted", None),
            ("TimerCreated", 0),
            ("TimerFired", 0),
            ("ExecutionCompleted", None),
        ]
        with pytest.raises(Gone):
            engine.raise_event(iid, "Approve", "too late")


@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion for TaskId. Go:UserWarning")
@scenario
async def test_external_event_raised_before_the_wait_is_buffered() -> None:
    async with Engine(app) as engine:
        iid = engine.start("late_waiter")
        await GATES.reached("Busy#1")
        engine.raise_event(iid, "Go", "early bird")
        # The event is recorded in an episode of its own while the orchestrator still awaits the activity.
        await engine.wait_history(iid, has(EventType.EVENT_RAISED))
        GATES.open("Busy#1")
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed, record.output
        assert engine.output(iid) == ["Hello Busy", json.dumps("early bird")]
        assert steps(engine.history(iid)) == [
            ("ExecutionStarted", None),
            ("TaskScheduled", 0),
            ("EventRaised", None),
            ("TaskCompleted", 0),
            ("ExecutionCompleted", None),
        ]


@scenario
async def test_sub_orchestrations_with_and_without_instance_id() -> None:
    async with Engine(app) as engine:
        iid = engine.start("parent", {"child_id": "explicit-child"})
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed, record.output
        implicit_id = f"{record.execution_id}:0"
        assert engine.output(iid) == [
            {"instance": implicit_id, "parent": iid, "value": 10},
            {"instance": "explicit-child", "parent": iid, "value": 12},
        ]
        history = engine.history(iid)
        created = of_type(history, EventType.SUB_ORCHESTRATION_CREATED)
        assert [(e.event_id, e.get("Name"), e.get("InstanceId")) for e in created] == [
            (0, "child", implicit_id),
            (1, "child", "explicit-child"),
        ]
        assert steps(history) == [
            ("ExecutionStarted", None),
            ("SubOrchestrationInstanceCreated", 0),
            ("SubOrchestrationInstanceCompleted", 0),
            ("SubOrchestrationInstanceCreated", 1),
            ("SubOrchestrationInstanceCompleted", 1),
            ("ExecutionCompleted", None),
        ]
        for child_id in (implicit_id, "explicit-child"):
            child_record = engine.status(child_id)
            assert child_record.status == RuntimeStatus.Completed
            parent_ref = (child_record.parent_instance_id, child_record.parent_execution_id)
            assert parent_ref == (iid, record.execution_id)
            started = of_type(engine.history(child_id), EventType.EXECUTION_STARTED)[0]
            assert started.get("ParentInstance")["OrchestrationInstance"]["InstanceId"] == iid


@scenario
async def test_failing_sub_orchestration_is_catchable() -> None:
    async with Engine(app) as engine:
        iid = engine.start("careful_parent")
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed, record.output
        child_id = f"{record.execution_id}:0"
        child_record = engine.status(child_id)
        assert child_record.status == RuntimeStatus.Failed
        child_error = "Orchestrator function 'bad_child' failed: child broke"
        assert engine.output(child_id) == child_error
        output = engine.output(iid)
        assert output.startswith("caught: ") and child_error in output, output
        failed = of_type(engine.history(iid), EventType.SUB_ORCHESTRATION_FAILED)
        assert [(int(e.get("TaskScheduledId")), e.get("Reason")) for e in failed] == [(0, child_error)]


@scenario
async def test_entity_counter_call_and_signal_from_orchestration() -> None:
    async with Engine(app) as engine:
        iid = engine.start("entity_user", "k1")
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed, record.output
        after_call, current, failure = engine.output(iid)
        # The signal (sent first, same sender) runs before the call: 5 + 10.
        assert (after_call, current) == (15, 15)
        assert failure is not None and "counter refuses" in failure
        assert engine.read_entity("Counter", "k1") == 15
        sent = of_type(engine.history(iid), EventType.EVENT_SENT)
        assert [(e.event_id, e.get("InstanceId")) for e in sent] == [(i, "@counter@k1") for i in range(4)]
        requests = [json.loads(e.get("Input")) for e in sent]
        assert [(r["op"], r["signal"]) for r in requests] == [
            ("add", True),
            ("add", False),
            ("get", False),
            ("fail", False),
        ]
        raised = [e.get("Name") for e in of_type(engine.history(iid), EventType.EVENT_RAISED)]
        assert raised == [r["id"] for r in requests[1:]]


@scenario
async def test_entity_200_concurrent_signals_from_the_client() -> None:
    async with Engine(app) as engine:
        for _ in range(200):
            engine.signal_entity("Counter", "bulk", "add", 1)
        await engine.wait_until(lambda: _entity_value(engine, "bulk") == 200, timeout=10, what="200 adds")
        await engine.idle()
        assert engine.read_entity("counter", "bulk") == 200
        assert engine.store.count_messages() == 0
        batches = [payload for kind, _, payload in engine.invocations if kind == "entity"]
        assert sum(len(json.loads(b)["batch"]) for b in batches) == 200


def _entity_value(engine: Engine, key: str) -> Any:
    record = engine.store.get_entity(f"@counter@{key}")
    return json.loads(record.state) if record and record.state is not None else None


@scenario
async def test_continue_as_new_five_generations() -> None:
    async with Engine(app) as engine:
        iid = engine.start("generations", 0)
        record = await engine.wait(iid, timeout=5)
        assert record.status == RuntimeStatus.Completed, record.output
        assert engine.output(iid) == "done after 5 generations"
        # Only the last generation's history remains.
        assert steps(engine.history(iid)) == [("ExecutionStarted", None), ("ExecutionCompleted", None)]
        started = of_type(engine.history(iid), EventType.EXECUTION_STARTED)[0]
        assert started.get("Input") == json.dumps(json.dumps(5))
        assert started.get("OrchestrationInstance")["ExecutionId"] == record.execution_id
        # Every episode saw a fresh history: one ExecutionStarted, at most one task, a new execution id
        # per generation.
        executions: list[str] = []
        for kind, _name, payload in engine.invocations:
            if kind != "orchestration":
                continue
            history = [HistoryEvent.from_wire(w) for w in json.loads(payload)["history"]]
            starts = of_type(history, EventType.EXECUTION_STARTED)
            assert len(starts) == 1
            assert len(of_type(history, EventType.TASK_SCHEDULED)) <= 1
            execution = starts[0].get("OrchestrationInstance")["ExecutionId"]
            if execution not in executions:
                executions.append(execution)
        assert len(executions) == 6
        doubled = [json.loads(p) for k, n, p in engine.invocations if k == "activity"]
        assert doubled == [0, 1, 2, 3, 4]


@scenario
async def test_custom_status_visible_while_running() -> None:
    async with Engine(app) as engine:
        iid = engine.start("with_status")
        await engine.wait_until(lambda: engine.status(iid).custom_status is not None, what="custom status")
        record = engine.status(iid)
        assert record.status == RuntimeStatus.Running
        assert json.loads(record.custom_status) == {"stage": "waiting", "n": 1}
        body = engine.management.status_body(record, options=StatusOptions())
        assert body["customStatus"] == {"stage": "waiting", "n": 1}
        assert body["runtimeStatus"] == "Running"
        engine.raise_event(iid, "Go", 7)
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed
        assert json.loads(record.custom_status) == {"stage": "done"}
        assert engine.output(iid) == "7"  # json.dumps(7): see test_event_beats_timer_then_completes


@scenario
async def test_orchestrator_exception_fails_the_instance() -> None:
    async with Engine(app) as engine:
        iid = engine.start("raiser")
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Failed
        assert engine.output(iid) == "Orchestrator function 'raiser' failed: boom: the orchestrator gave up"
        assert steps(engine.history(iid)) == [
            ("ExecutionStarted", None),
            ("TaskScheduled", 0),
            ("TaskCompleted", 0),
            ("ExecutionCompleted", None),
        ]


@scenario
async def test_suspend_resume_and_terminate() -> None:
    async with Engine(app) as engine:
        iid = engine.start("waiter")
        await engine.wait(iid, statuses=[RuntimeStatus.Running])
        engine.suspend(iid, "hold on")
        await engine.wait(iid, statuses=[RuntimeStatus.Suspended])
        engine.raise_event(iid, "Go", "while suspended")
        await asyncio.sleep(0.3)
        assert engine.status(iid).status == RuntimeStatus.Suspended
        assert not of_type(engine.history(iid), EventType.EVENT_RAISED)
        engine.resume(iid, "go on")
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Completed
        assert engine.output(iid) == f"got {json.dumps('while suspended')}"
        assert [k for k, _ in steps(engine.history(iid))] == [
            "ExecutionStarted",
            "ExecutionSuspended",
            "ExecutionResumed",
            "EventRaised",
            "ExecutionCompleted",
        ]
        with pytest.raises(Gone):
            engine.suspend(iid)

        other = engine.start("waiter")
        await engine.wait(other, statuses=[RuntimeStatus.Running])
        engine.terminate(other, "no longer needed")
        record = await engine.wait(other)
        assert record.status == RuntimeStatus.Terminated
        assert engine.output(other) == "no longer needed"
        with pytest.raises(Gone):
            engine.terminate(other, "again")
        with pytest.raises(Gone):
            engine.raise_event(other, "Go", "too late")


@scenario
async def test_suspended_instance_holding_an_event_does_not_spin() -> None:
    """A suspended instance keeps new events in its inbox; that must not make the dispatcher busy-loop.

    Engine bug: every pass over the held message commits a no-op transaction, whose commit wakes the
    dispatcher, which finds the same visible message and runs the instance again (thousands of
    transactions per second for as long as the instance stays suspended).
    """
    async with Engine(app) as engine:
        iid = engine.start("waiter")
        await engine.wait(iid, statuses=[RuntimeStatus.Running])
        engine.suspend(iid, "hold on")
        await engine.wait(iid, statuses=[RuntimeStatus.Suspended])
        engine.raise_event(iid, "Go", "while suspended")
        before = engine.commits
        await asyncio.sleep(0.5)
        spent = engine.commits - before
        engine.resume(iid)
        assert (await engine.wait(iid)).status == RuntimeStatus.Completed
        assert spent <= 5, f"{spent} task-hub transactions in 0.5 s while suspended with one held event"


@scenario
async def test_suspend_before_the_first_episode_then_resume_runs_the_instance() -> None:
    """Suspending a just-started instance must not lose its ExecutionStarted.

    Engine bug: the first episode consumes the ExecutionStarted message and the suspend request together;
    because the episode ends suspended, the ExecutionStarted is never delivered, yet its message is deleted.
    After ``resume`` the instance is Running with no ExecutionStarted in its history and never runs.
    """
    async with Engine(app) as engine:
        iid = engine.start("chain", "early")
        engine.suspend(iid, "before it ran")  # no await in between: both land in the first episode
        await engine.wait(iid, statuses=[RuntimeStatus.Suspended])
        engine.resume(iid, "go")
        record = await engine.wait(iid, timeout=3)
        assert record.status == RuntimeStatus.Completed, record.output
        assert engine.output(iid)[0] == "Hello Tokyo"
        kinds = [k for k, _ in steps(engine.history(iid))]
        assert kinds.count("ExecutionStarted") == 1


@scenario
async def test_code_change_between_episodes_is_non_deterministic() -> None:
    async with Engine(app) as engine:
        iid = engine.start("evolving")
        await GATES.reached("v1#1")
        engine.replace_orchestrator("evolving", evolving_v2)
        GATES.open("v1#1")
        record = await engine.wait(iid)
        assert record.status == RuntimeStatus.Failed
        output = engine.output(iid)
        assert output.startswith("Orchestrator function 'evolving' failed: ")
        assert "Non-Deterministic" in output and "gated" in output, output
        # Nothing of the new code's work was recorded.
        assert [e.get("Name") for e in of_type(engine.history(iid), EventType.TASK_SCHEDULED)] == ["gated"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-03T11:28:41.6214570Z", datetime(2026, 12, 3, 11, 28, 41, 621457, tzinfo=timezone.utc)),
        # The offset has digits too: it must not be read as more fraction digits (and then dropped).
        ("2026-12-03T11:28:41.6214570+02:00", datetime(2026, 12, 3, 9, 28, 41, 621457, tzinfo=timezone.utc)),
        ("2026-12-03T11:28:41.123456789-05:00", datetime(2026, 12, 3, 16, 28, 41, 123456, tzinfo=timezone.utc)),
        ("2026-12-03T11:28:41.5", datetime(2026, 12, 3, 11, 28, 41, 500000, tzinfo=timezone.utc)),
        ("2026-12-03T11:28:41Z", datetime(2026, 12, 3, 11, 28, 41, tzinfo=timezone.utc)),
    ],
)
def test_parse_timestamp_reads_dotnet_and_python_forms(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected
