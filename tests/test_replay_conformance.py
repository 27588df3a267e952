"""The shim replay (``_replay.ShimReplay``) against the SDK's own orchestrator fixtures.

For each scenario the history is built exactly as the azure-functions-durable 1.7.0 test builds it (with the
fixture module's own helpers), the SDK orchestrator runs on it with the context the local host sends
(``upperSchemaVersion`` 1 + ``upperSchemaVersionNew`` 2, so the SDK answers in replay schema V3), its
``actions`` are flattened and walked by ``ShimReplay`` over the same history. Each case asserts:

* the walk matches every recorded TaskScheduled / TimerCreated / SubOrchestrationInstanceCreated /
  EventSent (no ``NonDeterminismError``);
* the NEW decisions (event type, sequence id, name/target) are what DTFx would record next;
* whether the walk finished (the shim only completes or fails the instance once it has);
* the SDK's own verdict for the history (still running / done with output / failed with error), which is
  what ties the ids above to the ids the SDK looks its tasks up by.

Some fixture histories are not byte-for-byte what DTFx records: the SDK tests append a TaskScheduled right
before its completion, in a later episode than the one that scheduled it. That is harmless, the walk matches
by sequence id. Where a fixture omits a TaskScheduled/EventSent altogether (``test_task_any``,
``test_signal_entity_sent_and_response_received``), DTFx would schedule that work again, and so do we: those
cases expect the missing ids as new decisions and say so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import azure.durable_functions as df
import pytest
from azure.durable_functions.models.utils.df_serialization import df_dumps
from hosttools.engine import history_from_context_builder, last_orchestrator_started, sdk_fixture

from durableagent.devhost._history import EventType, HistoryEvent, parse_timestamp
from durableagent.devhost._replay import (
    CreateTimer,
    InstanceRef,
    NonDeterminismError,
    ReplayResult,
    ScheduleActivity,
    SendEntityMessage,
    ShimReplay,
    StartSubOrchestration,
)

ContextBuilder = sdk_fixture("tests.test_utils.ContextBuilder").ContextBuilder
seq = sdk_fixture("test_sequential_orchestrator")
retry = sdk_fixture("test_sequential_orchestrator_with_retry")
timer = sdk_fixture("test_create_timer")
sub = sdk_fixture("test_sub_orchestrator")
sub_retry = sdk_fixture("test_sub_orchestrator_with_retry")
any_ = sdk_fixture("test_task_any")
entity = sdk_fixture("test_entity")
can = sdk_fixture("test_continue_as_new")
fan = sdk_fixture("test_fan_out_fan_in")
ext = sdk_fixture("test_external_event")

OOPROC_LABEL = "\n\n$OutOfProcData$:"
REASON, DETAILS = "Reasons", "Stuff and Things"
SDK_ERROR = f"{REASON} \n {DETAILS}"
COUNTER = "@counter@myCounter"

TS, TC, SUB, SENT = "TaskScheduled", "TimerCreated", "SubOrchestrationInstanceCreated", "EventSent"
_KIND = {
    EventType.TASK_SCHEDULED: TS,
    EventType.TIMER_CREATED: TC,
    EventType.SUB_ORCHESTRATION_CREATED: SUB,
    EventType.EVENT_SENT: SENT,
}
_DECISION_TYPE = {TS: ScheduleActivity, TC: CreateTimer, SUB: StartSubOrchestration, SENT: SendEntityMessage}


# Running one case ---------------------------------------------------------------------------------------


def run_sdk(orchestrator: Callable[..., Any], builder: Any) -> tuple[dict[str, Any], bool]:
    """The SDK's state JSON for the builder's history, and whether the SDK raised (user-code failure)."""
    builder.upperSchemaVersion = 1
    context_json = builder.to_json_string(upperSchemaVersionNew=2)
    try:
        return json.loads(df.Orchestrator.create(orchestrator)(context_json)), False
    except Exception as exc:
        text = str(exc)
        assert OOPROC_LABEL in text, text
        return json.loads(text.split(OOPROC_LABEL, 1)[1]), True


def execution_of(history: list[HistoryEvent]) -> InstanceRef:
    started = next(e for e in history if e.type == EventType.EXECUTION_STARTED)
    instance = started.get("OrchestrationInstance")
    return InstanceRef(instance["InstanceId"], instance["ExecutionId"])


def replay(state: dict[str, Any], history: list[HistoryEvent]) -> ReplayResult:
    flat = [action for group in state.get("actions") or [[]] for action in group]
    return ShimReplay(execution_of(history), flat).run(history, new_from=last_orchestrator_started(history))


def summary(result: ReplayResult) -> list[tuple[str, int, str | None]]:
    rows = []
    for decision, event in result.decisions:
        kind = _KIND[event.type]
        assert isinstance(decision, _DECISION_TYPE[kind])
        assert decision.task_id == event.event_id
        name = event.get("InstanceId") if kind == SENT else event.get("Name")
        rows.append((kind, event.event_id, name))
    return rows


class Case(NamedTuple):
    """One fixture scenario: how to build it, and what the shim must decide."""

    id: str
    build: Callable[[], Any]  # -> ContextBuilder (fixture history)
    orchestrator: Callable[..., Any]
    decisions: list[tuple[str, int, str | None]]
    finished: bool
    # SDK verdict: "running", ("done", output) or ("failed", error text)
    sdk: Any = "running"
    check: Callable[[ReplayResult, list[HistoryEvent]], None] | None = None
    marks: tuple[Any, ...] = ()


def _builder(name: str = "test_simple_function", *steps: Callable[[Any], Any]) -> Callable[[], Any]:
    def build() -> Any:
        builder = ContextBuilder(name)
        for step in steps:
            step(builder)
        return builder

    return build


# test_sequential_orchestrator.py ----------------------------------------------------------------------


def _hello_ok(id_: int, result: str, name: str = "Hello") -> Callable[[Any], None]:
    return lambda b: seq.add_hello_completed_events(b, id_, result, activity_name=name)


def _hello_failed(id_: int) -> Callable[[Any], None]:
    return lambda b: seq.add_hello_failed_events(b, id_, REASON, DETAILS)


TOKYO, SEATTLE, LONDON = '"Hello Tokyo!"', '"Hello Seattle!"', '"Hello London!"'
THREE = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]

SEQUENTIAL = [
    Case("initial", _builder(), seq.generator_function, [(TS, 0, "Hello")], False),
    Case("tokyo", _builder("x", _hello_ok(0, TOKYO)), seq.generator_function, [(TS, 1, "Hello")], False),
    Case(
        "tokyo_and_seattle",
        _builder("x", _hello_ok(0, TOKYO), _hello_ok(1, SEATTLE)),
        seq.generator_function,
        [(TS, 2, "Hello")],
        False,
    ),
    Case(
        "tokyo_and_seattle_and_london",
        _builder("x", _hello_ok(0, TOKYO), _hello_ok(1, SEATTLE), _hello_ok(2, LONDON)),
        seq.generator_function,
        [],
        True,
        ("done", THREE),
    ),
    Case(
        "failed_tokyo",
        _builder("x", _hello_failed(0)),
        seq.generator_function,
        [],
        True,
        ("failed", SDK_ERROR),
    ),
    Case(
        "call_activity_with_name",
        _builder("x", _hello_ok(0, TOKYO), _hello_ok(1, SEATTLE), _hello_ok(2, LONDON)),
        seq.generator_function_call_activity_with_name,
        [],
        True,
        ("done", THREE),
    ),
    Case(
        "call_activity_with_none_return",
        _builder(
            "x",
            _hello_ok(0, TOKYO, "hello_return_none"),
            _hello_ok(1, SEATTLE, "hello_return_none"),
            _hello_ok(2, None, "hello_return_none"),
        ),  # type: ignore[arg-type]
        seq.generator_function_call_activity_with_none_return,
        [],
        True,
        ("done", ["Hello Tokyo!", "Hello Seattle!", None]),
    ),
    Case(
        "user_code_raises_exception",
        _builder("x", _hello_ok(0, TOKYO), _hello_ok(1, SEATTLE), _hello_ok(2, LONDON)),
        seq.generator_function_rasing_ex,
        [],
        True,
        ("failed", "Oops!"),
    ),
    Case(
        "multi_when_all_yield",
        _builder("x", _hello_ok(0, TOKYO)),
        seq.generator_function_multi_yield_when_all,
        [],
        True,
        ("done", ["Hello Tokyo!"]),
    ),
    Case(
        "sequential_orchestration_no_yield",
        _builder("x", _hello_ok(0, LONDON)),
        seq.generator_function_no_yield,
        [],
        True,
        ("done", "Hello London!"),
    ),
    Case(
        "with_serialization",
        _builder("x", _hello_ok(0, TOKYO), _hello_ok(1, SEATTLE), _hello_ok(2, LONDON)),
        seq.generator_function_with_serialization,
        [],
        True,
        ("done", THREE),
    ),
    Case(
        "duplicate_yields",
        _builder("x", _hello_ok(0, TOKYO)),
        seq.generator_function_duplicate_yield,
        [],
        True,
        ("done", ""),
    ),
    Case(
        "reducing_when_any",
        _builder("x", _hello_ok(0, TOKYO), _hello_ok(1, SEATTLE), _hello_ok(2, LONDON)),
        seq.generator_function_reducing_when_all,
        [],
        True,
        ("done", ""),
    ),
    Case(
        "reusing_task_in_when_any",
        _builder("x", _hello_ok(0, TOKYO), _hello_ok(1, SEATTLE), _hello_ok(2, LONDON)),
        seq.generator_function_reuse_task_in_whenany,
        [],
        True,
        ("done", ""),
    ),
    # WhenAny(WhenAll(a, b, WhenAny(c))) after the first activity: three new tasks, ids in action order.
    Case(
        "compound_tasks",
        _builder("x", _hello_ok(0, TOKYO)),
        seq.generator_function_compound_tasks,
        [(TS, 1, "Hello"), (TS, 2, "Hello"), (TS, 3, "Hello")],
        False,
    ),
]


# test_sequential_orchestrator_with_retry.py -------------------------------------------------------------


def _r_ok(id_: int, result: str) -> Callable[[Any], None]:
    return lambda b: retry.add_hello_completed_events(b, id_, result)


def _r_failed(id_: int) -> Callable[[Any], None]:
    return lambda b: retry.add_hello_failed_events(b, id_, REASON, DETAILS)


def _r_timer(id_: int) -> Callable[[Any], None]:
    return lambda b: retry.add_retry_timer_events(b, id_)


def _two_out_of_order(b: Any) -> None:
    retry.add_two_retriable_events_completing_out_of_order(b, REASON, DETAILS)


def _retry_timer_due(interval_ms: int = 5000) -> Callable[[ReplayResult, list[HistoryEvent]], None]:
    """Every new retry timer fires ``firstRetryInterval`` after the episode's OrchestratorStarted."""

    def check(result: ReplayResult, history: list[HistoryEvent]) -> None:
        now = history[last_orchestrator_started(history)].timestamp
        timers = [d for d, _ in result.decisions if isinstance(d, CreateTimer)]
        assert timers
        for decision in timers:
            assert decision.fire_at == now + timedelta(milliseconds=interval_ms)

    return check


