"""Orchestration history events: the DTFx model, and its wire form for the Python SDK.

Events are kept in their wire form (PascalCase keys, ``EventType`` as an int) because that is what
both the task hub stores and the SDK reads; this module is the one place that knows that form.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ._isotime import parse_iso_datetime


class EventType(enum.IntEnum):
    """DTFx ``EventType`` numbers."""

    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_CREATED = 7
    SUB_ORCHESTRATION_COMPLETED = 8
    SUB_ORCHESTRATION_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    GENERIC = 17
    HISTORY_STATE = 18
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20
    EXECUTION_REWOUND = 21


class RuntimeStatus(enum.IntEnum):
    """DTFx ``OrchestrationStatus`` numbers; names are what the management API prints."""

    Running = 0
    Completed = 1
    ContinuedAsNew = 2
    Failed = 3
    Canceled = 4
    Terminated = 5
    Pending = 6
    Suspended = 7

    @property
    def is_terminal(self) -> bool:
        return self in (
            RuntimeStatus.Completed,
            RuntimeStatus.Failed,
            RuntimeStatus.Canceled,
            RuntimeStatus.Terminated,
        )


def format_timestamp(moment: datetime) -> str:
    """ISO UTC with seven fractional digits, as Newtonsoft writes a ``DateTime``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_timestamp(text: str) -> datetime:
    """Parse the timestamps this module and the SDK write (up to 7 fractional digits)."""
    moment = parse_iso_datetime(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@dataclass
class HistoryEvent:
    """One history event. ``fields`` holds the type-specific PascalCase keys."""

    type: EventType
    timestamp: datetime
    event_id: int = -1
    fields: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def to_wire(self, *, is_played: bool = False) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "EventType": int(self.type),
            "EventId": self.event_id,
            "IsPlayed": is_played,
            "Timestamp": format_timestamp(self.timestamp),
        }
        wire.update(self.fields)
        return wire

    def to_json(self) -> str:
        return json.dumps(self.to_wire(), separators=(",", ":"))

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> HistoryEvent:
        rest = {k: v for k, v in wire.items() if k not in ("EventType", "EventId", "IsPlayed", "Timestamp")}
        return cls(
            type=EventType(int(wire["EventType"])),
            timestamp=parse_timestamp(str(wire["Timestamp"])),
            event_id=int(wire.get("EventId", -1)),
            fields=rest,
        )

    @classmethod
    def from_json(cls, text: str) -> HistoryEvent:
        return cls.from_wire(json.loads(text))


# Constructors for the events the host itself writes. Keyword names follow DTFx's fields.


def orchestrator_started(now: datetime) -> HistoryEvent:
    return HistoryEvent(EventType.ORCHESTRATOR_STARTED, now)


def orchestrator_completed(now: datetime) -> HistoryEvent:
    return HistoryEvent(EventType.ORCHESTRATOR_COMPLETED, now)


def execution_started(
    now: datetime,
    *,
    instance_id: str,
    execution_id: str,
    name: str,
    version: str | None,
    input_json: str | None,
    parent: dict[str, Any] | None,
    scheduled_start: datetime | None = None,
) -> HistoryEvent:
    return HistoryEvent(
        EventType.EXECUTION_STARTED,
        now,
        fields={
            "OrchestrationInstance": {"InstanceId": instance_id, "ExecutionId": execution_id},
            "ParentInstance": parent,
            "Name": name,
            # The SDK reads event.Version unconditionally, so it must be present.
            "Version": version or "",
            "Input": input_json,
            "Tags": None,
            "Correlation": None,
            "ScheduledStartTime": format_timestamp(scheduled_start) if scheduled_start else None,
            "Generation": 0,
        },
    )


def execution_completed(
    now: datetime, status: RuntimeStatus, result: str | None, failure: dict[str, Any] | None = None
) -> HistoryEvent:
    return HistoryEvent(
        EventType.EXECUTION_COMPLETED,
        now,
        fields={"OrchestrationStatus": int(status), "Result": result, "FailureDetails": failure},
    )


def execution_terminated(now: datetime, reason: str | None) -> HistoryEvent:
    return HistoryEvent(EventType.EXECUTION_TERMINATED, now, fields={"Input": reason})


def task_completed(now: datetime, task_id: int, result: str | None) -> HistoryEvent:
    return HistoryEvent(EventType.TASK_COMPLETED, now, fields={"TaskScheduledId": task_id, "Result": result})


def task_failed(now: datetime, task_id: int, reason: str, details: str | None) -> HistoryEvent:
    return HistoryEvent(
        EventType.TASK_FAILED,
        now,
        fields={"TaskScheduledId": task_id, "Reason": reason, "Details": details, "FailureDetails": None},
    )


def sub_orchestration_completed(now: datetime, task_id: int, result: str | None) -> HistoryEvent:
    return HistoryEvent(
        EventType.SUB_ORCHESTRATION_COMPLETED, now, fields={"TaskScheduledId": task_id, "Result": result}
    )


def sub_orchestration_failed(now: datetime, task_id: int, reason: str, details: str | None) -> HistoryEvent:
    return HistoryEvent(
        EventType.SUB_ORCHESTRATION_FAILED,
        now,
        fields={"TaskScheduledId": task_id, "Reason": reason, "Details": details, "FailureDetails": None},
    )


def timer_fired(now: datetime, timer_id: int, fire_at: str) -> HistoryEvent:
    return HistoryEvent(EventType.TIMER_FIRED, now, fields={"TimerId": timer_id, "FireAt": fire_at})


def event_raised(now: datetime, name: str, input_json: str | None) -> HistoryEvent:
    return HistoryEvent(EventType.EVENT_RAISED, now, fields={"Name": name, "Input": input_json})


def execution_suspended(now: datetime, reason: str | None) -> HistoryEvent:
    return HistoryEvent(EventType.EXECUTION_SUSPENDED, now, fields={"Reason": reason})


def execution_resumed(now: datetime, reason: str | None) -> HistoryEvent:
    return HistoryEvent(EventType.EXECUTION_RESUMED, now, fields={"Reason": reason})
