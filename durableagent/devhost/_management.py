"""Management API semantics (what the extension's HttpApiHandler does), independent of HTTP parsing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from . import _history as h
from ._entities import entity_id as make_entity_id
from ._entities import signal_message
from ._history import EventType, RuntimeStatus
from ._orchestrations import new_execution_id, orchestration_message, start_message
from ._store import InstanceQuery, InstanceRecord, TaskHubStore, to_datetime

# Bounds on what a caller may name (documented in README "The local host"). Instance ids: the
# extension's own limit (DurableClient.MaxInstanceIdLength). Entity keys: room for the library's
# longest storage-form session key (~ + base64url of 128 four-byte characters).
MAX_INSTANCE_ID_LENGTH = 256
MAX_NAME_LENGTH = 256
MAX_ENTITY_KEY_LENGTH = 1024

# Characters DurableClient.IsInvalidCharacter refuses in instance ids and entity keys (plus control
# characters, checked separately).
_ID_FORBIDDEN = frozenset("/\\#?")


class ManagementError(Exception):
    """An error the API reports with a status code, a stable ``code`` and the extension's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        exception_type: str = "System.ArgumentException",
        *,
        code: str = "invalid_argument",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.exception_type = exception_type
        self.code = code

    def body(self) -> dict[str, Any]:
        """The extension's ``HttpError`` fields (the Python SDK reads ``ExceptionMessage``) and the host's
        ``error`` object beside them."""
        return {
            "Message": "One or more of the arguments submitted is incorrect"
            if self.status == 400
            else "An error has occurred.",
            "ExceptionMessage": self.message,
            "ExceptionType": self.exception_type,
            "error": {"code": self.code, "message": self.message},
        }


class NotFound(Exception):
    """The instance or entity does not exist (the API answers 404)."""

    def __init__(self, what: str = "instance") -> None:
        super().__init__(what)
        self.what = what


class Gone(Exception):
    """The instance is in a state where the operation no longer applies (410)."""


def has_control_or_surrogate(text: str) -> bool:
    """Whether ``text`` holds a control character (.NET ``char.IsControl``: C0, DEL, C1) or a lone
    surrogate (not encodable as UTF-8: it cannot be stored, logged or sent on)."""
    return any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in text)


