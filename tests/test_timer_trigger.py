"""Timer triggers on a fake clock: occurrences, runOnStartup, past-due after downtime, one run at a time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.meta import Datum
from azure.functions.timer import TimerRequestConverter

from durableagent.devhost._functions import IndexedFunction
from durableagent.devhost._history import parse_timestamp
from durableagent.devhost._timer_trigger import TimerScheduler
from durableagent.devhost._trigger_input import TriggerInput


def at(text: str) -> datetime:
    return parse_timestamp(text)  # any fraction length, also on 3.10


def timer_function(name: str = "tick", schedule: str = "0 */5 * * * *", **options: Any) -> IndexedFunction:
    trigger = {"direction": "IN", "type": "timerTrigger", "name": "t", "schedule": schedule, **options}
    return IndexedFunction(name=name, trigger=trigger, bindings=(trigger,), user_function=lambda t: None)


class FakeClock:
    """Virtual time: when every timer loop is asleep, jump to the earliest wake-up; park at ``until``.

    Args:
        sleepers: How many timer loops share the clock (time moves only when all of them sleep).
    """

    def __init__(self, start: str, until: str, sleepers: int = 1) -> None:
        self.now_value = at(start)
        self.until = at(until)
        self.sleepers = sleepers
        self.parked = asyncio.Event()
        self._waiting: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self.now_value

    def advance(self, seconds: float) -> None:
        self.now_value += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        wake_up = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (self.now_value + timedelta(seconds=seconds), next(self._order), wake_up))
        if len(self._waiting) >= self.sleepers:
            moment, _, earliest = heapq.heappop(self._waiting)
            if moment > self.until:
                self.now_value = self.until
                self.parked.set()  # and nobody wakes up again until the scheduler is stopped
            else:
                self.now_value = max(self.now_value, moment)
                earliest.set_result(None)
        await wake_up
        await asyncio.sleep(0)


class Recorder:
    """The injected invoke: records each firing with the fake time it happened at."""

    def __init__(self, clock: FakeClock, behaviour: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.clock = clock
        self.calls: list[tuple[datetime, dict[str, Any], str]] = []
        self.behaviour = behaviour

    async def __call__(self, function: IndexedFunction, trigger: TriggerInput) -> None:
        assert trigger.data_type == "json" and trigger.metadata == {}
        assert isinstance(trigger.data, str)
        self.calls.append((self.clock.now(), json.loads(trigger.data), trigger.data))
        if self.behaviour is not None:
            await self.behaviour(len(self.calls))

    @property
    def times(self) -> list[datetime]:
        return [t for t, _, _ in self.calls]

    def payloads(self) -> list[dict[str, Any]]:
        return [p for _, p, _ in self.calls]


async def run_until_parked(scheduler: TimerScheduler, clock: FakeClock) -> None:
    await scheduler.start()
    try:
        await asyncio.wait_for(clock.parked.wait(), timeout=10)
    finally:
        await scheduler.stop()


def timer_request(raw: str) -> func.TimerRequest:
    """Decode the payload with the worker's own converter, as the function would receive it."""
    request = TimerRequestConverter.decode(Datum(raw, "json"), trigger_metadata={})
    assert isinstance(request, func.TimerRequest)
    return request


def test_fires_at_each_occurrence(tmp_path: Path) -> None:
    async def main() -> Recorder:
        clock = FakeClock("2024-01-01T10:00:30", until="2024-01-01T10:21:00")
        recorder = Recorder(clock)
        scheduler = TimerScheduler([timer_function()], recorder, tmp_path, now=clock.now, sleep=clock.sleep)
        await run_until_parked(scheduler, clock)
        return recorder

    recorder = asyncio.run(main())
    assert recorder.times == [at(f"2024-01-01T10:{m}:00") for m in ("05", "10", "15", "20")]
    # The exact JSON the host sends, ScheduleStatus included because the monitor is on.
    assert recorder.calls[0][2] == (
        '{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"0001-01-01T00:00:00+00:00",'
        '"Next":"2024-01-01T10:05:00+00:00","LastUpdated":"0001-01-01T00:00:00+00:00"},"IsPastDue":false}'
    )
    second = recorder.payloads()[1]
    assert second["ScheduleStatus"] == {
        "Last": "2024-01-01T10:05:00+00:00",
        "Next": "2024-01-01T10:10:00+00:00",
        "LastUpdated": "2024-01-01T10:05:00+00:00",
    }
    request = timer_request(recorder.calls[1][2])
    assert request.past_due is False
    assert request.schedule == {"AdjustForDST": True}
    assert request.schedule_status["Next"] == "2024-01-01T10:10:00+00:00"


def test_other_triggers_are_ignored(tmp_path: Path) -> None:
    queue = {"type": "queueTrigger", "name": "m", "queueName": "q"}
    other = IndexedFunction(name="q", trigger=queue, bindings=(queue,), user_function=lambda m: None)

    async def invoke(function: IndexedFunction, trigger: TriggerInput) -> None:
        raise AssertionError("not a timer")

    assert TimerScheduler([other, timer_function()], invoke, tmp_path).function_names == ("tick",)


