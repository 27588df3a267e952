"""Timer-trigger schedules as the Functions host reads them: 6-field NCRONTAB or a TimeSpan interval.

The host (WebJobs ``TimerSchedule.Create``) first tries NCRONTAB with seconds, then .NET ``TimeSpan``;
anything else fails the function at start-up. NCRONTAB differs from Vixie cron in ways users can see,
and we keep them: six fields with seconds first, day-of-month AND day-of-week must both match, day of
week is 0-6, and a name may be any prefix of the English month or day name (``Mon``, ``Monday``).
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from ._trigger_input import resolve_setting_references

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "TimerSchedule",
    "parse_schedule",
    "parse_timespan",
    "schedule_time_zone",
]

TIME_ZONE_SETTING = "WEBSITE_TIME_ZONE"
_SIX_FIELDS = "'{second} {minute} {hour} {day} {month} {day-of-week}'"


class TimerSchedule(ABC):
    """A schedule the timer listener can ask for its next occurrence."""

    @abstractmethod
    def next_occurrence(self, after: datetime) -> datetime:
        """The first occurrence strictly after ``after`` (both UTC-aware)."""

    @abstractmethod
    def is_sub_minute(self, now: datetime) -> bool:
        """Whether occurrences come more often than once a minute.

        The host then turns the schedule monitor off, whatever ``useMonitor`` says.
        """


@dataclass(frozen=True)
class CronSchedule(TimerSchedule):
    """A 6-field NCRONTAB schedule, evaluated in ``time_zone``.

    Attributes:
        expression: The expression after ``%SETTING%`` substitution, as the user wrote it.
        time_zone: Where wall-clock fields are read (``WEBSITE_TIME_ZONE``, default UTC).
        normalized: The same schedule with names and ``n/step`` spelled out numerically, for croniter.
    """

    expression: str
    time_zone: tzinfo
    normalized: str

    def next_occurrence(self, after: datetime) -> datetime:
        local = _require_aware(after).astimezone(self.time_zone)
        # day_or=False: NCRONTAB requires both day fields to match, unlike Vixie cron.
        itr = croniter(self.normalized, local, ret_type=datetime, second_at_beginning=True, day_or=False)
        nxt: datetime = itr.get_next()
        return nxt.astimezone(timezone.utc)

    def is_sub_minute(self, now: datetime) -> bool:
        # The host's test: more than one occurrence within the next minute.
        first = self.next_occurrence(now)
        return self.next_occurrence(first) < now + timedelta(minutes=1)


@dataclass(frozen=True)
class IntervalSchedule(TimerSchedule):
    """A TimeSpan schedule: a fixed interval counted from the previous occurrence."""

    interval: timedelta

    def next_occurrence(self, after: datetime) -> datetime:
        return _require_aware(after).astimezone(timezone.utc) + self.interval

    def is_sub_minute(self, now: datetime) -> bool:
        return self.interval < timedelta(minutes=1)


def parse_schedule(schedule: str, *, function_name: str, env: Mapping[str, str] | None = None) -> TimerSchedule:
    """Parse a timer trigger's ``schedule`` the way the Functions host does.

    Args:
        schedule: The binding's ``schedule``; ``%SETTING%`` references are resolved first.
        function_name: Named in every error, so the user knows which function to fix.
        env: App settings (``%SETTING%`` values and ``WEBSITE_TIME_ZONE``); defaults to the environment.

    Raises:
        ValueError: The schedule is neither a 6-field NCRONTAB expression nor a TimeSpan, never fires,
            or names an unknown time zone.
    """
    resolved = resolve_setting_references(schedule, function_name=function_name, what="schedule", env=env).strip()
    fields = resolved.split()
    if len(fields) == 6:
        try:
            normalized = " ".join(_normalize_field(spec, text) for spec, text in zip(_FIELDS, fields, strict=True))
        except ValueError as exc:
            raise ValueError(f"Function '{function_name}': invalid schedule {resolved!r}: {exc}") from None
        cron = CronSchedule(resolved, schedule_time_zone(env), normalized)
        try:
            cron.next_occurrence(datetime.now(timezone.utc))
        except (CroniterError, ValueError) as exc:
            # Valid fields that never line up (30 February) end up here.
            raise ValueError(f"Function '{function_name}': schedule {resolved!r} never occurs ({exc})") from None
        return cron
    if len(fields) == 5:
        raise ValueError(
            f"Function '{function_name}': schedule {resolved!r} has 5 fields; Azure Functions uses "
            f"6-field NCRONTAB with seconds first, {_SIX_FIELDS} (e.g. '0 {resolved}')"
        )
    try:
        interval = parse_timespan(resolved)
    except ValueError:
        raise ValueError(
            f"Function '{function_name}': schedule {resolved!r} is neither a 6-field NCRONTAB "
            f"expression ({_SIX_FIELDS}) nor a TimeSpan ('hh:mm:ss')"
        ) from None
    if interval <= timedelta(0):
        raise ValueError(f"Function '{function_name}': schedule {resolved!r} is a zero interval")
    return IntervalSchedule(interval)


# [d.]hh:mm[:ss[.fffffff]], and d:hh:mm:ss; .NET TimeSpan.Parse's invariant forms.
_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<a>\d+):(?P<b>\d+)(?::(?P<c>\d+)(?:\.(?P<frac>\d{1,7}))?)?$")
_TIMESPAN_4 = re.compile(r"^(?P<days>\d+):(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)(?:\.(?P<frac>\d{1,7}))?$")


def parse_timespan(text: str) -> timedelta:
    """Parse a .NET-style TimeSpan (``hh:mm:ss``, ``d.hh:mm:ss``, ``d:hh:mm:ss``, ``hh:mm``).

    As in .NET (and the Functions docs), a leading ``hh`` of 24 or more without a day part means days:
    ``"24:00:00"`` is 24 days, not 24 hours.

    Raises:
        ValueError: Not a TimeSpan, or a component out of range.
    """
    text = text.strip()
    frac = "0"
    if match := _TIMESPAN_4.match(text):
        days, hours, minutes, seconds = (int(match[k]) for k in ("days", "h", "m", "s"))
        frac = match["frac"] or "0"
    elif match := _TIMESPAN.match(text):
        a, b = int(match["a"]), int(match["b"])
        c = None if match["c"] is None else int(match["c"])
        frac = match["frac"] or "0"
        if match["days"] is None and a >= 24:
            if match["frac"] is not None:
                raise ValueError(f"{text!r} is not a TimeSpan")
            days, hours, minutes, seconds = a, b, (c or 0), 0
        else:
            days, hours, minutes, seconds = int(match["days"] or 0), a, b, (c or 0)
    else:
        raise ValueError(f"{text!r} is not a TimeSpan")
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a TimeSpan: a component is out of range")
    fraction = timedelta(microseconds=round(int(frac.ljust(7, "0")) / 10))
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds) + fraction


# Windows zone ids people copy from Azure's Windows plans; Linux plans and we use IANA names.
_WINDOWS_ZONES = {
    "utc": "UTC",
    "gmt standard time": "Europe/London",
    "w. europe standard time": "Europe/Berlin",
    "central europe standard time": "Europe/Budapest",
    "romance standard time": "Europe/Paris",
    "eastern standard time": "America/New_York",
    "central standard time": "America/Chicago",
    "mountain standard time": "America/Denver",
    "pacific standard time": "America/Los_Angeles",
    "tokyo standard time": "Asia/Tokyo",
    "china standard time": "Asia/Shanghai",
    "india standard time": "Asia/Kolkata",
    "aus eastern standard time": "Australia/Sydney",
}


def schedule_time_zone(env: Mapping[str, str] | None = None) -> tzinfo:
    """The zone NCRONTAB fields are read in: ``WEBSITE_TIME_ZONE`` (IANA or common Windows ids), else UTC.

    Raises:
        ValueError: The setting names a zone this machine does not know.
    """
    name = (os.environ if env is None else env).get(TIME_ZONE_SETTING, "").strip()
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(_WINDOWS_ZONES.get(name.lower(), name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{TIME_ZONE_SETTING}={name!r} is not a known time zone; use an IANA name such as 'Europe/London'"
        ) from None


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()


_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_FIELDS = (
    _FieldSpec("second", 0, 59),
    _FieldSpec("minute", 0, 59),
    _FieldSpec("hour", 0, 23),
    _FieldSpec("day", 1, 31),
    _FieldSpec("month", 1, 12, _MONTHS),
    _FieldSpec("day-of-week", 0, 6, _DAYS),
)

_ELEMENT = re.compile(r"^(?P<base>\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?$")


def _normalize_field(spec: _FieldSpec, text: str) -> str:
    """Check one field against NCRONTAB's grammar and spell it numerically for croniter.

    croniter accepts more than NCRONTAB (``L``, ``W``, ``#``, ``?``, ``H``, day-of-week 7); Azure would
    reject those, so we do too rather than run a schedule that fails on deployment.
    """
    return ",".join(_normalize_element(spec, element) for element in text.split(","))


def _normalize_element(spec: _FieldSpec, element: str) -> str:
    match = _ELEMENT.match(element)
    if match is None:
        raise ValueError(f"{element!r} is not a valid {spec.name} field")
    step = match["step"]
    if step is not None and int(step) == 0:
        raise ValueError(f"{element!r}: the step of the {spec.name} field must be at least 1")
    suffix = "" if step is None else f"/{int(step)}"
    base = match["base"]
    if base == "*":
        return f"*{suffix}"
    first_text, _, last_text = base.partition("-")
    first = _value(spec, first_text)
    if last_text:
        last = _value(spec, last_text)
    elif step is not None:
        # NCRONTAB reads "n/step" as "n-max/step".
        last = spec.high
    else:
        return str(first)
    if first > last:
        raise ValueError(f"{element!r}: the {spec.name} range runs backwards")
    return f"{first}-{last}{suffix}"


def _value(spec: _FieldSpec, text: str) -> int:
    if text.isdigit():
        value = int(text)
        if not spec.low <= value <= spec.high:
            raise ValueError(f"{text} is out of range for the {spec.name} field ({spec.low}-{spec.high})")
        return value
    lowered = text.lower()
    for index, name in enumerate(spec.names):
        if name.startswith(lowered):
            return spec.low + index
    if spec.names:
        raise ValueError(f"{text!r} is not a {spec.name} name")
    raise ValueError(f"{text!r} is not a number ({spec.name} field)")


def _require_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("schedule times must be timezone-aware")
    return moment