def _inputs(*expected: tuple[int, str]) -> Callable[[ReplayResult, list[HistoryEvent]], None]:
    """The new activities carry these (id, df_dumps input) pairs."""

    def check(result: ReplayResult, history: list[HistoryEvent]) -> None:
        got = [(d.task_id, d.input) for d, _ in result.decisions if isinstance(d, ScheduleActivity)]
        assert got == [(i, json.dumps(v)) for i, v in expected]

    return check


def _out_of_order_prefix(stage: int) -> Callable[[Any], None]:
    """Prefixes of ``add_two_retriable_events_completing_out_of_order`` (its builder calls, cut short)."""

    def build(b: Any) -> None:
        b.add_task_scheduled_event(name="Hello", id_=0)  # Tokyo
        b.add_task_scheduled_event(name="Hello", id_=1)  # Seattle
        b.add_orchestrator_completed_event()
        b.add_orchestrator_started_event()
        b.add_task_failed_event(id_=1, reason=REASON, details=DETAILS)  # Seattle fails first
        if stage == 1:
            return
        fire_at_1 = b.add_timer_created_event(2)  # Seattle's timer
        b.add_orchestrator_completed_event()
        b.add_orchestrator_started_event()
        b.add_task_failed_event(id_=0, reason=REASON, details=DETAILS)  # then Tokyo
        if stage == 2:
            return
        fire_at_2 = b.add_timer_created_event(3)  # Tokyo's timer
        b.add_orchestrator_completed_event()
        b.add_orchestrator_started_event()
        b.add_timer_fired_event(id_=2, fire_at=fire_at_1)
        b.add_timer_fired_event(id_=3, fire_at=fire_at_2)

    return build