def check_name(value: str, what: str, *, code: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """``value`` if it is a usable name (non-empty, bounded, no control characters); else a 400."""
    if not value or len(value) > max_length or has_control_or_surrogate(value):
        raise ManagementError(
            400,
            f"The {what} must be 1 to {max_length} characters without control characters.",
            code=code,
        )
    return value


def check_instance_id(instance_id: str) -> str:
    """An instance id the API can look up: bounded, no control characters (ids that cannot exist)."""
    return check_name(instance_id, "instance id", code="invalid_instance_id", max_length=MAX_INSTANCE_ID_LENGTH)


def status_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_query_time(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 time. Raises: ValueError: not such a time."""
    try:
        return h.parse_timestamp(text).timestamp()
    except (OverflowError, OSError) as exc:
        # Years at the edge of datetime's range overflow when moved to UTC.
        raise ValueError("time out of range") from exc


_RUNTIME_STATUS_NAMES = {s.name.lower(): s for s in RuntimeStatus}


def parse_statuses(text: str) -> list[RuntimeStatus]:
    found = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        status = _RUNTIME_STATUS_NAMES.get(part.lower())
        if status is None:
            raise ManagementError(
                400,
                f"Invalid runtime status '{part[:64]}'. Known: {', '.join(s.name for s in RuntimeStatus)}.",
                code="invalid_query_parameter",
            )
        found.append(status)
    return found


@dataclass(frozen=True)
class StatusOptions:
    show_history: bool = False
    show_history_output: bool = False
    show_input: bool = True


class ManagementService:
    """Start, query, signal and control orchestrations and entities in one task hub."""

    def __init__(
        self,
        store: TaskHubStore,
        clock: Callable[[], float],
        orchestrator_names: Callable[[], Sequence[str]],
        entity_names: Callable[[], Sequence[str]],
        *,
        default_version: str | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._orchestrator_names = orchestrator_names
        self._entity_names = entity_names
        self._default_version = default_version

    # Orchestrations -------------------------------------------------------------------------------

    def resolve_orchestrator(self, name: str) -> str:
        for known in self._orchestrator_names():
            if known.lower() == name.lower():
                return known
        raise ManagementError(
            400,
            f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function. "
            f"Additional info: The following are the active orchestrator functions: "
            f"{', '.join(repr(n) for n in self._orchestrator_names())}.",
            code="orchestrator_not_found",
        )

    def resolve_entity(self, name: str) -> None:
        """Signals name an entity function of this app (DurableClient.SignalEntityAsyncInternal's
        ThrowIfFunctionDoesNotExist, an ArgumentException the API answers with 400): a signal to no
        function would be accepted and then fail in the dispatcher."""
        if any(known.lower() == name.lower() for known in self._entity_names()):
            return
        raise ManagementError(
            400,
            f"The function '{name}' doesn't exist, is disabled, or is not an entity function. "
            f"Additional info: The following are the active entity functions: "
            f"{', '.join(repr(n) for n in self._entity_names())}.",
            code="entity_not_found",
        )

    def start(self, name: str, instance_id: str | None, input_json: str | None, version: str | None) -> str:
        """Create an instance; ``version`` ``None`` (no ``?version=``) takes host.json ``defaultVersion``.

        The out-of-proc client passes a version as the ``version`` query parameter and the extension uses
        it instead of ``defaultVersion`` only when given (Azure/azure-functions-durable-extension#3213).
        """
        function_name = self.resolve_orchestrator(name)
        if version is None:
            version = self._default_version
        instance_id = instance_id or uuid.uuid4().hex
        _validate_instance_id(instance_id)
        now = self._clock()
        with self._store.transaction() as db:
            existing = self._store.get_instance(instance_id)
            if existing is not None and not existing.status.is_terminal:
                # The extension lets OrchestrationAlreadyExistsException reach its catch-all (500); a
                # conflict is not a fault of the host, so 409 here (the SDK raises on either).
                raise ManagementError(
                    409,
                    f"An Orchestration instance with the ID '{instance_id}' already exists.",
                    "DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException",
                    code="instance_exists",
                )
            record = InstanceRecord(
                instance_id=instance_id,
                name=function_name,
                version=version,
                execution_id=new_execution_id(),
                status=RuntimeStatus.Pending,
                input=input_json,
                output=None,
                custom_status=None,
                created_at=now,
                updated_at=now,
                parent_instance_id=None,
                parent_execution_id=None,
                parent_task_id=None,
            )
            self._store.clear_history(db, instance_id)
            # Messages left for an earlier incarnation of this id must not reach the new one.
            db.execute("DELETE FROM messages WHERE kind = 'orchestration' AND target = ?", (instance_id,))
            self._store.put_instance(db, record)
            self._store.put_messages(db, [start_message(record, now)])
        return instance_id

    def get_instance(self, instance_id: str) -> InstanceRecord:
        record = self._store.get_instance(check_instance_id(instance_id))
        if record is None:
            raise NotFound("instance")
        return record

    def status_body(self, record: InstanceRecord, options: StatusOptions) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": record.name,
            "instanceId": record.instance_id,
            "runtimeStatus": record.status.name,
            "input": _token(record.input) if options.show_input else None,
            "customStatus": _token(record.custom_status),
            "output": _token(record.output),
            "createdTime": status_time(record.created_at),
            "lastUpdatedTime": status_time(record.updated_at),
        }
        if options.show_history:
            body["historyEvents"] = self._compact_history(record.instance_id, options.show_history_output)
        return body

    def query(
        self, query: InstanceQuery, top: int | None, continuation: str | None, options: StatusOptions
    ) -> tuple[list[dict[str, Any]], str | None]:
        records = self._store.query_instances(query, top=top, after=continuation)
        token = records[-1].instance_id if top is not None and len(records) == top else None
        return [self.status_body(r, options) for r in records], token

    def raise_event(self, instance_id: str, event_name: str, input_json: str | None) -> None:
        record = self.get_instance(instance_id)
        if record.status.is_terminal:
            raise Gone(instance_id)
        event = h.event_raised(to_datetime(self._clock()), event_name, input_json)
        with self._store.transaction() as db:
            self._store.put_messages(db, [orchestration_message(instance_id, event, None)])

    def terminate(self, instance_id: str, reason: str | None) -> None:
        self._control(instance_id, h.execution_terminated(to_datetime(self._clock()), reason))

    def suspend(self, instance_id: str, reason: str | None) -> None:
        self._control(instance_id, h.execution_suspended(to_datetime(self._clock()), reason))

    def resume(self, instance_id: str, reason: str | None) -> None:
        self._control(instance_id, h.execution_resumed(to_datetime(self._clock()), reason))

    def _control(self, instance_id: str, event: h.HistoryEvent) -> None:
        record = self.get_instance(instance_id)
        if record.status.is_terminal:
            raise Gone(instance_id)
        with self._store.transaction() as db:
            self._store.put_messages(db, [orchestration_message(instance_id, event, None)])

    def restart(self, instance_id: str, new_instance_id: bool) -> str:
        record = self.get_instance(instance_id)
        target = uuid.uuid4().hex if new_instance_id else instance_id
        if not new_instance_id and not record.status.is_terminal:
            raise ManagementError(
                400,
                f"An orchestration with the instanceId {instance_id} must be in a terminal state to restart.",
                code="instance_not_terminal",
            )
        # DurableClient.RestartAsync starts the copy with StartNewAsync(name, [id,] input): no version,
        # so the app's defaultVersion applies to it, not the original instance's version.
        return self.start(record.name, target, record.input, None)

    def purge(self, instance_id: str) -> int:
        check_instance_id(instance_id)
        with self._store.transaction() as db:
            if self._store.get_instance(instance_id) is None:
                return 0
            self._store.delete_instance(db, instance_id)
        return 1

    def purge_by(self, query: InstanceQuery) -> int:
        terminal = [s for s in RuntimeStatus if s.is_terminal]
        statuses = [s for s in (query.statuses or terminal) if s.is_terminal]
        records = self._store.query_instances(replace(query, statuses=statuses))
        with self._store.transaction() as db:
            for record in records:
                self._store.delete_instance(db, record.instance_id)
        return len(records)

    # Entities -------------------------------------------------------------------------------------

    def signal_entity(self, name: str, key: str, operation: str, input_json: str | None) -> None:
        _validate_entity(name, key, signal=True)
        check_name(operation, "operation name", code="invalid_operation")
        self.resolve_entity(name)
        scheduler_id = make_entity_id(name, key)
        with self._store.transaction() as db:
            self._store.put_messages(db, [signal_message(scheduler_id, operation, input_json, str(uuid.uuid4()))])

    def read_entity(self, name: str, key: str) -> str:
        _validate_entity(name, key)
        record = self._store.get_entity(make_entity_id(name, key))
        if record is None or not record.exists:
            raise NotFound("entity")
        return record.state if record.state is not None else "null"

    def list_entities(self, name: str | None, fetch_state: bool) -> list[dict[str, Any]]:
        found = []
        for record in self._store.query_entities(name.lower() if name else None):
            item: dict[str, Any] = {
                "entityId": {"name": record.name, "key": record.key},
                "lastOperationTime": status_time(record.last_modified),
            }
            if fetch_state:
                item["state"] = _token(record.state)
            found.append(item)
        return found

    # History, compacted as the extension shows it ---------------------------------------------------

    def _compact_history(self, instance_id: str, with_output: bool) -> list[dict[str, Any]]:
        events = self._store.get_history(instance_id)
        scheduled = {
            e.event_id: e
            for e in events
            if e.type in (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_CREATED, EventType.TIMER_CREATED)
        }
        shown: list[dict[str, Any]] = []
        for event in events:
            if event.type in (
                EventType.ORCHESTRATOR_STARTED,
                EventType.ORCHESTRATOR_COMPLETED,
                EventType.TASK_SCHEDULED,
                EventType.SUB_ORCHESTRATION_CREATED,
                EventType.TIMER_CREATED,
                EventType.EVENT_SENT,
            ):
                continue
            item: dict[str, Any] = {
                "EventType": _event_name(event.type),
                "Timestamp": h.format_timestamp(event.timestamp),
            }
            task_id = event.get("TaskScheduledId", event.get("TimerId"))
            origin = scheduled.get(int(task_id)) if task_id is not None else None
            if origin is not None:
                item["ScheduledTime"] = h.format_timestamp(origin.timestamp)
                if origin.get("Name"):
                    item["FunctionName"] = origin.get("Name")
            if event.type == EventType.EXECUTION_STARTED:
                item["FunctionName"] = event.get("Name")
                if with_output:
                    item["Input"] = _token(event.get("Input"))
            if event.type in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_FAILED):
                item["Reason"] = event.get("Reason")
                item["Details"] = event.get("Details")
            if event.type == EventType.EVENT_RAISED:
                item["Name"] = event.get("Name")
                if with_output:
                    item["Input"] = _token(event.get("Input"))
            if event.type == EventType.TIMER_FIRED:
                item["FireAt"] = event.get("FireAt")
            if event.type == EventType.EXECUTION_COMPLETED:
                item["OrchestrationStatus"] = RuntimeStatus(int(event.get("OrchestrationStatus"))).name
            if with_output and event.type in (
                EventType.TASK_COMPLETED,
                EventType.SUB_ORCHESTRATION_COMPLETED,
                EventType.EXECUTION_COMPLETED,
            ):
                item["Result"] = _token(event.get("Result"))
            shown.append(item)
        return shown


def _event_name(kind: EventType) -> str:
    names = {
        EventType.SUB_ORCHESTRATION_COMPLETED: "SubOrchestrationInstanceCompleted",
        EventType.SUB_ORCHESTRATION_FAILED: "SubOrchestrationInstanceFailed",
        EventType.SUB_ORCHESTRATION_CREATED: "SubOrchestrationInstanceCreated",
    }
    return names.get(kind) or "".join(part.capitalize() for part in kind.name.split("_"))


def _token(text: str | None) -> Any:
    """The stored JSON text as the JSON value the API prints (the extension parses it to a JToken)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _validate_instance_id(instance_id: str) -> None:
    # DurableClient.StartNewAsync's rules: not "@"-prefixed (entity ids), none of / \\ # ? or control
    # characters, at most 256 characters.
    if (
        not instance_id
        or len(instance_id) > MAX_INSTANCE_ID_LENGTH
        or instance_id.startswith("@")
        or any(c in _ID_FORBIDDEN for c in instance_id)
        or has_control_or_surrogate(instance_id)
    ):
        raise ManagementError(
            400,
            "Orchestration instance ids must be 1 to 256 characters, must not start with @ and must not "
            "contain /, \\, #, ? or control characters.",
            code="invalid_instance_id",
        )


def _validate_entity(name: str, key: str, *, signal: bool = False) -> None:
    # Names: no "@" (it separates name and key in the scheduler id). Keys: a signal refuses what
    # DurableClient.SignalEntityAsyncInternal refuses (/ \\ # ? and control characters).
    if (
        not name
        or len(name) > MAX_NAME_LENGTH
        or "@" in name
        or len(key) > MAX_ENTITY_KEY_LENGTH
        or has_control_or_surrogate(name + key)
        or (signal and any(c in _ID_FORBIDDEN for c in key))
    ):
        raise ManagementError(
            400,
            f"Entity names must be 1 to {MAX_NAME_LENGTH} characters without @; entity keys at most "
            f"{MAX_ENTITY_KEY_LENGTH} characters without /, \\, #, ? or control characters.",
            code="invalid_entity_id",
        )
