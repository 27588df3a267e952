"""Activity work items: run the function, then record its outcome and consume the message at once."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from . import _history as h
from ._orchestrations import UnknownFunctionError, orchestration_message
from ._store import Message, TaskHubStore, to_datetime

_log = logging.getLogger("durableagent.devhost.activities")

# Calls the activity by name with its input string (the SDK's df_dumps text); returns the result JSON.
InvokeActivity = Callable[[str, str], Awaitable[str]]


class ActivityWorker:
    """Runs activity messages. Delivery is at-least-once: a crash mid-run runs the activity again."""

    def __init__(self, store: TaskHubStore, invoke: InvokeActivity, clock: Callable[[], float]) -> None:
        self._store = store
        self._invoke = invoke
        self._clock = clock

    async def process(self, message: Message) -> None:
        body = message.body
        name, task_id = str(body["name"]), int(body["taskId"])
        raw_input = body.get("input")
        try:
            result = await self._invoke(name, raw_input if raw_input is not None else "null")
        except UnknownFunctionError:
            event = h.task_failed(
                to_datetime(self._clock()),
                task_id,
                f"The function '{name}' doesn't exist, is disabled, or is not an activity function. "
                "Additional info: the following are the known activity functions: see the host log.",
                None,
            )
        except Exception as exc:  # the user's code failed; the orchestrator sees TaskFailed
            message_text = str(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
            details = getattr(exc, "host_message", None)
            event = h.task_failed(
                to_datetime(self._clock()),
                task_id,
                f"Activity function '{name}' failed: {message_text}",
                details() if callable(details) else json.dumps({"message": message_text}),
            )
        else:
            event = h.task_completed(to_datetime(self._clock()), task_id, result)
        with self._store.transaction() as db:
            self._store.delete_messages(db, [message.id])
            self._store.put_messages(
                db,
                [
                    orchestration_message(
                        message.target,
                        event,
                        body.get("execution"),
                        dedup_key=f"done:{message.target}:{body.get('execution')}:{task_id}",
                    )
                ],
            )