RETRY = [
    Case("initial", _builder(), retry.generator_function, [(TS, 0, "Hello")], False),
    Case(
        "tokyo",
        _builder("x", _r_ok(0, TOKYO)),
        retry.generator_function,
        [(TS, 1, "Hello")],
        False,
        check=_inputs((1, "Seattle")),
    ),
    Case(
        "failed_tokyo_with_retry",
        _builder("x", _r_failed(0)),
        retry.generator_function,
        [(TC, 1, None)],
        False,
        check=_retry_timer_due(),
    ),
    Case(
        "failed_tokyo_with_timer_entry",
        _builder("x", _r_failed(0), _r_timer(1)),
        retry.generator_function,
        [(TS, 2, "Hello")],
        False,
        check=_inputs((2, "Tokyo")),
    ),
    Case(
        "failed_tokyo_with_failed_retry",
        _builder("x", _r_failed(0), _r_timer(1), _r_failed(2)),
        retry.generator_function,
        [(TC, 3, None)],
        False,
        check=_retry_timer_due(),
    ),
    Case(
        "failed_tokyo_with_failed_retry_timer_added",
        _builder("x", _r_failed(0), _r_timer(1), _r_failed(2), _r_timer(3)),
        retry.generator_function,
        [(TS, 4, "Hello")],
        False,
    ),
    Case(
        "successful_tokyo_with_failed_retry_timer_added",
        _builder("x", _r_failed(0), _r_timer(1), _r_ok(2, TOKYO)),
        retry.generator_function,
        [(TS, 3, "Hello")],
        False,
        check=_inputs((3, "Seattle")),
    ),
    # The last allowed attempt failed: DTFx still creates one more timer before the failure surfaces.
    Case(
        "failed_tokyo_last_attempt_extra_timer",
        _builder("x", _r_failed(0), _r_timer(1), _r_failed(2), _r_timer(3), _r_failed(4)),
        retry.generator_function,
        [(TC, 5, None)],
        False,
        check=_retry_timer_due(),
    ),
    Case(
        "failed_tokyo_hit_max_attempts",
        _builder("x", _r_failed(0), _r_timer(1), _r_failed(2), _r_timer(3), _r_failed(4), _r_timer(5)),
        retry.generator_function,
        [],
        True,
        ("failed", SDK_ERROR),
    ),
    Case(
        "failed_tokyo_hit_max_attempts_in_try_catch",
        _builder(
            "x",
            _r_failed(0),
            _r_timer(1),
            _r_failed(2),
            _r_timer(3),
            _r_failed(4),
            _r_timer(5),
            _r_ok(6, SEATTLE),
        ),
        retry.generator_function_try_catch,
        [],
        True,
        ("done", "Hello Seattle!"),
    ),
    Case(
        "failed_tokyo_hit_max_attempts_in_try_catch_next",
        _builder("x", _r_failed(0), _r_timer(1), _r_failed(2), _r_timer(3), _r_failed(4), _r_timer(5)),
        retry.generator_function_try_catch,
        [(TS, 6, "Hello")],
        False,
        check=_inputs((6, "Seattle")),
    ),
    Case(
        "concurrent_retriable_results",
        _builder(
            "x",
            _r_failed(0),
            _r_failed(1),
            _r_failed(2),
            _r_timer(3),
            _r_timer(4),
            _r_timer(5),
            _r_ok(6, TOKYO),
            _r_ok(7, SEATTLE),
            _r_ok(8, LONDON),
        ),
        retry.generator_function_concurrent_retries,
        [],
        True,
        ("done", THREE),
    ),
    Case(
        "concurrent_retriable_results_unordered_arrival",
        _builder(
            "x",
            _r_failed(0),
            _r_failed(1),
            _r_failed(2),
            _r_timer(3),
            _r_timer(4),
            _r_timer(5),
            _r_ok(8, LONDON),
            _r_ok(6, TOKYO),
            _r_ok(7, SEATTLE),
        ),
        retry.generator_function_concurrent_retries,
        [],
        True,
        ("done", THREE),
    ),
    Case(
        "concurrent_retriable_results_mixed_arrival",
        _builder(
            "x",
            _r_failed(1),
            _r_ok(0, TOKYO),
            _r_failed(2),
            _r_timer(3),
            _r_timer(4),
            _r_ok(6, LONDON),
            _r_ok(5, SEATTLE),
        ),
        retry.generator_function_concurrent_retries,
        [],
        True,
        ("done", THREE),
    ),
    Case(
        "concurrent_initial",
        _builder(),
        retry.generator_function_concurrent_retries,
        [(TS, 0, "Hello"), (TS, 1, "Hello"), (TS, 2, "Hello")],
        False,
        check=_inputs((0, "Tokyo"), (1, "Seattle"), (2, "London")),
    ),
    # The three timers of concurrent_retriable_results are 3, 4, 5 in failure order; the re-runs 6, 7, 8.
    Case(
        "concurrent_three_timers_fired",
        _builder("x", _r_failed(0), _r_failed(1), _r_failed(2), _r_timer(3), _r_timer(4), _r_timer(5)),
        retry.generator_function_concurrent_retries,
        [(TS, 6, "Hello"), (TS, 7, "Hello"), (TS, 8, "Hello")],
        False,
        check=_inputs((6, "Tokyo"), (7, "Seattle"), (8, "London")),
    ),
    Case(
        "alternating_taskIDs_when_all",
        _builder("x", _two_out_of_order),
        retry.generator_function_two_concurrent_retries_when_all,
        [],
        True,
        ("done", ["Hello Tokyo!", "Hello Seattle!"]),
    ),
    Case(
        "alternating_taskIDs_when_any",
        _builder("x", _two_out_of_order),
        retry.generator_function_two_concurrent_retries_when_any,
        [],
        True,
        ("done", "Hello Seattle!"),
    ),
    # The same history, cut after each episode: Seattle (task 1) fails first -> timer 2; Tokyo -> timer 3;
    # both timers fired -> Seattle re-runs as 4, Tokyo as 5.
    Case(
        "alternating_seattle_fails_first",
        _builder("x", _out_of_order_prefix(1)),
        retry.generator_function_two_concurrent_retries_when_all,
        [(TC, 2, None)],
        False,
    ),
    Case(
        "alternating_tokyo_fails_second",
        _builder("x", _out_of_order_prefix(2)),
        retry.generator_function_two_concurrent_retries_when_all,
        [(TC, 3, None)],
        False,
    ),
    Case(
        "alternating_both_timers_fired",
        _builder("x", _out_of_order_prefix(3)),
        retry.generator_function_two_concurrent_retries_when_all,
        [(TS, 4, "Hello"), (TS, 5, "Hello")],
        False,
        check=_inputs((4, "Seattle"), (5, "Tokyo")),
    ),
    Case(
        "alternating_both_timers_fired_when_any",
        _builder("x", _out_of_order_prefix(3)),
        retry.generator_function_two_concurrent_retries_when_any,
        [(TS, 4, "Hello"), (TS, 5, "Hello")],
        False,
        check=_inputs((4, "Seattle"), (5, "Tokyo")),
    ),
]


