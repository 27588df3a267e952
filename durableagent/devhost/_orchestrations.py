"""Orchestration episodes: inbox + history → SDK invocation → shim replay → one atomic commit.

An episode takes every visible message of its instance (the extension's work item holds all of an
instance's pending messages). Its SQL runs on the event loop; its CPU work (decoding a history the
cache lacks, triage, encoding the context, decoding the SDK's answer, the shim's replay, encoding
the new events) runs in a worker thread, so dispatch and HTTP keep going during a long replay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from . import _history as h
from ._history import EventType, HistoryEvent, RuntimeStatus
from ._history_cache import CachedHistory, HistoryCache, encode_events, history_array
from ._replay import (
    CreateTimer,
    InstanceRef,
    NonDeterminismError,
    ScheduleActivity,
    SendEntityMessage,
    ShimReplay,
    StartSubOrchestration,
    UnsupportedActionError,
)
from ._store import (
    ACTIVITY,
    ENTITY,
    ORCHESTRATION,
    InstanceRecord,
    Message,
    NewMessage,
    TaskHubStore,
    to_datetime,
)
from ._versioning import VERSION_MISMATCH_ERROR_TYPE, VERSION_MISMATCH_MESSAGE, VersionCheck, Versioning

_log = logging.getLogger("durableagent.devhost.orchestrations")

_OOPROC_LABEL = "\n\n$OutOfProcData$:"
# visible_at of messages a suspended instance holds back: never due until the resume restores them.
_HELD = float("inf")
# DTFx's Azure Storage provider abandons a work item with this back-off: 2^dequeueCount seconds, at
# most 10 minutes (src/DurableTask.AzureStorage/Messaging/TaskHubQueue.cs, AbandonMessageAsync).
_ABANDON_MAX_SECONDS = 600
_COMPLETIONS = {
    EventType.TASK_COMPLETED,
    EventType.TASK_FAILED,
    EventType.SUB_ORCHESTRATION_COMPLETED,
    EventType.SUB_ORCHESTRATION_FAILED,
}

# Calls the orchestrator function by name with the context JSON; returns the state JSON or raises.
InvokeOrchestrator = Callable[[str, str], Awaitable[str]]


class UnknownFunctionError(Exception):
    """No orchestrator function of that name is registered."""


def orchestration_message(
    instance_id: str,
    event: HistoryEvent,
    execution_id: str | None,
    *,
    visible_at: float = 0.0,
    dedup_key: str | None = None,
) -> NewMessage:
    """A message that delivers ``event`` to an orchestration (``execution_id`` None: any execution)."""
    return NewMessage(
        ORCHESTRATION,
        instance_id,
        {"event": event.to_wire(), "execution": execution_id},
        visible_at,
        dedup_key,
    )


def new_execution_id() -> str:
    return uuid.uuid4().hex


def start_message(record: InstanceRecord, now: float, scheduled_start: float | None = None) -> NewMessage:
    parent = None
    if record.parent_instance_id:
        parent = {
            "OrchestrationInstance": {
                "InstanceId": record.parent_instance_id,
                "ExecutionId": record.parent_execution_id,
            },
            "TaskScheduleId": record.parent_task_id,
        }
    event = h.execution_started(
        to_datetime(now),
        instance_id=record.instance_id,
        execution_id=record.execution_id,
        name=record.name,
        version=record.version,
        input_json=record.input,
        parent=parent,
    )
    return orchestration_message(record.instance_id, event, record.execution_id, visible_at=scheduled_start or 0.0)


@dataclass
class _Episode:
    record: InstanceRecord
    consumed: list[int] = field(default_factory=list)
    new_events: list[HistoryEvent] = field(default_factory=list)
    outbound: list[NewMessage] = field(default_factory=list)
    reset_history: bool = False
    held: list[int] = field(default_factory=list)
    resumed: bool = False
    # Each of new_events' to_json(), computed with the rest of the episode's CPU work.
    new_event_json: list[str] | None = None


class OrchestrationWorker:
    """Runs one episode of one orchestration instance at a time (the dispatcher guarantees that).

    Args:
        store: The task hub.
        invoke: Calls the orchestrator function.
        clock: Seconds since the epoch.
        versioning: host.json ``defaultVersion`` and the match/failure strategies.
        http_poll_interval: ``httpSettings.defaultAsyncRequestSleepTimeMilliseconds``.
        max_actions: ``maxOrchestrationActions``.
    """

    def __init__(
        self,
        store: TaskHubStore,
        invoke: InvokeOrchestrator,
        clock: Callable[[], float],
        *,
        versioning: Versioning | None = None,
        http_poll_interval: timedelta = timedelta(seconds=30),
        max_actions: int = 100_000,
    ) -> None:
        self._store = store
        self._invoke = invoke
        self._clock = clock
        self._versioning = versioning or Versioning(match_strategy="None")
        self._http_poll_interval = http_poll_interval
        self._max_actions = max_actions
        self._rejected: set[str] = set()
        self._histories = HistoryCache()

    async def process(self, instance_id: str) -> None:
        now = self._clock()
        # Every visible message of the instance: one episode for all that arrived since the last one.
        inbox = self._store.ready_messages(ORCHESTRATION, now, target=instance_id, limit=None)
        if not inbox:
            return
        record = self._store.get_instance(instance_id)
        if record is None:
            self._drop(inbox, "no such instance")
            return
        # DTFx checks the instance's version before it runs anything of the work item, control
        # messages included (TaskOrchestrationDispatcher.OnProcessWorkItemAsync).
        check = None if record.status.is_terminal else self._versioning.check(record.version)
        if check is not None and not check.fails_instance:
            self._abandon(record, inbox, check, now)
            return
        try:
            history = await self._history(record)
            episode = _Episode(record)
            if check is not None:
                self._fail_version(episode, history, inbox, check)
            else:
                begun = await asyncio.to_thread(self._begin, episode, history, inbox, now)
                if begun is not None:
                    started, context_json = begun
                    state_json, failure = await self._call(episode.record, context_json)
                    await asyncio.to_thread(self._end, episode, history, started, state_json, failure, now)
            if episode.new_event_json is None:
                episode.new_event_json = encode_events(episode.new_events)
            self._commit(episode)
        except BaseException:
            self._histories.discard(instance_id)  # the next episode reads the history again
            raise
        self._remember(episode, history)

    # The history, from the cache or the task hub -------------------------------------------------

    async def _history(self, record: InstanceRecord) -> CachedHistory:
        length = self._store.history_length(record.instance_id)
        cached = self._histories.get(record.instance_id, record.execution_id, length)
        if cached is None:
            stored = self._store.get_history_json(record.instance_id)
            cached = await asyncio.to_thread(CachedHistory.decode, record.execution_id, stored)
        return cached

    def _remember(self, episode: _Episode, history: CachedHistory) -> None:
        """After the commit: the cached history gains the episode's events (finished instances leave)."""
        record = episode.record
        if episode.reset_history or record.status.is_terminal:
            self._histories.discard(record.instance_id)
            return
        assert episode.new_event_json is not None
        history.extend(episode.new_events, episode.new_event_json)
        self._histories.put(record.instance_id, history)

    # Which inbox messages this episode takes, and what it does with control messages -------------

    def _triage(self, episode: _Episode, history: CachedHistory, inbox: list[Message]) -> list[HistoryEvent] | None:
        record = episode.record
        now = to_datetime(self._clock())
        # Completions and timers this inbox delivers, on top of those the history already records.
        done_ids: set[int] = set()
        fired: set[int] = set()
        deliver: list[HistoryEvent] = []
        deliver_ids: list[int] = []
        status = record.status
        for message in inbox:
            event = HistoryEvent.from_wire(message.body["event"])
            execution = message.body.get("execution")
            if event.type == EventType.EXECUTION_STARTED:
                if execution == record.execution_id and not history.started:
                    deliver.append(event)
                    deliver_ids.append(message.id)
                    if status in (RuntimeStatus.Pending, RuntimeStatus.ContinuedAsNew):
                        status = RuntimeStatus.Running
                else:
                    episode.consumed.append(message.id)
                continue
            if status.is_terminal:
                # DTFx discards messages for finished instances.
                episode.consumed.append(message.id)
                continue
            if execution is not None and execution != record.execution_id:
                episode.consumed.append(message.id)  # addressed to an earlier execution
                continue
            if event.type == EventType.EXECUTION_TERMINATED:
                episode.consumed.append(message.id)
                self._terminate(episode, event, now)
                return None
            if event.type == EventType.EXECUTION_SUSPENDED:
                episode.consumed.append(message.id)
                if status in (RuntimeStatus.Running, RuntimeStatus.Pending):
                    status = RuntimeStatus.Suspended
                    episode.new_events.append(h.execution_suspended(now, event.get("Reason")))
                continue
            if event.type == EventType.EXECUTION_RESUMED:
                episode.consumed.append(message.id)
                if status == RuntimeStatus.Suspended:
                    status = RuntimeStatus.Running
                    episode.resumed = True
                    episode.new_events.append(h.execution_resumed(now, event.get("Reason")))
                continue
            if status == RuntimeStatus.Suspended:
                episode.held.append(message.id)  # held in the inbox, invisible, until resumed
                continue
            if event.type in _COMPLETIONS:
                task_id = int(event.get("TaskScheduledId"))
                if task_id in history.completed or task_id in done_ids:
                    episode.consumed.append(message.id)  # a redelivered completion
                    continue
                done_ids.add(task_id)
            if event.type == EventType.TIMER_FIRED:
                timer_id = int(event.get("TimerId"))
                if timer_id in history.fired or timer_id in fired:
                    episode.consumed.append(message.id)
                    continue
                fired.add(timer_id)
            deliver_ids.append(message.id)
            deliver.append(event)
        if status == RuntimeStatus.Suspended:
            episode.held.extend(deliver_ids)  # keep them for after the resume
        else:
            episode.consumed.extend(deliver_ids)
        episode.record = replace(record, status=status)
        if status in (RuntimeStatus.Suspended, RuntimeStatus.Pending) or not deliver:
            # Nothing for the orchestrator to see; still record control events, if any.
            if episode.new_events:
                episode.new_events = [
                    h.orchestrator_started(now),
                    *episode.new_events,
                    h.orchestrator_completed(now),
                ]
            return None
        return deliver

    def _terminate(self, episode: _Episode, event: HistoryEvent, now: Any) -> None:
        reason = event.get("Input")
        episode.new_events = [
            h.orchestrator_started(now),
            event,
            h.execution_completed(now, RuntimeStatus.Terminated, json.dumps(reason)),
            h.orchestrator_completed(now),
        ]
        episode.record = replace(
            episode.record,
            status=RuntimeStatus.Terminated,
            output=json.dumps(reason),
            updated_at=self._clock(),
        )
        self._notify_parent(episode, failed_reason=f"Orchestration terminated: {reason}")

    # Versioning -----------------------------------------------------------------------------------

    def _abandon(self, record: InstanceRecord, inbox: list[Message], check: VersionCheck, now: float) -> None:
        """VersionFailureStrategy.Reject: leave the work item for a host whose version accepts it."""
        delays = [
            min(2 ** (m.dequeue_count + 1), _ABANDON_MAX_SECONDS) if m.dequeue_count < 30 else _ABANDON_MAX_SECONDS
            for m in inbox
        ]
        with self._store.transaction() as db:
            db.executemany(
                "UPDATE messages SET dequeue_count = dequeue_count + 1, visible_at = ? WHERE id = ?",
                [(now + delay, m.id) for m, delay in zip(inbox, delays, strict=True)],
            )
        if record.instance_id not in self._rejected:
            # DTFx abandons silently; a local user deserves to know why the instance does not move.
            self._rejected.add(record.instance_id)
            _log.warning(
                "Orchestration '%s' (instance %s) has version '%s', which versionMatchStrategy %s does not accept "
                "with defaultVersion '%s'; versionFailureStrategy Reject leaves it waiting for a host that does "
                "(retried with back-off).",
                record.name,
                record.instance_id,
                check.instance_version,
                check.match_strategy,
                check.worker_version,
            )

    def _fail_version(
        self, episode: _Episode, history: CachedHistory, inbox: list[Message], check: VersionCheck
    ) -> None:
        """VersionFailureStrategy.Fail: DTFx completes the instance as Failed with FailureDetails
        ("VersionMismatch", ...) and no result; the Azure Storage tracking store shows the failure's
        ``ToString()`` as the output (AzureTableTrackingStore)."""
        record = episode.record
        now = to_datetime(self._clock())
        episode.consumed = [m.id for m in inbox]
        delivered = [HistoryEvent.from_wire(m.body["event"]) for m in inbox]
        starts = [e for e in delivered if e.type == EventType.EXECUTION_STARTED]
        start_events = [] if history.started else starts[:1]
        failure = {
            "ErrorType": VERSION_MISMATCH_ERROR_TYPE,
            "ErrorMessage": VERSION_MISMATCH_MESSAGE,
            "StackTrace": None,
            "InnerFailure": None,
            "IsNonRetriable": True,
        }
        text = f"{VERSION_MISMATCH_ERROR_TYPE}: {VERSION_MISMATCH_MESSAGE}"
        episode.new_events = [
            h.orchestrator_started(now),
            *start_events,
            h.execution_completed(now, RuntimeStatus.Failed, None, failure),
            h.orchestrator_completed(now),
        ]
        episode.record = replace(record, status=RuntimeStatus.Failed, output=json.dumps(text), updated_at=self._clock())
        _log.warning(
            "Orchestration '%s' (instance %s) failed: version '%s' does not satisfy versionMatchStrategy %s "
            "with defaultVersion '%s' (versionFailureStrategy Fail).",
            record.name,
            record.instance_id,
            check.instance_version,
            check.match_strategy,
            check.worker_version,
        )
        self._notify_parent(episode, failed_reason=text)

    # One invocation of the orchestrator ----------------------------------------------------------

    def _begin(
        self, episode: _Episode, history: CachedHistory, inbox: list[Message], now_ts: float
    ) -> tuple[list[HistoryEvent], str] | None:
        """Triage the inbox; if the orchestrator must run, this episode's first events and the context
        JSON for it. Runs in a worker thread."""
        delivered = self._triage(episode, history, inbox)
        if delivered is None:
            episode.new_event_json = encode_events(episode.new_events)
            return None
        record = episode.record
        started = [h.orchestrator_started(to_datetime(now_ts)), *episode.new_events, *delivered]
        episode.new_events = list(started)
        rest = {
            "input": json.loads(record.input) if record.input is not None else None,
            "instanceId": record.instance_id,
            "isReplaying": False,
            "parentInstanceId": record.parent_instance_id,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
            "longRunningTimerIntervalDuration": "3.00:00:00",
            "maximumShortTimerDuration": "6.00:00:00",
            "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
        }
        # {"history": [...], "input": ...}: the recorded events are sent as cached (IsPlayed true).
        context_json = (
            '{"history": ' + history_array(history.played, encode_events(started)) + ", " + json.dumps(rest)[1:]
        )
        return started, context_json

    async def _call(self, record: InstanceRecord, context_json: str) -> tuple[str | None, str | None]:
        """Invoke the orchestrator: (its state JSON, None), or (None, why it failed)."""
        try:
            return await self._invoke(record.name, context_json), None
        except UnknownFunctionError as exc:
            return None, str(exc)
        except Exception as exc:  # the user's code, reported the way the extension reports it
            text = str(getattr(exc, "message", None) or exc)
            if _OOPROC_LABEL in text:
                return text.split(_OOPROC_LABEL, 1)[1], None
            return None, f"Orchestrator function '{record.name}' failed: {text}"

    def _end(
        self,
        episode: _Episode,
        history: CachedHistory,
        started: list[HistoryEvent],
        state_json: str | None,
        failure: str | None,
        now_ts: float,
    ) -> None:
        """Replay the SDK's actions against the history and settle the episode. Runs in a worker thread."""
        record = episode.record
        now = to_datetime(now_ts)
        if state_json is not None:
            try:
                state: dict[str, Any] = json.loads(state_json)
            except ValueError as exc:
                failure = f"Orchestrator function '{record.name}' failed: {exc}"
            else:
                failure = self._replay(episode, [*history.events, *started], len(history), state, now)
        if failure is not None:
            self._complete(episode, RuntimeStatus.Failed, json.dumps(failure), now, failed_reason=failure)
        if not episode.reset_history:
            episode.new_events.append(h.orchestrator_completed(now))
        episode.new_event_json = encode_events(episode.new_events)

    def _replay(
        self, episode: _Episode, full: list[HistoryEvent], new_from: int, state: dict[str, Any], now: Any
    ) -> str | None:
        record = episode.record
        actions = state.get("actions") or [[]]
        flat = [a for group in actions for a in group]
        replay = ShimReplay(
            InstanceRef(record.instance_id, record.execution_id),
            flat,
            default_version=self._versioning.default_version,
            http_poll_interval=self._http_poll_interval,
            max_actions=self._max_actions,
        )
        try:
            result = replay.run(full, new_from)
        except (NonDeterminismError, UnsupportedActionError) as exc:
            return f"Orchestrator function '{record.name}' failed: {exc}"
        for warning in result.warnings:
            _log.warning("Orchestration '%s' (instance %s): %s", record.name, record.instance_id, warning)
        if "customStatus" in state:
            episode.record = replace(record, custom_status=json.dumps(state["customStatus"]))
        for decision, event in result.decisions:
            episode.new_events.append(event)
            episode.outbound.append(self._outbound(episode.record, decision))
        if not result.walk_finished:
            return None
        if state.get("error"):
            return f"Orchestrator function '{record.name}' failed: {state['error']}"
        if state.get("isDone"):
            wants_new, new_input = result.continue_as_new
            if wants_new:
                self._continue_as_new(episode, new_input, now)
            else:
                self._complete(episode, RuntimeStatus.Completed, json.dumps(state.get("output")), now)
        return None

    def _outbound(self, record: InstanceRecord, decision: Any) -> NewMessage:
        instance_id, execution_id = record.instance_id, record.execution_id
        if isinstance(decision, ScheduleActivity):
            return NewMessage(
                ACTIVITY,
                instance_id,
                {
                    "execution": execution_id,
                    "taskId": decision.task_id,
                    "name": decision.name,
                    "input": decision.input,
                },
            )
        if isinstance(decision, CreateTimer):
            event = h.timer_fired(decision.fire_at, decision.task_id, h.format_timestamp(decision.fire_at))
            return orchestration_message(
                instance_id,
                event,
                execution_id,
                visible_at=decision.fire_at.timestamp(),
                dedup_key=f"timer:{instance_id}:{execution_id}:{decision.task_id}",
            )
        if isinstance(decision, StartSubOrchestration):
            return NewMessage(
                ORCHESTRATION,
                decision.instance_id,
                {
                    "startSub": {
                        "name": decision.name,
                        "version": decision.version,
                        "input": json.dumps(decision.input) if decision.input is not None else None,
                        "parentInstanceId": instance_id,
                        "parentExecutionId": execution_id,
                        "taskId": decision.task_id,
                    },
                },
            )
        assert isinstance(decision, SendEntityMessage)
        return NewMessage(ENTITY, decision.target, {"request": decision.request})

    def _complete(
        self,
        episode: _Episode,
        status: RuntimeStatus,
        output_json: str,
        now: Any,
        failed_reason: str | None = None,
    ) -> None:
        episode.new_events.append(h.execution_completed(now, status, output_json))
        episode.record = replace(episode.record, status=status, output=output_json, updated_at=self._clock())
        self._notify_parent(episode, failed_reason=failed_reason)

    def _continue_as_new(self, episode: _Episode, new_input: Any, now: Any) -> None:
        old = episode.record
        # The SDK sends a df_dumps string; the extension stores it as a JSON string literal.
        stored_input = json.dumps(new_input) if new_input is not None else None
        episode.record = replace(
            old,
            execution_id=new_execution_id(),
            status=RuntimeStatus.ContinuedAsNew,
            input=stored_input,
            output=None,
            updated_at=self._clock(),
        )
        episode.reset_history = True
        episode.new_events = []
        # Pending decisions of the old execution that are not fire-and-forget die with it.
        episode.outbound = [m for m in episode.outbound if m.kind == ENTITY and m.body["request"].get("signal")]
        episode.outbound.append(start_message(episode.record, self._clock()))

    def _notify_parent(self, episode: _Episode, failed_reason: str | None) -> None:
        record = episode.record
        if not record.parent_instance_id or record.parent_task_id is None:
            return
        now = to_datetime(self._clock())
        if record.status == RuntimeStatus.Completed:
            event = h.sub_orchestration_completed(now, record.parent_task_id, record.output)
        else:
            event = h.sub_orchestration_failed(now, record.parent_task_id, failed_reason or "failed", None)
        episode.outbound.append(orchestration_message(record.parent_instance_id, event, record.parent_execution_id))

    # Commit ---------------------------------------------------------------------------------------

    def _commit(self, episode: _Episode) -> None:
        starts = [m for m in episode.outbound if "startSub" in m.body]
        others = [m for m in episode.outbound if "startSub" not in m.body]
        with self._store.transaction() as db:
            self._store.delete_messages(db, episode.consumed)
            if episode.held:
                db.executemany("UPDATE messages SET visible_at = ? WHERE id = ?", [(_HELD, i) for i in episode.held])
            if episode.resumed:
                db.execute(
                    "UPDATE messages SET visible_at = 0 WHERE target = ? AND kind = 'orchestration' AND visible_at = ?",
                    (episode.record.instance_id, _HELD),
                )
            if episode.reset_history:
                self._store.clear_history(db, episode.record.instance_id)
            if episode.new_events:
                self._store.append_history(db, episode.record.instance_id, episode.new_events, episode.new_event_json)
            self._store.put_instance(db, replace(episode.record, updated_at=self._clock()))
            self._store.put_messages(db, others)
            for message in starts:
                self._start_sub_orchestration(db, message)

    def _start_sub_orchestration(self, db: Any, message: NewMessage) -> None:
        spec = message.body["startSub"]
        now = self._clock()
        existing = self._store.get_instance(message.target)
        if existing is not None and not existing.status.is_terminal:
            event = h.sub_orchestration_failed(
                to_datetime(now),
                spec["taskId"],
                f"An Orchestration instance with the ID '{message.target}' already exists.",
                None,
            )
            self._store.put_messages(
                db, [orchestration_message(spec["parentInstanceId"], event, spec["parentExecutionId"])]
            )
            return
        record = InstanceRecord(
            instance_id=message.target,
            name=spec["name"],
            version=spec.get("version"),
            execution_id=new_execution_id(),
            status=RuntimeStatus.Pending,
            input=spec["input"],
            output=None,
            custom_status=None,
            created_at=now,
            updated_at=now,
            parent_instance_id=spec["parentInstanceId"],
            parent_execution_id=spec["parentExecutionId"],
            parent_task_id=spec["taskId"],
        )
        self._store.clear_history(db, record.instance_id)
        self._store.put_instance(db, record)
        self._store.put_messages(db, [start_message(record, now)])

    def _drop(self, inbox: list[Message], why: str) -> None:
        _log.warning("Dropping %d message(s) for %s: %s", len(inbox), inbox[0].target, why)
        with self._store.transaction() as db:
            self._store.delete_messages(db, [m.id for m in inbox])
