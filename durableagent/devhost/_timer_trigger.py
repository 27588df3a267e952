"""Timer triggers: fire each timer function on its schedule, with the Functions host's semantics.

Ported from the WebJobs timer extension (``TimerListener``, ``ScheduleMonitor``):

- ``runOnStartup`` runs the function once when the host starts;
- the schedule monitor records ``Last``/``Next``/``LastUpdated`` per function (Azure keeps it in the
  storage account; we keep a JSON file per function), and an occurrence missed while the host was down
  runs once at start with ``IsPastDue: true``. It is on unless ``useMonitor`` is false, and always off for
  schedules firing more than once a minute;
- one function never runs twice at once (the host's singleton lock). If a run outlasts the next
  occurrence, the missed occurrences collapse into one run that starts as soon as the previous one
  ends; the host does exactly this because it computes ``Next`` from the start of the last run;
- a failing function is logged and the schedule goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from enum import Enum
from pathlib import Path
from typing import Any

from ._functions import TIMER_TRIGGER, IndexedFunction
from ._ncrontab import TimerSchedule, parse_schedule, schedule_time_zone
from ._trigger_input import InvokeTrigger, TriggerInput

__all__ = ["ScheduleStatus", "TimerScheduler"]

logger = logging.getLogger("durableagent.devhost.timer")

# asyncio sleeps on the monotonic clock, which stops while a laptop sleeps; waking up at least this
# often re-reads the wall clock so an occurrence is not missed by the length of the nap.
_MAX_SLEEP_SECONDS = 60.0

# The host writes DateTime.MinValue for "never" (it has no null); the function sees it in ScheduleStatus.
_NEVER = "0001-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class ScheduleStatus:
    """What the schedule monitor records for one timer; ``None`` stands for the host's "never" value.

    Attributes:
        last: When the function last ran (the occurrence it ran for).
        next: The occurrence the timer waits for.
        last_updated: When ``next`` was last computed.
    """

    last: datetime | None
    next: datetime
    last_updated: datetime | None

    def to_json(self, zone: tzinfo = timezone.utc) -> dict[str, str]:
        """The ``ScheduleStatus`` object of the timer payload, times written in ``zone`` like the host."""
        return {
            "Last": _iso(self.last, zone),
            "Next": _iso(self.next, zone),
            "LastUpdated": _iso(self.last_updated, zone),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScheduleStatus:
        """Read a status written by :meth:`to_json`.

        Raises:
            ValueError: A field is missing or not an ISO time.
        """
        nxt = _parse_iso(data["Next"])
        if nxt is None:
            raise ValueError("ScheduleStatus.Next is unset")
        return cls(_parse_iso(data.get("Last")), nxt, _parse_iso(data.get("LastUpdated")))


class _Startup(Enum):
    NONE = "none"
    PAST_DUE = "past_due"
    RUN_ON_STARTUP = "run_on_startup"


class _Timer:
    """Per-function state; touched only from the scheduler's event loop."""

    def __init__(self, function: IndexedFunction, schedule: TimerSchedule, run_on_startup: bool, use_monitor: bool):
        self.function = function
        self.schedule = schedule
        self.run_on_startup = run_on_startup
        self.requested_monitor = use_monitor
        self.monitor = use_monitor
        self.status: ScheduleStatus | None = None
        self.loop_task: asyncio.Task[None] | None = None
        self.running: asyncio.Task[None] | None = None


