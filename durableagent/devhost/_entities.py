"""Entity work items: one batch per entity at a time; state, consumed requests and responses commit as one."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import _history as h
from ._orchestrations import UnknownFunctionError, orchestration_message
from ._store import ENTITY, EntityRecord, Message, NewMessage, TaskHubStore, to_datetime

_log = logging.getLogger("durableagent.devhost.entities")

# Calls the entity function by name with the batch JSON; returns the entity-result JSON.
InvokeEntity = Callable[[str, str], Awaitable[str]]


def entity_id(name: str, key: str) -> str:
    """Scheduler id ``@name@key``; entity names are case-insensitive, so they are lower-cased."""
    return f"@{name.lower()}@{key}"


def split_entity_id(scheduler_id: str) -> tuple[str, str]:
    if not scheduler_id.startswith("@") or "@" not in scheduler_id[1:]:
        raise ValueError(f"not an entity id: {scheduler_id!r}")
    name, _, key = scheduler_id[1:].partition("@")
    return name, key


def signal_message(scheduler_id: str, operation: str, input_json: str | None, request_id: str) -> NewMessage:
    """The message a client's signal puts in an entity's queue."""
    return NewMessage(
        ENTITY,
        scheduler_id,
        {
            "request": {"op": operation, "signal": True, "input": input_json, "id": request_id},
        },
    )


class EntityWorker:
    """Runs batches of entity operations (the dispatcher runs one batch per entity at a time)."""

    def __init__(
        self, store: TaskHubStore, invoke: InvokeEntity, clock: Callable[[], float], batch_size: int = 50
    ) -> None:
        self._store = store
        self._invoke = invoke
        self._clock = clock
        self._batch_size = max(1, batch_size)

    async def process(self, scheduler_id: str) -> None:
        messages = self._store.ready_messages(ENTITY, self._clock(), target=scheduler_id, limit=self._batch_size)
        if not messages:
            return
        name, key = split_entity_id(scheduler_id)
        current = self._store.get_entity(scheduler_id)
        requests = [m.body["request"] for m in messages]
        batch_state = current.state if current and current.exists else None
        batch = {
            "self": {"name": name, "key": key},
            "exists": bool(current and current.exists),
            "state": batch_state,
            "batch": [
                {"name": r.get("op"), "input": r.get("input"), "isSignal": bool(r.get("signal"))} for r in requests
            ],
        }
        try:
            outcome = json.loads(await self._invoke(name, json.dumps(batch)))
            results: list[dict[str, Any]] = list(outcome.get("results") or [])
            exists, state = bool(outcome.get("entityExists")), outcome.get("entityState")
        except UnknownFunctionError as exc:
            results = [{"isError": True, "result": json.dumps(str(exc))} for _ in requests]
            exists, state = bool(current and current.exists), batch_state
        except Exception as exc:  # the whole batch failed: every operation reports it, state unchanged
            text = str(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
            _log.error("Entity %s batch failed: %s", scheduler_id, text)
            results = [{"isError": True, "result": json.dumps(text)} for _ in requests]
            exists, state = bool(current and current.exists), batch_state
        self._commit(scheduler_id, name, key, messages, requests, results, exists, state)

    def _commit(
        self,
        scheduler_id: str,
        name: str,
        key: str,
        messages: list[Message],
        requests: list[dict[str, Any]],
        results: list[dict[str, Any]],
        exists: bool,
        state: str | None,
    ) -> None:
        now = self._clock()
        responses = []
        for index, request in enumerate(requests):
            result = results[index] if index < len(results) else {"isError": True, "result": '"no result"'}
            if result.get("isError"):
                # The extension traces every failed operation; a failed signal is otherwise invisible.
                _log.warning(
                    "Entity %s operation '%s' (request %s) failed: %s",
                    scheduler_id,
                    request.get("op"),
                    request.get("id"),
                    result.get("result"),
                )
            if request.get("signal") or not request.get("parent"):
                continue
            response: dict[str, Any] = {"result": result.get("result")}
            if result.get("isError"):
                response["exceptionType"] = "Error"
            event = h.event_raised(to_datetime(now), str(request["id"]), json.dumps(response))
            responses.append(orchestration_message(str(request["parent"]), event, request.get("parentExecution")))
        with self._store.transaction() as db:
            self._store.delete_messages(db, [m.id for m in messages])
            if exists:
                self._store.put_entity(db, EntityRecord(scheduler_id, name, key, True, state, now))
            else:
                self._store.delete_entity(db, scheduler_id)
            self._store.put_messages(db, responses)