# test_create_timer.py ----------------------------------------------------------------------------------


def _timer_fired(id_: int, timestamp: str) -> Callable[[Any], None]:
    return lambda b: timer.add_timer_fired_events(b, id_, timestamp)


def _cancellable_timers(b: Any) -> None:
    fire_at1 = b.current_datetime + timedelta(minutes=5)
    fire_at2 = b.current_datetime + timedelta(minutes=10)
    timer.add_timer_fired_events(b, 0, str(fire_at1))
    timer.add_timer_fired_events(b, 1, str(fire_at2))


def _fires_at(*expected: tuple[int, datetime]) -> Callable[[ReplayResult, list[HistoryEvent]], None]:
    def check(result: ReplayResult, history: list[HistoryEvent]) -> None:
        got = [(d.task_id, d.fire_at) for d, _ in result.decisions if isinstance(d, CreateTimer)]
        assert got == list(expected)
        for decision, event in result.decisions:
            assert parse_timestamp(event.get("FireAt")) == decision.fire_at

    return check


def _first_timers(result: ReplayResult, history: list[HistoryEvent]) -> None:
    now = history[last_orchestrator_started(history)].timestamp
    got = [(d.task_id, d.fire_at - now) for d, _ in result.decisions]
    assert got == [(0, timedelta(minutes=5)), (1, timedelta(minutes=10))]