class TimerScheduler:
    """Runs every timer-trigger function of an app on its schedule until stopped.

    Args:
        functions: The app's functions; those without a timer trigger are ignored.
        invoke: Runs one function for one firing; it raises when the function fails.
        state_dir: Where schedule-monitor files live (``<app>/.durableagent/timers``), one
            ``<function>.json`` each.
        env: App settings, for ``%SETTING%`` in schedules and ``WEBSITE_TIME_ZONE``; defaults to the
            environment.
        now: The wall clock (UTC-aware); tests pass a fake one.
        sleep: Waits that many seconds; tests pass one that advances their fake clock.
        stop_timeout: How long :meth:`stop` waits for runs in progress before cancelling them.

    Raises:
        ValueError: A timer function's schedule is invalid (the message names the function).
    """

    def __init__(
        self,
        functions: Iterable[IndexedFunction],
        invoke: InvokeTrigger,
        state_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        stop_timeout: float = 30.0,
    ) -> None:
        self._invoke = invoke
        self._state_dir = Path(state_dir)
        self._now = now or _utc_now
        self._sleep = sleep or asyncio.sleep
        self._stop_timeout = stop_timeout
        self._zone = schedule_time_zone(env)
        self._timers: dict[str, _Timer] = {}
        for function in functions:
            if function.trigger_type != TIMER_TRIGGER:
                continue
            trigger = function.trigger
            schedule = parse_schedule(str(trigger.get("schedule", "")), function_name=function.name, env=env)
            self._timers[function.name] = _Timer(
                function,
                schedule,
                run_on_startup=bool(trigger.get("runOnStartup") or False),
                # The decorator writes null when use_monitor is not given; the host's default is true.
                use_monitor=trigger.get("useMonitor") is not False,
            )
        self._started = False

    @property
    def function_names(self) -> tuple[str, ...]:
        """The timer functions this scheduler runs."""
        return tuple(self._timers)

    def status(self, function_name: str) -> ScheduleStatus | None:
        """The current schedule status of a timer function (``None`` before :meth:`start`)."""
        return self._timers[function_name].status

    def monitor_path(self, function_name: str) -> Path:
        """The schedule-monitor file of a timer function."""
        return self._state_dir / f"{function_name}.json"

    async def start(self) -> None:
        """Read the schedule monitors, then start each timer; past-due and ``runOnStartup`` runs begin now."""
        if self._started:
            raise RuntimeError("TimerScheduler already started")
        self._started = True
        for timer in self._timers.values():
            startup = self._prepare(timer)
            timer.loop_task = asyncio.create_task(self._run(timer, startup), name=f"timer:{timer.function.name}")

    async def stop(self) -> None:
        """Stop scheduling, let runs in progress finish (up to ``stop_timeout``), cancel the rest."""
        loops = [t.loop_task for t in self._timers.values() if t.loop_task is not None]
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        running = [t.running for t in self._timers.values() if t.running is not None and not t.running.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=self._stop_timeout)
            for task in late:
                logger.warning(
                    "Timer run %s did not finish within %.0f s of shutdown; cancelling it",
                    task.get_name(),
                    self._stop_timeout,
                )
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for timer in self._timers.values():
            timer.loop_task = None
            timer.running = None
        self._started = False

    # -- start-up -------------------------------------------------------------------------------

    def _prepare(self, timer: _Timer) -> _Startup:
        """The host's ``TimerListener.StartAsync``: settle the status and decide on a start-up run."""
        now = self._now()
        name = timer.function.name
        # The host disables monitoring of sub-minute schedules even when useMonitor is true.
        timer.monitor = timer.requested_monitor and not timer.schedule.is_sub_minute(now)
        past_due = False
        if timer.monitor:
            timer.status, past_due = self._check_past_due(timer, now)
        else:
            timer.status = ScheduleStatus(None, timer.schedule.next_occurrence(now), None)
        upcoming = _next_occurrences(timer.schedule, now, 5)
        logger.info(
            "Timer '%s' next occurrences (%s): %s",
            name,
            self._zone,
            ", ".join(o.astimezone(self._zone).isoformat() for o in upcoming),
        )
        if past_due:
            logger.info("Timer '%s' is past due (missed %s); running it now", name, timer.status.next.isoformat())
            return _Startup.PAST_DUE
        if timer.run_on_startup:
            return _Startup.RUN_ON_STARTUP
        return _Startup.NONE

    def _check_past_due(self, timer: _Timer, now: datetime) -> tuple[ScheduleStatus, bool]:
        """The host's ``ScheduleMonitor.CheckPastDueAsync``, reading and updating the monitor file."""
        schedule = timer.schedule
        stored = self._load(timer)
        if stored is None:
            # Record the next occurrence at once, so one missed before the first run is still caught.
            first = ScheduleStatus(None, schedule.next_occurrence(now), now)
            self._save(timer, first)
            # The function itself sees "never" for LastUpdated on a first start, as with the host.
            return ScheduleStatus(None, first.next, None), False
        if stored.last is not None:
            expected, updated = schedule.next_occurrence(stored.last), stored.last
        elif stored.last_updated is not None:
            expected, updated = schedule.next_occurrence(stored.last_updated), stored.last_updated
        else:
            expected, updated = schedule.next_occurrence(now), now
        if stored.next != expected:
            # The schedule changed while we were down: an occurrence of the new schedule that lies in
            # the past is not "missed", so start counting from now.
            if now > expected:
                expected, updated = schedule.next_occurrence(now), now
            stored = ScheduleStatus(None, expected, updated)
            self._save(timer, stored)
        return stored, now > stored.next

    def _load(self, timer: _Timer) -> ScheduleStatus | None:
        path = self.monitor_path(timer.function.name)
        try:
            return ScheduleStatus.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("Ignoring unreadable schedule monitor %s (%s); starting the schedule afresh", path, exc)
            return None

    def _save(self, timer: _Timer, status: ScheduleStatus) -> None:
        path = self.monitor_path(timer.function.name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(status.to_json()), encoding="utf-8")
            # Replace atomically so a crash mid-write cannot leave a torn file behind.
            os.replace(tmp, path)
        except OSError as exc:
            logger.warning("Could not write schedule monitor %s: %s", path, exc)

    # -- running --------------------------------------------------------------------------------

    async def _run(self, timer: _Timer, startup: _Startup) -> None:
        if startup is _Startup.PAST_DUE:
            await self._fire(timer, past_due=True)
        elif startup is _Startup.RUN_ON_STARTUP:
            await self._fire(timer, run_on_startup=True)
        while True:
            assert timer.status is not None
            await self._sleep_until(timer.status.next)
            await self._fire(timer)

    async def _sleep_until(self, moment: datetime) -> None:
        while (remaining := (moment - self._now()).total_seconds()) > 0:
            await self._sleep(min(remaining, _MAX_SLEEP_SECONDS))

    async def _fire(self, timer: _Timer, *, past_due: bool = False, run_on_startup: bool = False) -> None:
        # The run is its own task, shielded from the loop, so stop() can let it finish and record it.
        timer.running = asyncio.create_task(
            self._invoke_and_record(timer, past_due=past_due, run_on_startup=run_on_startup),
            name=f"timer-run:{timer.function.name}",
        )
        await asyncio.shield(timer.running)

    async def _invoke_and_record(self, timer: _Timer, *, past_due: bool, run_on_startup: bool) -> None:
        """The host's ``TimerListener.InvokeJobFunction``."""
        assert timer.status is not None
        invoked_at = self._now()
        payload = json.dumps(
            {
                "Schedule": {"AdjustForDST": True},
                "ScheduleStatus": timer.status.to_json(self._zone) if timer.monitor else None,
                "IsPastDue": past_due,
            },
            separators=(",", ":"),
        )
        try:
            await self._invoke(timer.function, TriggerInput(data=payload, data_type="json", metadata={}))
        except Exception:
            logger.exception("Timer function '%s' failed; the schedule continues", timer.function.name)
        # A timer that fires a little early (clock skew) must not compute the same Next twice.
        counted_from = invoked_at
        if not past_due and not run_on_startup and timer.status.next > invoked_at:
            counted_from = timer.status.next
        timer.status = ScheduleStatus(counted_from, timer.schedule.next_occurrence(counted_from), counted_from)
        if timer.monitor:
            self._save(timer, timer.status)


def _next_occurrences(schedule: TimerSchedule, after: datetime, count: int) -> list[datetime]:
    occurrences: list[datetime] = []
    moment = after
    for _ in range(count):
        moment = schedule.next_occurrence(moment)
        occurrences.append(moment)
    return occurrences


def _iso(moment: datetime | None, zone: tzinfo) -> str:
    return _NEVER if moment is None else moment.astimezone(zone).isoformat()


def _parse_iso(text: object) -> datetime | None:
    if text is None or text == _NEVER:
        return None
    if not isinstance(text, str):
        raise ValueError(f"not an ISO time: {text!r}")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"ISO time without an offset: {text!r}")
    # Anything within a year of "never" is "never", as the host's GetSafeStatusAsync treats it.
    if moment.astimezone(timezone.utc) < datetime(2, 1, 1, tzinfo=timezone.utc):
        return None
    return moment.astimezone(timezone.utc)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)
