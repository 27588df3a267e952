"""Activity work items: run the function, then record its outcome and consume the message at once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from . import _history as h
from ._durable_http import HTTP_ACTIVITY
from ._orchestrations import UnknownFunctionError, orchestration_message
from ._store import Message, TaskHubStore, to_datetime
from ._task_failures import activity_failure

_log = logging.getLogger("durableagent.devhost.activities")

# Calls the activity by name with its input string (the SDK's df_dumps text); returns the result JSON.
InvokeActivity = Callable[[str, str], Awaitable[str]]


class BuiltInActivityError(Exception):
    """A built-in activity failed; ``reason`` and ``details`` go into ``TaskFailed`` as they are."""

    def __init__(self, reason: str, details: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class ActivityWorker:
    """Runs activity messages. Delivery is at-least-once: a crash mid-run runs the activity again.

    Args:
        store: The task hub.
        invoke: Calls an app's activity function.
        clock: Seconds since the epoch.
        http: Runs the extension's built-in ``BuiltIn::HttpActivity`` (``context.call_http``) on the
            request JSON; returns the response JSON or raises :class:`BuiltInActivityError`.
    """

    def __init__(
        self,
        store: TaskHubStore,
        invoke: InvokeActivity,
        clock: Callable[[], float],
        *,
        http: Callable[[str], Awaitable[str]] | None = None,
    ) -> None:
        self._store = store
        self._invoke = invoke
        self._clock = clock
        self._http = http

    async def process(self, message: Message) -> None:
        body = message.body
        name, task_id = str(body["name"]), int(body["taskId"])
        raw_input = body.get("input")
        try:
            if name == HTTP_ACTIVITY and self._http is not None:
                result = await self._http(raw_input or "{}")
            else:
                result = await self._invoke(name, raw_input if raw_input is not None else "null")
        except BuiltInActivityError as exc:
            event = h.task_failed(to_datetime(self._clock()), task_id, exc.reason, exc.details)
        except UnknownFunctionError:
            event = h.task_failed(
                to_datetime(self._clock()),
                task_id,
                f"The function '{name}' doesn't exist, is disabled, or is not an activity function. "
                "Additional info: the following are the known activity functions: see the host log.",
                None,
            )
        except Exception as exc:  # the user's code failed; the orchestrator sees TaskFailed
            reason, details = activity_failure(name, exc)
            event = h.task_failed(to_datetime(self._clock()), task_id, reason, details)
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
