"""The extension's out-of-proc orchestrator shim, re-enacted in Python. Pure: no I/O, no wall clock.

The Python SDK returns the whole list of actions since the execution started. The Durable
extension replays that list through DTFx: it walks the actions in order, awaiting each, while DTFx
feeds it the history one event at a time. Sequence numbers (task ids) are handed out in the order
those .NET continuations run, so the only faithful way to number new work is to re-run that walk.
This module does so with a tiny deterministic scheduler: futures whose continuations run inline,
as DTFx's synchronous task scheduler runs them.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ._durable_http import HTTP_ACTIVITY, header_value, normalize_request, poll_request, request_json
from ._history import EventType, HistoryEvent, format_timestamp, parse_timestamp

# Action types of the SDK's out-of-proc schema.
CALL_ACTIVITY = 0
CALL_ACTIVITY_WITH_RETRY = 1
CALL_SUB_ORCHESTRATOR = 2
CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
CONTINUE_AS_NEW = 4
CREATE_TIMER = 5
WAIT_FOR_EXTERNAL_EVENT = 6
CALL_ENTITY = 7
CALL_HTTP = 8
SIGNAL_ENTITY = 9
SCHEDULED_SIGNAL_ENTITY = 10
WHEN_ANY = 11
WHEN_ALL = 12

# RetryOptions defaults of the extension for what the Python SDK does not send.
_MAX_RETRY_INTERVAL = timedelta(days=6)
# Action kinds DurableOrchestrationContext counts against maxOrchestrationActions
# (IncrementActionsOrThrowException: activities, sub-orchestrations, timers, entity messages).
_COUNTED_ACTIONS = {
    CALL_ACTIVITY,
    CALL_ACTIVITY_WITH_RETRY,
    CALL_SUB_ORCHESTRATOR,
    CALL_SUB_ORCHESTRATOR_WITH_RETRY,
    CREATE_TIMER,
    CALL_ENTITY,
    SIGNAL_ENTITY,
    CALL_HTTP,
}
_GUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")


class NonDeterminismError(Exception):
    """The history records work that the current replay did not schedule the same way."""


class UnsupportedActionError(Exception):
    """The orchestrator asked for something this host does not implement."""


class _TaskFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _TaskCanceled(Exception):
    pass


_PENDING, _SUCCEEDED, _FAILED, _CANCELED = range(4)


class _Future:
    """A .NET Task stand-in whose continuations run inline, in registration order."""

    __slots__ = ("_callbacks", "state", "value")

    def __init__(self) -> None:
        self.state = _PENDING
        self.value: Any = None
        self._callbacks: list[Callable[[], None]] = []

    @property
    def done(self) -> bool:
        return self.state != _PENDING

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        if self.done:
            callback()
        else:
            self._callbacks.append(callback)

    def _finish(self, state: int, value: Any) -> bool:
        if self.done:
            return False
        self.state, self.value = state, value
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
        return True

    def set_result(self, value: Any) -> bool:
        return self._finish(_SUCCEEDED, value)

    def set_failed(self, reason: str) -> bool:
        return self._finish(_FAILED, reason)

    def cancel(self) -> bool:
        return self._finish(_CANCELED, None)

    def __await__(self) -> Generator[_Future, None, Any]:
        if not self.done:
            yield self
        if self.state == _FAILED:
            raise _TaskFailed(str(self.value))
        if self.state == _CANCELED:
            raise _TaskCanceled()
        return self.value


def _spawn(coro: Coroutine[Any, Any, Any]) -> _Future:
    """Run a coroutine until its first pending await, like calling a .NET async method."""
    result = _Future()

    def step() -> None:
        try:
            awaited = coro.send(None)
        except StopIteration as stop:
            result.set_result(stop.value)
        except _TaskFailed as failure:
            result.set_failed(failure.reason)
        except _TaskCanceled:
            result.cancel()
        else:
            awaited.add_done_callback(step)

    step()
    return result


def _failed(reason: str) -> _Future:
    future = _Future()
    future.set_failed(reason)
    return future


def _when_all(children: list[_Future]) -> _Future:
    """Task.WhenAll: completes once every child has, faulted if any child faulted."""
    result = _Future()
    remaining = [len(children)]

    def child_done() -> None:
        remaining[0] -= 1
        if remaining[0] == 0:
            failed = [c for c in children if c.state == _FAILED]
            if failed:
                result.set_failed(str(failed[0].value))
            elif any(c.state == _CANCELED for c in children):
                result.cancel()
            else:
                result.set_result([c.value for c in children])

    if not children:
        result.set_result([])
    for child in children:
        child.add_done_callback(child_done)
    return result


def _when_any(children: list[_Future]) -> _Future:
    """Task.WhenAny: completes (never faults) with the first child to finish."""
    result = _Future()

    def first_done(child: _Future) -> Callable[[], None]:
        def callback() -> None:
            result.set_result(child)

        return callback

    for child in children:
        child.add_done_callback(first_done(child))
    return result


# What one episode decides -------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleActivity:
    """An activity to run; ``input`` is the SDK's ``df_dumps`` text (the HTTP activity: the request JSON)."""

    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class CreateTimer:
    task_id: int
    fire_at: datetime