TIMERS = [
    Case(
        "initial",
        _builder(),
        timer.generator_function,
        [(TC, 0, None)],
        False,
        check=_fires_at((0, datetime(2020, 7, 23, 21, 56, 54, 936700, tzinfo=timezone.utc))),
    ),
    Case(
        "timers_comparison_with_relaxed_precision",
        _builder("x", _timer_fired(0, "2020-07-23T21:56:54.9367Z")),
        timer.generator_function,
        [],
        True,
        ("done", "Done!"),
    ),
    Case(
        "timers_can_be_cancelled_initial",
        _builder(),
        timer.generator_function_timer_can_be_cancelled,
        [(TC, 0, None), (TC, 1, None)],
        False,
        check=_first_timers,
    ),
    # The second timer is cancelled by the code once the first fires; its later TimerFired is ignored.
    Case(
        "timers_can_be_cancelled",
        _builder("x", _cancellable_timers),
        timer.generator_function_timer_can_be_cancelled,
        [],
        True,
        ("done", "Done!"),
    ),
]


# test_sub_orchestrator.py / test_sub_orchestrator_with_retry.py -----------------------------------------


def _sub_ok(module: Any, id_: int, result: str) -> Callable[[Any], None]:
    return lambda b: module.add_hello_suborch_completed_events(b, id_, result)


def _sub_failed(id_: int) -> Callable[[Any], None]:
    return lambda b: sub_retry.add_hello_suborch_failed_events(b, id_, REASON, DETAILS)


def _sub_timer(id_: int) -> Callable[[Any], None]:
    return lambda b: sub_retry.add_retry_timer_events(b, id_)


def _default_sub_instance(task_id: int) -> Callable[[ReplayResult, list[HistoryEvent]], None]:
    """Without an instance id, DTFx names the child ``<parent execution id>:<task id>``."""

    def check(result: ReplayResult, history: list[HistoryEvent]) -> None:
        ((decision, event),) = result.decisions
        assert isinstance(decision, StartSubOrchestration)
        expected = f"{execution_of(history).execution_id}:{task_id}"
        assert decision.instance_id == expected
        assert event.get("InstanceId") == expected

    return check