def test_run_on_startup_fires_once(tmp_path: Path) -> None:
    async def main() -> Recorder:
        clock = FakeClock("2024-01-01T10:00:30", until="2024-01-01T10:04:00")
        recorder = Recorder(clock)
        function = timer_function(runOnStartup=True, useMonitor=False)
        scheduler = TimerScheduler([function], recorder, tmp_path, now=clock.now, sleep=clock.sleep)
        await run_until_parked(scheduler, clock)
        return recorder

    recorder = asyncio.run(main())
    assert recorder.times == [at("2024-01-01T10:00:30")]
    assert recorder.calls[0][2] == '{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}'
    assert timer_request(recorder.calls[0][2]).past_due is False
    # useMonitor false: nothing persisted.
    assert not (tmp_path / "tick.json").exists()


def test_past_due_after_downtime(tmp_path: Path) -> None:
    async def first_run() -> Recorder:
        clock = FakeClock("2024-01-01T10:00:30", until="2024-01-01T10:06:00")
        recorder = Recorder(clock)
        scheduler = TimerScheduler([timer_function()], recorder, tmp_path, now=clock.now, sleep=clock.sleep)
        await run_until_parked(scheduler, clock)
        return recorder

    assert asyncio.run(first_run()).times == [at("2024-01-01T10:05:00")]
    monitor = json.loads((tmp_path / "tick.json").read_text())
    assert monitor == {
        "Last": "2024-01-01T10:05:00+00:00",
        "Next": "2024-01-01T10:10:00+00:00",
        "LastUpdated": "2024-01-01T10:05:00+00:00",
    }

    # Down from 10:06 to 10:27: 10:10, 10:15, 10:20 and 10:25 were missed; they run once, at start.
    async def after_downtime() -> tuple[Recorder, TimerScheduler]:
        clock = FakeClock("2024-01-01T10:27:00", until="2024-01-01T10:29:00")
        recorder = Recorder(clock)
        scheduler = TimerScheduler([timer_function()], recorder, tmp_path, now=clock.now, sleep=clock.sleep)
        await run_until_parked(scheduler, clock)
        return recorder, scheduler

    recorder, scheduler = asyncio.run(after_downtime())
    assert recorder.times == [at("2024-01-01T10:27:00")]
    payload = recorder.payloads()[0]
    assert payload["IsPastDue"] is True
    assert payload["ScheduleStatus"]["Next"] == "2024-01-01T10:10:00+00:00"
    assert timer_request(recorder.calls[0][2]).past_due is True
    # The schedule resumes from the past-due run.
    status = scheduler.status("tick")
    assert status is not None and status.next == at("2024-01-01T10:30:00")
    assert json.loads((tmp_path / "tick.json").read_text())["Last"] == "2024-01-01T10:27:00+00:00"


def test_no_past_due_on_first_start_or_when_schedule_changed(tmp_path: Path) -> None:
    async def run(schedule: str, start: str, until: str) -> Recorder:
        clock = FakeClock(start, until=until)
        recorder = Recorder(clock)
        function = timer_function(schedule=schedule)
        scheduler = TimerScheduler([function], recorder, tmp_path, now=clock.now, sleep=clock.sleep)
        await run_until_parked(scheduler, clock)
        return recorder

    # First start: the monitor file is written at once, and nothing is past due.
    assert asyncio.run(run("0 */5 * * * *", "2024-01-01T10:00:30", "2024-01-01T10:01:00")).times == []
    assert json.loads((tmp_path / "tick.json").read_text())["Next"] == "2024-01-01T10:05:00+00:00"
    # Down past 10:05: past due.
    late = asyncio.run(run("0 */5 * * * *", "2024-01-01T10:07:00", "2024-01-01T10:08:00"))
    assert [p["IsPastDue"] for p in late.payloads()] == [True]
    # Now the schedule changes to hourly while down past the old Next (10:10): not past due.
    changed = asyncio.run(run("0 0 * * * *", "2024-01-01T10:12:00", "2024-01-01T10:13:00"))
    assert changed.times == []
    assert json.loads((tmp_path / "tick.json").read_text())["Next"] == "2024-01-01T11:00:00+00:00"


def test_sub_minute_schedule_disables_the_monitor(tmp_path: Path) -> None:
    async def main() -> Recorder:
        clock = FakeClock("2024-01-01T10:00:00.5", until="2024-01-01T10:00:31")
        recorder = Recorder(clock)
        function = timer_function(schedule="*/10 * * * * *", useMonitor=True)
        scheduler = TimerScheduler([function], recorder, tmp_path, now=clock.now, sleep=clock.sleep)
        await run_until_parked(scheduler, clock)
        return recorder

    recorder = asyncio.run(main())
    assert recorder.times == [at(f"2024-01-01T10:00:{s}") for s in ("10", "20", "30")]
    assert all(p["ScheduleStatus"] is None for p in recorder.payloads())
    assert not (tmp_path / "tick.json").exists()


