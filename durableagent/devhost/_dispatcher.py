"""The work loop: finds ready orchestrations, activities and entities, and runs them concurrently.

Wakes on every store commit and at the next delayed message (durable timers), never on a fixed poll.
One episode per orchestration instance and one batch per entity run at a time; that, together with
the store's single-transaction commits, is all the locking a single-process host needs.

The Python worker shares this process, and its GIL, with the host. While the SDK replays a long
history (every episode hands it the whole history), the host's dispatch, the activities and HTTP
barely run; back-to-back replays of one wide orchestration starved the very activities it waits for,
so it ran ever more episodes over ever longer histories. After an episode that took longer than
``_REST_AFTER_SECONDS``, the instance therefore rests as long as that episode took before its next
one: replaying one instance takes at most about half the time, and whatever arrives meanwhile is
delivered together in the next episode (the extension's work item holds all of an instance's
pending messages). Short episodes, the common case, never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ._activities import ActivityWorker
from ._entities import EntityWorker
from ._orchestrations import OrchestrationWorker
from ._store import ACTIVITY, ENTITY, ORCHESTRATION, TaskHubStore

_log = logging.getLogger("durableagent.devhost.dispatcher")

# Upper bound on how long the loop sleeps with nothing due, so a clock jump is noticed.
_MAX_IDLE_SECONDS = 5.0
# A work item that failed for a host reason is retried after this delay.
_RETRY_DELAY_SECONDS = 1.0
# An orchestration episode longer than this makes its instance rest as long before the next one
# (a replay of about a thousand events); the rest is capped so a timer is never held up for long.
_REST_AFTER_SECONDS = 0.05
_MAX_REST_SECONDS = 2.0


@dataclass(frozen=True)
class Concurrency:
    orchestrations: int = 10
    activities: int = 10
    entities: int = 10


class Dispatcher:
    """Drives the three workers until stopped."""

    def __init__(
        self,
        store: TaskHubStore,
        orchestrations: OrchestrationWorker,
        activities: ActivityWorker,
        entities: EntityWorker,
        clock: Callable[[], float],
        limits: Concurrency = Concurrency(),
    ) -> None:
        self._store = store
        self._orchestrations = orchestrations
        self._activities = activities
        self._entities = entities
        self._clock = clock
        self._limits = limits
        self._wake = asyncio.Event()
        self._busy_instances: set[str] = set()
        self._busy_entities: set[str] = set()
        self._busy_activities: set[int] = set()
        self._backoff: dict[str | int, float] = {}
        # Instances resting after a long episode, until when on time.monotonic() (real time, whatever
        # the host clock says: see the module docstring).
        self._resting: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Called after every commit; safe to call from the loop thread only."""
        self._wake.set()

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="durable-dispatcher")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()

    @property
    def idle(self) -> bool:
        return not self._tasks

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                self._schedule_ready()
            except Exception:  # a host fault must not stop the loop
                _log.exception("Dispatcher failed to schedule work")
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        now = self._clock()
        timeout = _MAX_IDLE_SECONDS
        next_due = self._store.next_visible_at(now)
        if next_due is not None:
            timeout = min(timeout, max(0.0, next_due - now))
        if self._backoff:
            timeout = min(timeout, max(0.0, min(self._backoff.values()) - now))
        if self._resting:
            timeout = min(timeout, max(0.0, min(self._resting.values()) - time.monotonic()))
        with contextlib.suppress(asyncio.TimeoutError):  # what wait_for raises on 3.10 (TimeoutError from 3.11)
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    def _schedule_ready(self) -> None:
        now = self._clock()
        self._backoff = {k: v for k, v in self._backoff.items() if v > now}
        awake = time.monotonic()
        self._resting = {k: v for k, v in self._resting.items() if v > awake}
        free = self._limits.orchestrations - len(self._busy_instances)
        if free > 0:
            exclude = self._busy_instances | self._resting.keys() | {k for k in self._backoff if isinstance(k, str)}
            for instance_id in self._store.ready_targets(ORCHESTRATION, now, exclude, free):
                self._busy_instances.add(instance_id)
                self._spawn(self._orchestrations.process(instance_id), self._busy_instances, instance_id, rests=True)
        free = self._limits.entities - len(self._busy_entities)
        if free > 0:
            exclude = self._busy_entities | {k for k in self._backoff if isinstance(k, str)}
            for scheduler_id in self._store.ready_targets(ENTITY, now, exclude, free):
                self._busy_entities.add(scheduler_id)
                self._spawn(self._entities.process(scheduler_id), self._busy_entities, scheduler_id)
        free = self._limits.activities - len(self._busy_activities)
        if free > 0:
            for message in self._store.ready_messages(ACTIVITY, now, exclude=self._busy_activities, limit=free):
                self._busy_activities.add(message.id)
                self._spawn(self._activities.process(message), self._busy_activities, message.id)

    def _spawn(self, work: Coroutine[Any, Any, None], busy: set[Any], key: str | int, *, rests: bool = False) -> None:
        async def run() -> None:
            began = time.monotonic()
            try:
                await work
                took = time.monotonic() - began
                if rests and isinstance(key, str) and took > _REST_AFTER_SECONDS:
                    self._resting[key] = time.monotonic() + min(took, _MAX_REST_SECONDS)
            except Exception:
                # The work item's messages stay in the store; try again after a pause.
                _log.exception("Work item %s failed; it will be retried", key)
                self._backoff[key] = self._clock() + _RETRY_DELAY_SECONDS
            finally:
                busy.discard(key)
                self._wake.set()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