HSO = "HelloSubOrchestrator"
SUB_ORCHESTRATORS = [
    Case("initial", _builder(), sub.generator_function, [(SUB, 0, HSO)], False, check=_default_sub_instance(0)),
    Case(
        "tokyo",
        _builder("x", _sub_ok(sub, 0, TOKYO)),
        sub.generator_function,
        [(SUB, 1, HSO)],
        False,
        check=_default_sub_instance(1),
    ),
    Case(
        "tokyo_and_seattle_and_london_state",
        _builder("x", _sub_ok(sub, 0, TOKYO), _sub_ok(sub, 1, SEATTLE), _sub_ok(sub, 2, LONDON)),
        sub.generator_function,
        [],
        True,
        ("done", THREE),
    ),
    Case(
        "call_suborchestrator_by_name",
        _builder("x", _sub_ok(sub, 0, TOKYO), _sub_ok(sub, 1, SEATTLE), _sub_ok(sub, 2, LONDON)),
        sub.generator_function_call_by_function_name,
        [],
        True,
        ("done", THREE),
    ),
    Case(
        "retry_tokyo_and_seattle_and_london_state",
        _builder("x", _sub_ok(sub_retry, 0, TOKYO), _sub_ok(sub_retry, 1, SEATTLE), _sub_ok(sub_retry, 2, LONDON)),
        sub_retry.generator_function,
        [],
        True,
        ("done", THREE),
    ),
    Case(
        "retry_seattle_failed",
        _builder("x", _sub_ok(sub_retry, 0, TOKYO), _sub_failed(1)),
        sub_retry.generator_function,
        [(TC, 2, None)],
        False,
        check=_retry_timer_due(),
    ),
    Case(
        "retry_seattle_timer_fired",
        _builder("x", _sub_ok(sub_retry, 0, TOKYO), _sub_failed(1), _sub_timer(2)),
        sub_retry.generator_function,
        [(SUB, 3, HSO)],
        False,
        check=_default_sub_instance(3),
    ),
    Case(
        "retry_partial_failure",
        _builder(
            "x",
            _sub_ok(sub_retry, 0, TOKYO),
            _sub_failed(1),
            _sub_timer(2),
            _sub_ok(sub_retry, 3, SEATTLE),
            _sub_ok(sub_retry, 4, LONDON),
        ),
        sub_retry.generator_function,
        [],
        True,
        ("done", THREE),
    ),
    Case(
        "retry_last_attempt_extra_timer",
        _builder("x", _sub_failed(0), _sub_timer(1), _sub_failed(2), _sub_timer(3), _sub_failed(4)),
        sub_retry.generator_function,
        [(TC, 5, None)],
        False,
    ),
    Case(
        "retry_all_failed",
        _builder("x", _sub_failed(0), _sub_timer(1), _sub_failed(2), _sub_timer(3), _sub_failed(4), _sub_timer(5)),
        sub_retry.generator_function,
        [],
        True,
        ("failed", SDK_ERROR),
    ),
]


# test_task_any.py ----------------------------------------------------------------------------------------

TASK_ANY = [
    Case(
        "continues_on_zero_inner_tasks",
        lambda: ContextBuilder(),
        any_.generator_function_no_activity,
        [],
        True,
        ("done", "Done!"),
    ),
    Case(
        "continues_on_zero_results",
        lambda: ContextBuilder(),
        any_.generator_function,
        [(TS, 0, "Hello"), (TS, 1, "Hello"), (TS, 2, "Hello")],
        False,
    ),
    # The fixture records only task 0's TaskScheduled; DTFx would (re)send tasks 1 and 2 as new work.
    Case(
        "continues_on_one_failure",
        _builder("", lambda b: fan.add_failed_event(b, 0, "Hello", reason="", details="")),
        any_.generator_function,
        [(TS, 1, "Hello"), (TS, 2, "Hello")],
        True,
        ("done", "exception"),
    ),
    Case(
        "succeeds_on_one_result",
        _builder("", lambda b: fan.add_completed_event(b, 0, "Hello", result="1")),
        any_.generator_function,
        [(TS, 1, "Hello"), (TS, 2, "Hello")],
        True,
        ("done", "1"),
    ),
]


# test_entity.py ------------------------------------------------------------------------------------------


def _entity_done(op: str, value: Any, event_id: int, **kwargs: Any) -> Callable[[Any], None]:
    return lambda b: entity.add_call_entity_completed_events(b, op, COUNTER, value, event_id, **kwargs)


def _entity_requests(*expected: tuple[str, bool, Any]) -> Callable[[ReplayResult, list[HistoryEvent]], None]:
    """(op, is signal, SDK input) of each new entity message, and the request's addressing."""

    def check(result: ReplayResult, history: list[HistoryEvent]) -> None:
        ref = execution_of(history)
        got = []
        for decision, event in result.decisions:
            assert isinstance(decision, SendEntityMessage)
            request = decision.request
            assert json.loads(event.get("Input")) == request
            assert (request["parent"], request["parentExecution"]) == (ref.instance_id, ref.execution_id)
            payload = None if request["input"] is None else json.loads(json.loads(request["input"]))
            got.append((request["op"], request["signal"], payload))
        assert got == list(expected)

    return check