def test_a_long_run_never_overlaps_the_next(tmp_path: Path) -> None:
    active = 0
    most_active = 0

    async def main() -> Recorder:
        clock = FakeClock("2024-01-01T10:00:30", until="2024-01-01T10:05:30")

        async def slow_first_run(call: int) -> None:
            nonlocal active, most_active
            active += 1
            most_active = max(most_active, active)
            if call == 1:
                clock.advance(150)  # 10:01:00 -> 10:03:30: the 10:02 and 10:03 occurrences pass meanwhile
            await asyncio.sleep(0.01)
            active -= 1

        recorder = Recorder(clock, slow_first_run)
        function = timer_function(schedule="0 * * * * *")
        scheduler = TimerScheduler([function], recorder, tmp_path, now=clock.now, sleep=clock.sleep)
        await run_until_parked(scheduler, clock)
        return recorder

    recorder = asyncio.run(main())
    assert most_active == 1
    # The missed occurrences collapse into one run right after the long one, then the schedule resumes.
    assert recorder.times == [
        at("2024-01-01T10:01:00"),
        at("2024-01-01T10:03:30"),
        at("2024-01-01T10:04:00"),
        at("2024-01-01T10:05:00"),
    ]


def test_failures_are_logged_and_the_schedule_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def fail_first(call: int) -> None:
        if call == 1:
            raise RuntimeError("boom")

    async def main() -> Recorder:
        clock = FakeClock("2024-01-01T10:00:30", until="2024-01-01T10:16:00")
        recorder = Recorder(clock, fail_first)
        scheduler = TimerScheduler([timer_function()], recorder, tmp_path, now=clock.now, sleep=clock.sleep)
        await run_until_parked(scheduler, clock)
        return recorder

    with caplog.at_level(logging.ERROR, logger="durableagent.devhost.timer"):
        recorder = asyncio.run(main())
    assert recorder.times == [at(f"2024-01-01T10:{m}:00") for m in ("05", "10", "15")]
    failures = [r for r in caplog.records if r.name == "durableagent.devhost.timer" and r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "tick" in failures[0].getMessage() and failures[0].exc_info is not None
    # The failed run still counts as the 10:05 run.
    assert json.loads((tmp_path / "tick.json").read_text())["Last"] == "2024-01-01T10:15:00+00:00"


def test_stop_lets_a_run_in_progress_finish(tmp_path: Path) -> None:
    finished = False

    async def main() -> None:
        nonlocal finished
        clock = FakeClock("2024-01-01T10:00:30", until="2024-01-01T10:01:00")
        started = asyncio.Event()

        async def slow(call: int) -> None:
            nonlocal finished
            started.set()
            await asyncio.sleep(0.05)
            finished = True

        recorder = Recorder(clock, slow)
        function = timer_function(runOnStartup=True)
        scheduler = TimerScheduler([function], recorder, tmp_path, now=clock.now, sleep=clock.sleep)
        await scheduler.start()
        await asyncio.wait_for(started.wait(), timeout=5)
        await scheduler.stop()
        assert finished
        # ... and its status was recorded.
        assert json.loads((tmp_path / "tick.json").read_text())["Last"] == "2024-01-01T10:00:30+00:00"

    asyncio.run(main())


def test_several_timers_run_independently(tmp_path: Path) -> None:
    async def main() -> Recorder:
        clock = FakeClock("2024-01-01T10:00:30", until="2024-01-01T10:10:30", sleepers=2)
        recorder = Recorder(clock)
        functions = [timer_function("five"), timer_function("ten", schedule="0 */10 * * * *")]
        scheduler = TimerScheduler(functions, recorder, tmp_path, now=clock.now, sleep=clock.sleep)
        await run_until_parked(scheduler, clock)
        return recorder

    recorder = asyncio.run(main())
    assert sorted(recorder.times) == [
        at("2024-01-01T10:05:00"),
        at("2024-01-01T10:10:00"),
        at("2024-01-01T10:10:00"),
    ]
    assert (tmp_path / "five.json").exists() and (tmp_path / "ten.json").exists()


def test_invalid_schedule_names_the_function(tmp_path: Path) -> None:
    async def invoke(function: IndexedFunction, trigger: TriggerInput) -> None:
        pass

    with pytest.raises(ValueError, match="nightly"):
        TimerScheduler([timer_function("nightly", schedule="0 0 * * *")], invoke, tmp_path)


def test_real_clock_smoke(tmp_path: Path) -> None:
    """Default clock and sleep: a TimeSpan timer fires on real time."""
    fired: list[str] = []

    async def invoke(function: IndexedFunction, trigger: TriggerInput) -> None:
        assert isinstance(trigger.data, str)
        fired.append(trigger.data)

    async def main() -> None:
        scheduler = TimerScheduler([timer_function(schedule="00:00:00.2")], invoke, tmp_path)
        await scheduler.start()
        await asyncio.sleep(0.5)
        await scheduler.stop()

    asyncio.run(main())
    assert 1 <= len(fired) <= 3