@dataclass(frozen=True)
class StartSubOrchestration:
    task_id: int
    name: str
    instance_id: str
    version: str | None
    input: str | None


@dataclass(frozen=True)
class SendEntityMessage:
    task_id: int
    target: str
    request: dict[str, Any]


Decision = ScheduleActivity | CreateTimer | StartSubOrchestration | SendEntityMessage


@dataclass
class ReplayResult:
    """The new decisions of an episode, and whether the shim finished walking the actions."""

    decisions: list[tuple[Decision, HistoryEvent]] = field(default_factory=list)
    walk_finished: bool = False
    continue_as_new: tuple[bool, Any] = (False, None)
    # Things the extension would swallow silently that the local host reports in its log.
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InstanceRef:
    instance_id: str
    execution_id: str


class ShimReplay:
    """Replays one execution's actions against its history, as the extension's shim does.

    Args:
        instance: The instance and execution replayed.
        actions: Every action the SDK returned, in order.
        default_version: host.json ``defaultVersion``, for sub-orchestrations started without a version.
        http_poll_interval: The wait between polls of a 202 answer without ``Retry-After``.
        max_actions: ``maxOrchestrationActions``.
    """

    def __init__(
        self,
        instance: InstanceRef,
        actions: list[dict[str, Any]],
        *,
        default_version: str | None = None,
        http_poll_interval: timedelta = timedelta(seconds=30),
        max_actions: int = 100_000,
    ) -> None:
        self._instance = instance
        self._actions = actions
        self._default_version = default_version
        self._http_poll_interval = http_poll_interval
        self._max_actions = max_actions
        self._action_count = 0
        self._warnings: list[str] = []
        self._next_id = 0
        self._guid_counter = 0
        self._now: datetime | None = None
        # Work scheduled by the walk whose history event has not been seen yet, by sequence id.
        self._unmatched: dict[int, tuple[Decision, HistoryEvent]] = {}
        self._open: dict[int, _Future] = {}
        # Waiters per event name form a stack (the extension's choice); early events a queue.
        self._waiters: dict[str, list[_Future]] = {}
        self._buffered: dict[str, deque[Any]] = {}
        self._walk: _Future | None = None
        self._continue_as_new: tuple[bool, Any] = (False, None)

    # Driving -------------------------------------------------------------------------------------

    def run(self, history: list[HistoryEvent], new_from: int) -> ReplayResult:
        """Feed the whole history; events from index ``new_from`` are this episode's new ones."""
        for index, event in enumerate(history):
            self._apply(event, is_new=index >= new_from)
        result = ReplayResult()
        result.decisions = [self._unmatched[i] for i in sorted(self._unmatched)]
        result.walk_finished = self._walk is not None and self._walk.done
        result.continue_as_new = self._continue_as_new
        result.warnings = list(self._warnings)
        return result

    def _apply(self, event: HistoryEvent, *, is_new: bool) -> None:
        kind = event.type
        if kind == EventType.ORCHESTRATOR_STARTED:
            self._now = event.timestamp
        elif kind == EventType.EXECUTION_STARTED:
            if self._now is None:
                self._now = event.timestamp
            self._walk = _spawn(self._walk_actions())
        elif kind in _DECISION_EVENTS:
            self._match_decision(event, is_new=is_new)
        elif kind in (EventType.TASK_COMPLETED, EventType.SUB_ORCHESTRATION_COMPLETED):
            future = self._open.pop(int(event.get("TaskScheduledId")), None)
            if future is not None:
                future.set_result(event.get("Result"))
        elif kind in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_FAILED):
            future = self._open.pop(int(event.get("TaskScheduledId")), None)
            if future is not None:
                future.set_failed(str(event.get("Reason") or ""))
        elif kind == EventType.TIMER_FIRED:
            # A cancelled timer is no longer open, so its late firing is ignored, as in DTFx.
            future = self._open.pop(int(event.get("TimerId")), None)
            if future is not None:
                future.set_result(None)
        elif kind == EventType.EVENT_RAISED:
            self._raise_event(str(event.get("Name")), event.get("Input"))
        # Every other event type carries nothing the walk waits on.

    def _match_decision(self, event: HistoryEvent, *, is_new: bool) -> None:
        recorded = self._unmatched.pop(event.event_id, None)
        expected_type = _DECISION_EVENTS[event.type]
        if recorded is None or not isinstance(recorded[0], expected_type):
            what = {
                EventType.TASK_SCHEDULED: "an activity task",
                EventType.TIMER_CREATED: "a durable timer",
                EventType.SUB_ORCHESTRATION_CREATED: "a sub-orchestration",
                EventType.EVENT_SENT: "an event or entity operation",
            }[event.type]
            name = event.get("Name") or event.get("InstanceId") or ""
            raise NonDeterminismError(
                f"Non-Deterministic workflow detected: A previous execution of this orchestration scheduled "
                f"{what} with sequence ID {event.event_id} and name '{name}', but the current replay "
                "execution hasn't (yet?) scheduled this task. Was a change made to the orchestrator code "
                "after this instance had already started running?"
            )
        decision = recorded[0]
        if isinstance(decision, ScheduleActivity) and event.get("Name") != decision.name:
            raise NonDeterminismError(
                f"Non-Deterministic workflow detected: sequence ID {event.event_id} was activity "
                f"'{event.get('Name')}' in history but the replay scheduled '{decision.name}'."
            )
        if isinstance(decision, SendEntityMessage) and not decision.request.get("signal"):
            # Re-key the response waiter to the request id the history recorded.
            recorded_id = str(json.loads(str(event.get("Input")))["id"])
            if recorded_id != decision.request["id"]:
                self._rename_waiter(str(decision.request["id"]), recorded_id)

    # The shim's walk ------------------------------------------------------------------------------

    async def _walk_actions(self) -> None:
        for action in self._actions:
            task = self._invoke(action)
            if task is None:
                continue
            # The extension awaits each action in turn. A failed task whose exception the Python
            # code caught must not stop the walk, or the code after the except would never run.
            with contextlib.suppress(_TaskFailed, _TaskCanceled):
                await task

    def _invoke(self, action: dict[str, Any]) -> _Future | None:
        kind = int(action["actionType"])
        if kind in _COUNTED_ACTIONS:
            exceeded = self._count_action()
            if exceeded is not None:
                return _failed(exceeded)
        if kind == CALL_ACTIVITY:
            return self._schedule_activity(action)
        if kind == CALL_ACTIVITY_WITH_RETRY:
            return _spawn(self._with_retry(action, lambda: self._schedule_activity(action)))
        if kind == CALL_SUB_ORCHESTRATOR:
            return self._start_sub_orchestration(action)
        if kind == CALL_SUB_ORCHESTRATOR_WITH_RETRY:
            return _spawn(self._with_retry(action, lambda: self._start_sub_orchestration(action)))
        if kind == CREATE_TIMER:
            timer = self._create_timer(parse_timestamp(str(action["fireAt"])))
            if action.get("isCanceled"):
                self._cancel_timer(timer)
            return timer
        if kind == WAIT_FOR_EXTERNAL_EVENT:
            return self._wait_for_event(str(action["externalEventName"]))
        if kind == CALL_ENTITY:
            return self._send_entity(action, signal=False)
        if kind == SIGNAL_ENTITY:
            self._send_entity(action, signal=True)
            return None
        if kind == CONTINUE_AS_NEW:
            self._continue_as_new = (True, action.get("input"))
            return None
        if kind == WHEN_ALL:
            return _when_all([self._as_future(a) for a in action.get("compoundActions") or []])
        if kind == WHEN_ANY:
            return _when_any([self._as_future(a) for a in action.get("compoundActions") or []])
        if kind == CALL_HTTP:
            return _spawn(self._call_http(normalize_request(action.get("httpRequest"))))
        if kind == SCHEDULED_SIGNAL_ENTITY:
            raise UnsupportedActionError("scheduled entity signals are not supported by the local host")
        raise UnsupportedActionError(f"unknown orchestrator action type {kind}")

    def _as_future(self, action: dict[str, Any]) -> _Future:
        task = self._invoke(action)
        if task is None:
            done = _Future()
            done.set_result(None)
            return done
        return task

    async def _with_retry(self, action: dict[str, Any], attempt: Callable[[], _Future]) -> Any:
        # DTFx RetryInterceptor: after each failure, including the last, a timer is created first.
        options = action.get("retryOptions") or {}
        attempts = int(options.get("maxNumberOfAttempts", 1))
        first_interval = timedelta(milliseconds=int(options.get("firstRetryIntervalInMilliseconds", 0)))
        backoff = float(options.get("backoffCoefficient", 1.0))
        max_interval = (
            timedelta(milliseconds=int(options["maxRetryIntervalInMilliseconds"]))
            if ("maxRetryIntervalInMilliseconds" in options)
            else _MAX_RETRY_INTERVAL
        )
        last_reason = ""
        for retry_count in range(attempts):
            try:
                return await attempt()
            except _TaskFailed as failure:
                last_reason = failure.reason
            delay = min(first_interval * (backoff**retry_count), max_interval)
            if delay <= timedelta(0):
                break
            await self._create_timer(self._current_time() + delay)
        raise _TaskFailed(last_reason)

    async def _call_http(self, request: dict[str, Any]) -> Any:
        """``CallHttpAsync``: the built-in activity, then while it answers 202 and the request asked for
        the asynchronous pattern, a timer (``Retry-After`` seconds, else the configured sleep) and a GET
        of ``Location``. The Python SDK sees the first completion only (it numbers one task per call)."""
        response = await self._http_activity(request)
        while _status_code(response) == 202 and request["asynchronousPatternEnabled"]:
            headers = response.get("headers")
            retry_after = header_value(headers, "Retry-After")
            if retry_after is not None:
                try:
                    delay = timedelta(seconds=int(retry_after.strip()))
                except ValueError:
                    # int.Parse throws: the task faults and the shim's walk moves on.
                    raise _TaskFailed(f"The Retry-After header '{retry_after}' is not a number of seconds.") from None
            else:
                delay = self._http_poll_interval
            for _ in range(2):  # the timer and the next request each count as an action
                exceeded = self._count_action()
                if exceeded is not None:
                    raise _TaskFailed(exceeded)
            await self._create_timer(self._current_time() + delay)
            location = header_value(headers, "Location")
            if location is None:
                raise _TaskFailed("The given key 'Location' was not present in the dictionary.")
            response = await self._http_activity(poll_request(request, location))
        return response

    async def _http_activity(self, request: dict[str, Any]) -> dict[str, Any]:
        text = request_json(request)
        result = await self._schedule_activity_named(HTTP_ACTIVITY, text, event_input=f"[{text}]")
        try:
            response = json.loads(str(result))
        except ValueError:
            raise _TaskFailed("The HTTP activity returned a response that is not JSON.") from None
        if not isinstance(response, dict):
            raise _TaskFailed("The HTTP activity returned a response that is not a JSON object.")
        return response

    def _count_action(self) -> str | None:
        """``IncrementActionsOrThrowException``; the text of the failure once the limit is reached."""
        if self._action_count >= self._max_actions:
            message = (
                f"Maximum amount of orchestration actions ({self._max_actions}) has been reached. "
                "This value can be configured in host.json file as MaxOrchestrationActions."
            )
            # The extension faults the action's task, which its shim ignores: the orchestration waits.
            if message not in self._warnings:
                self._warnings.append(message)
            return message
        self._action_count += 1
        return None

    # DTFx context calls ---------------------------------------------------------------------------

    def _current_time(self) -> datetime:
        assert self._now is not None
        return self._now

    def _take_id(self) -> int:
        task_id = self._next_id
        self._next_id += 1
        return task_id

    def _record(self, decision: Decision, event: HistoryEvent) -> None:
        self._unmatched[decision.task_id] = (decision, event)

    def _schedule_activity(self, action: dict[str, Any]) -> _Future:
        raw_input = action.get("input")
        name = str(action["functionName"])
        return self._schedule_activity_named(name, raw_input, event_input=json.dumps([raw_input]))

    def _schedule_activity_named(self, name: str, raw_input: str | None, *, event_input: str) -> _Future:
        # ScheduleTask serializes its parameters array: the SDK's string, or the HTTP request object.
        task_id = self._take_id()
        decision = ScheduleActivity(task_id, name, raw_input)
        event = HistoryEvent(
            EventType.TASK_SCHEDULED,
            self._current_time(),
            task_id,
            {"Name": name, "Version": "", "Input": event_input},
        )
        self._record(decision, event)
        return self._open_future(task_id)

    def _start_sub_orchestration(self, action: dict[str, Any]) -> _Future:
        task_id = self._take_id()
        name = str(action["functionName"])
        instance_id = action.get("instanceId") or f"{self._instance.execution_id}:{task_id}"
        raw_input = action.get("input")
        # A version given in the call wins; else the app's defaultVersion now, not the parent's version
        # (Azure/azure-functions-durable-extension#3213; the SDK's orchestration_versioning sample).
        explicit = action.get("version")
        version = explicit if explicit is not None else self._default_version
        decision = StartSubOrchestration(task_id, name, instance_id, version, raw_input)
        event = HistoryEvent(
            EventType.SUB_ORCHESTRATION_CREATED,
            self._current_time(),
            task_id,
            {
                "Name": name,
                "Version": version or "",
                "InstanceId": instance_id,
                "Input": json.dumps(raw_input),
            },
        )
        self._record(decision, event)
        return self._open_future(task_id)

    def _create_timer(self, fire_at: datetime) -> _Future:
        task_id = self._take_id()
        event = HistoryEvent(
            EventType.TIMER_CREATED, self._current_time(), task_id, {"FireAt": format_timestamp(fire_at)}
        )
        self._record(CreateTimer(task_id, fire_at), event)
        return self._open_future(task_id)

    def _cancel_timer(self, timer: _Future) -> None:
        for task_id, future in list(self._open.items()):
            if future is timer:
                del self._open[task_id]
        timer.cancel()

    def _send_entity(self, action: dict[str, Any], *, signal: bool) -> _Future | None:
        request_id = self._new_guid()
        target = str(action["instanceId"])
        raw_input = action.get("input")
        request: dict[str, Any] = {
            "op": action.get("operation"),
            "signal": signal,
            "input": json.dumps(raw_input) if raw_input is not None else None,
            "id": request_id,
            "parent": self._instance.instance_id,
            "parentExecution": self._instance.execution_id,
        }
        task_id = self._take_id()
        event = HistoryEvent(
            EventType.EVENT_SENT,
            self._current_time(),
            task_id,
            {"InstanceId": target, "Name": "op", "Input": json.dumps(request, separators=(",", ":"))},
        )
        self._record(SendEntityMessage(task_id, target, request), event)
        if signal:
            return None
        response = self._wait_for_event(request_id)
        return _spawn(self._entity_result(response))

    async def _entity_result(self, response: _Future) -> Any:
        message = await response
        parsed = json.loads(message) if isinstance(message, str) else message
        if isinstance(parsed, dict) and parsed.get("exceptionType"):
            raise _TaskFailed(str(parsed.get("result")))
        return parsed

    def _new_guid(self) -> str:
        name = f"{self._instance.instance_id}_{format_timestamp(self._current_time())}_{self._guid_counter}"
        self._guid_counter += 1
        return str(uuid.uuid5(_GUID_NAMESPACE, name))

    def _open_future(self, task_id: int) -> _Future:
        future = _Future()
        self._open[task_id] = future
        return future

    # External events ------------------------------------------------------------------------------

    def _wait_for_event(self, name: str) -> _Future:
        key = name.lower()
        future = _Future()
        self._waiters.setdefault(key, []).append(future)
        buffered = self._buffered.get(key)
        if buffered:
            payload = buffered.popleft()
            if not buffered:
                del self._buffered[key]
            self._raise_event(name, payload)
        return future

    def _raise_event(self, name: str, payload: Any) -> None:
        key = name.lower()
        stack = self._waiters.get(key)
        if stack:
            future = stack.pop()
            if not stack:
                del self._waiters[key]
            future.set_result(payload)
        else:
            self._buffered.setdefault(key, deque()).append(payload)

    def _rename_waiter(self, old: str, new: str) -> None:
        stack = self._waiters.pop(old.lower(), None)
        if stack:
            self._waiters[new.lower()] = stack


def _status_code(response: dict[str, Any]) -> int | None:
    code = response.get("statusCode")
    return code if isinstance(code, int) else None


_DECISION_EVENTS: dict[EventType, type] = {
    EventType.TASK_SCHEDULED: ScheduleActivity,
    EventType.TIMER_CREATED: CreateTimer,
    EventType.SUB_ORCHESTRATION_CREATED: StartSubOrchestration,
    EventType.EVENT_SENT: SendEntityMessage,
}