ENTITIES = [
    Case(
        "call_entity_sent",
        _builder(),
        entity.generator_function_call_entity,
        [(SENT, 0, COUNTER)],
        False,
        check=_entity_requests(("add", False, 3)),
    ),
    Case(
        "signal_entity_sent",
        _builder(),
        entity.generator_function_signal_entity,
        [(SENT, 0, COUNTER), (SENT, 1, COUNTER)],
        False,
        check=_entity_requests(("add", True, 3), ("get", False, None)),
    ),
    # The fixture records only the call's EventSent (id 1), not the signal's (id 0): DTFx would send it again.
    Case(
        "signal_entity_sent_and_response_received",
        _builder("x", _entity_done("get", 3, 1)),
        entity.generator_function_signal_entity,
        [(SENT, 0, COUNTER)],
        True,
        ("done", [3]),
        check=_entity_requests(("add", True, 3)),
    ),
    Case(
        "call_entity_raised",
        _builder("x", _entity_done("add", 3, 0)),
        entity.generator_function_call_entity,
        [],
        True,
        ("done", [3]),
    ),
    Case(
        "call_entity_catch_exception",
        _builder("x", _entity_done("add", "I am an error!", 0, is_error=True)),
        entity.generator_function_catch_entity_exception,
        [],
        True,
        ("done", "Exception thrown"),
    ),
    Case(
        "timeout_entity_catch_exception",
        _builder(
            "x",
            _entity_done(
                "add",
                "Timeout value of 00:02:00 was exceeded by function: Functions.SlowEntity.",
                0,
                literal_input=True,
            ),
        ),
        entity.generator_function_catch_entity_exception,
        [],
        True,
        ("done", "Exception thrown"),
    ),
]


# test_continue_as_new.py ---------------------------------------------------------------------------------


def _continues_as_new(result: ReplayResult, history: list[HistoryEvent]) -> None:
    assert result.continue_as_new == (True, json.dumps("Cause I can"))


def _does_not_continue(result: ReplayResult, history: list[HistoryEvent]) -> None:
    assert result.continue_as_new == (False, None)


CONTINUE_AS_NEW = [
    Case("initial", _builder(), can.generator_function, [(TS, 0, "Hello")], False, check=_does_not_continue),
    Case(
        "tokyo",
        _builder("x", lambda b: can.add_hello_completed_events(b, 0, TOKYO)),
        can.generator_function,
        [],
        True,
        ("done", None),
        check=_continues_as_new,
    ),
]


# test_fan_out_fan_in.py ----------------------------------------------------------------------------------


def _count(b: Any) -> None:
    fan.add_completed_event(b, 0, "GetActivityCount", 5)


def _parrots(failed_index: int = -1) -> Callable[[Any], None]:
    return lambda b: fan.add_completed_task_set_events(b, 1, "ParrotValue", 5, failed_index, REASON, DETAILS)


FAN_OUT = [
    Case("initial_call", _builder(), fan.generator_function, [(TS, 0, "GetActivityCount")], False),
    Case(
        "get_activity_count_success",
        _builder("x", _count),
        fan.generator_function,
        [(TS, i, "ParrotValue") for i in range(1, 6)],
        False,
        check=_inputs(*((i + 1, str(i)) for i in range(5))),
    ),
    Case(
        "parrot_value_success",
        _builder("x", _count, _parrots()),
        fan.generator_function,
        [(TS, 6, "ShowMeTheSum")],
        False,
        check=_inputs((6, [0, 1, 2, 3, 4])),
    ),
    Case(
        "show_me_the_sum_success",
        _builder(
            "x",
            _count,
            _parrots(),
            lambda b: fan.add_completed_event(b, 6, "ShowMeTheSum", "Well that's nice 10!"),
        ),
        fan.generator_function,
        [],
        True,
        ("done", "Well that's nice 10!"),
    ),
    Case(
        "failed_parrot_value",
        _builder("x", _count, _parrots(2)),
        fan.generator_function,
        [],
        True,
        ("failed", SDK_ERROR),
    ),
]


# test_external_event.py ----------------------------------------------------------------------------------

PAYLOAD = '{"test":"somecontent"}'


def _raised(*names: str, payload: str = PAYLOAD) -> Callable[[Any], None]:
    def build(b: Any) -> None:
        for name in names:
            b.add_event_raised_event(name, input_=payload, timestamp=datetime.now(), id_=-1)

    return build


EXTERNAL_EVENTS = [
    Case("continue_when_no_payload", lambda: ContextBuilder(), ext.generator_function, [], False),
    Case(
        "succeeds_on_payload",
        _builder("", _raised("A")),
        ext.generator_function,
        [],
        True,
        ("done", {"test": "somecontent"}),
    ),
    Case(
        "succeeds_on_out_of_order_payload",
        _builder("", _raised("B", "A")),
        ext.generator_function_multiple,
        [],
        True,
        ("done", {"test": "somecontent"}),
    ),
    Case("waits_for_second_event", _builder("", _raised("B")), ext.generator_function_multiple, [], False),
    Case(
        "external_event_with_expected_type",
        _builder("", _raised("A", payload=df_dumps(ext._Payload("hello")))),
        ext.generator_function_with_expected_type,
        [],
        True,
        ("done", "hello"),
    ),
]


ALL = {
    "sequential": SEQUENTIAL,
    "retry": RETRY,
    "timer": TIMERS,
    "sub": SUB_ORCHESTRATORS,
    "task_any": TASK_ANY,
    "entity": ENTITIES,
    "continue_as_new": CONTINUE_AS_NEW,
    "fan_out": FAN_OUT,
    "external_event": EXTERNAL_EVENTS,
}
PARAMS = [
    pytest.param(case, id=f"{group}-{case.id}", marks=case.marks) for group, cases in ALL.items() for case in cases
]


@pytest.mark.parametrize("case", PARAMS)
def test_shim_replay_matches_sdk_fixture(case: Case) -> None:
    builder = case.build()
    state, raised = run_sdk(case.orchestrator, builder)

    # The SDK's verdict on this history (it looks tasks up by the ids in it).
    if case.sdk == "running":
        assert not raised and not state.get("isDone"), state
    else:
        verdict, value = case.sdk
        if verdict == "done":
            assert not raised and state.get("isDone") is True, state
            assert state.get("output") == value
        else:
            assert raised and state.get("error") == value, state

    history = history_from_context_builder(builder)
    result = replay(state, history)  # raises NonDeterminismError on any unmatched recorded event
    assert summary(result) == case.decisions
    assert result.walk_finished is case.finished
    if case.check is not None:
        case.check(result, history)


def test_fixture_modules_come_from_the_sdk_wheel() -> None:
    """``tests.orchestrator`` resolves into the azure-functions-durable wheel, not into our tests/ dir."""
    assert "site-packages" in str(seq.__file__)
    assert seq.__name__ == "tests.orchestrator.test_sequential_orchestrator"


# Negative: the recorded history disagrees with the code --------------------------------------------------


def _sequential_history(*steps: Callable[[Any], Any]) -> tuple[dict[str, Any], list[HistoryEvent]]:
    builder = _builder("x", *steps)()
    state, _ = run_sdk(seq.generator_function, builder)
    return state, history_from_context_builder(builder)


def test_recorded_activity_name_mismatch_is_non_deterministic() -> None:
    builder = _builder("x", lambda b: seq.add_hello_completed_events(b, 0, TOKYO, activity_name="Goodbye"))()
    state, _ = run_sdk(seq.generator_function, builder)
    with pytest.raises(NonDeterminismError, match="Non-Deterministic") as info:
        replay(state, history_from_context_builder(builder))
    assert "Goodbye" in str(info.value) and "Hello" in str(info.value)


@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion for TaskId. 1:UserWarning")
def test_recorded_sequence_id_mismatch_is_non_deterministic() -> None:
    # The code scheduled task 0, but the history says it scheduled task 1 (and completed it); the SDK
    # itself only warns about the completion of a task it never scheduled.
    state, history = _sequential_history(lambda b: seq.add_hello_completed_events(b, 1, TOKYO))
    with pytest.raises(NonDeterminismError, match="sequence ID 1"):
        replay(state, history)


def test_recorded_event_type_mismatch_is_non_deterministic() -> None:
    # The code schedules an activity as task 0; the history recorded a durable timer there.
    state, history = _sequential_history(lambda b: timer.add_timer_fired_events(b, 0, "2020-07-23T21:56:54.9367Z"))
    with pytest.raises(NonDeterminismError, match="durable timer with sequence ID 0"):
        replay(state, history)


def test_recorded_work_the_code_no_longer_schedules_is_non_deterministic() -> None:
    # History: Tokyo(0) then Seattle(1) done. New code stops after Tokyo and sets a timer instead.
    def changed(context: Any) -> Any:
        yield context.call_activity("Hello", "Tokyo")
        yield context.create_timer(context.current_utc_datetime)
        return "changed"

    builder = _builder(
        "x",
        lambda b: seq.add_hello_completed_events(b, 0, TOKYO),
        lambda b: seq.add_hello_completed_events(b, 1, SEATTLE),
    )()
    state, _ = run_sdk(changed, builder)
    with pytest.raises(NonDeterminismError, match="activity task with sequence ID 1"):
        replay(state, history_from_context_builder(builder))


def test_entity_call_rekeys_response_to_recorded_request_id() -> None:
    """The response waiter follows the request id the history recorded (the fixture uses ``0000``)."""
    builder = _builder("x", _entity_done("add", 3, 0))()
    state, _ = run_sdk(entity.generator_function_call_entity, builder)
    history = history_from_context_builder(builder)
    assert json.loads(history[2].get("Input"))["id"] == "0000"
    result = replay(state, history)
    assert result.walk_finished and result.decisions == []
