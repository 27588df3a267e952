"""Timer schedules: 6-field NCRONTAB, TimeSpan intervals, %SETTING% and WEBSITE_TIME_ZONE."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from durableagent.devhost._history import parse_timestamp
from durableagent.devhost._ncrontab import (
    CronSchedule,
    IntervalSchedule,
    parse_schedule,
    parse_timespan,
)


def at(text: str) -> datetime:
    return parse_timestamp(text)  # any fraction length, also on 3.10


def parse(schedule: str, **env: str) -> CronSchedule | IntervalSchedule:
    parsed = parse_schedule(schedule, function_name="my_timer", env=env)
    assert isinstance(parsed, CronSchedule | IntervalSchedule)
    return parsed


def occurrences(schedule: str, after: str, count: int, **env: str) -> list[datetime]:
    parsed = parse(schedule, **env)
    result, moment = [], at(after)
    for _ in range(count):
        moment = parsed.next_occurrence(moment)
        result.append(moment)
    return result


def test_second_resolution() -> None:
    assert occurrences("*/15 * * * * *", "2024-01-01T10:00:07", 3) == [
        at("2024-01-01T10:00:15"),
        at("2024-01-01T10:00:30"),
        at("2024-01-01T10:00:45"),
    ]
    assert occurrences("5,35 * * * * *", "2024-01-01T10:00:35", 2) == [
        at("2024-01-01T10:01:05"),
        at("2024-01-01T10:01:35"),
    ]


def test_every_five_minutes_is_strictly_after() -> None:
    assert occurrences("0 */5 * * * *", "2024-01-01T10:02:13.5", 2) == [
        at("2024-01-01T10:05:00"),
        at("2024-01-01T10:10:00"),
    ]
    # An occurrence exactly at the base time is not returned again.
    assert occurrences("0 */5 * * * *", "2024-01-01T10:05:00", 1) == [at("2024-01-01T10:10:00")]


def test_value_slash_step_means_value_to_max() -> None:
    assert occurrences("0 10/20 * * * *", "2024-01-01T10:00:00", 3) == [
        at("2024-01-01T10:10:00"),
        at("2024-01-01T10:30:00"),
        at("2024-01-01T10:50:00"),
    ]


def test_day_of_week_names_and_ranges() -> None:
    # 2024-01-06 is a Saturday.
    weekdays = occurrences("0 30 9 * * Mon-Fri", "2024-01-06T00:00:00", 2)
    assert weekdays == [at("2024-01-08T09:30:00"), at("2024-01-09T09:30:00")]
    assert occurrences("0 30 9 * * 1-5", "2024-01-06T00:00:00", 2) == weekdays
    # NCRONTAB accepts any prefix of the English name, in any case.
    assert occurrences("0 0 12 * * sunday", "2024-01-01T00:00:00", 1) == [at("2024-01-07T12:00:00")]
    assert occurrences("0 0 12 * * SUN", "2024-01-01T00:00:00", 1) == [at("2024-01-07T12:00:00")]
    assert occurrences("0 30 9 * Feb Mon", "2024-01-01T00:00:00", 1) == [at("2024-02-05T09:30:00")]
    assert parse("0 30 9 * January Mon").normalized == "0 30 9 * 1 1"  # type: ignore[union-attr]


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    # NCRONTAB ANDs the two day fields; Vixie cron would fire on every Friday and every 13th.
    assert occurrences("0 0 0 13 * Fri", "2024-01-01T00:00:00", 2) == [
        at("2024-09-13T00:00:00"),
        at("2024-12-13T00:00:00"),
    ]


def test_timespan_schedules() -> None:
    assert parse("00:05:00") == IntervalSchedule(timedelta(minutes=5))
    assert parse("1.00:00:00") == IntervalSchedule(timedelta(days=1))
    assert parse("01:30") == IntervalSchedule(timedelta(hours=1, minutes=30))
    assert occurrences("00:00:20", "2024-01-01T10:00:07", 2) == [
        at("2024-01-01T10:00:27"),
        at("2024-01-01T10:00:47"),
    ]


def test_timespan_forms() -> None:
    assert parse_timespan("00:00:00.5") == timedelta(milliseconds=500)
    assert parse_timespan("2.03:04:05") == timedelta(days=2, hours=3, minutes=4, seconds=5)
    assert parse_timespan("2:03:04:05") == timedelta(days=2, hours=3, minutes=4, seconds=5)
    # As the Functions docs say: a leading hh of 24 or more is days (dd:hh:mm).
    assert parse_timespan("24:00:00") == timedelta(days=24)
    assert parse_timespan("25:01:02") == timedelta(days=25, hours=1, minutes=2)
    for bad in ("1:60:00", "00:00:61", "1.24:00:00", "abc", "10"):
        with pytest.raises(ValueError):
            parse_timespan(bad)


def test_zero_interval_rejected() -> None:
    with pytest.raises(ValueError, match=r"my_timer.*zero interval"):
        parse("00:00:00")


def test_sub_minute_detection() -> None:
    # The host's rule: more than one occurrence within the minute after now.
    now = at("2024-01-01T10:00:00.250")
    assert parse("*/30 * * * * *").is_sub_minute(now)
    assert parse("00:00:59").is_sub_minute(now)
    assert not parse("0 * * * * *").is_sub_minute(now)
    assert not parse("0 */5 * * * *").is_sub_minute(now)
    assert not parse("00:01:00").is_sub_minute(now)


def test_setting_substitution() -> None:
    assert occurrences("%MY_SCHEDULE%", "2024-01-01T10:02:00", 1, MY_SCHEDULE="0 0 * * * *") == [
        at("2024-01-01T11:00:00")
    ]
    assert occurrences("0 */%MINUTES% * * * *", "2024-01-01T10:02:00", 1, MINUTES="15") == [at("2024-01-01T10:15:00")]
    assert parse("%EVERY%", EVERY="00:10:00") == IntervalSchedule(timedelta(minutes=10))
    with pytest.raises(ValueError, match=r"my_timer.*'MISSING'"):
        parse("%MISSING%")


def test_five_field_expressions_rejected() -> None:
    with pytest.raises(ValueError, match=r"my_timer.*5 fields.*6-field") as info:
        parse("*/5 * * * *")
    assert "'0 */5 * * * *'" in str(info.value)


@pytest.mark.parametrize(
    "schedule",
    [
        "",
        "every day",
        "0 0 25 * * *",  # hour out of range
        "60 * * * * *",  # second out of range
        "0 0 0 * * 7",  # NCRONTAB's day of week is 0-6
        "0 0 0 L * *",  # croniter extensions Azure would reject
        "0 0 0 * * 1#2",
        "0 0 0 ? * *",
        "0 0 0 * Smarch *",
        "0 */0 * * * *",
        "0 30-10 * * * *",
        "0 0 0 30 2 *",  # never occurs
        "0 0 0 0 0 0 0",
    ],
)
def test_malformed_expressions_rejected(schedule: str) -> None:
    with pytest.raises(ValueError, match="my_timer"):
        parse(schedule)


def test_time_zone_from_website_time_zone() -> None:
    # 09:00 in New York is 14:00 UTC in winter, 13:00 UTC in summer.
    ny = {"WEBSITE_TIME_ZONE": "America/New_York"}
    assert occurrences("0 0 9 * * *", "2024-01-15T00:00:00", 1, **ny) == [at("2024-01-15T14:00:00")]
    assert occurrences("0 0 9 * * *", "2024-07-15T00:00:00", 1, **ny) == [at("2024-07-15T13:00:00")]
    # Windows zone ids, as set on Windows plans, work too.
    windows = {"WEBSITE_TIME_ZONE": "Eastern Standard Time"}
    assert occurrences("0 0 9 * * *", "2024-01-15T00:00:00", 1, **windows) == [at("2024-01-15T14:00:00")]
    # Results are UTC whatever the zone.
    assert parse("0 0 9 * * *", **ny).next_occurrence(at("2024-01-15T00:00:00")).tzinfo is timezone.utc
    with pytest.raises(ValueError, match="WEBSITE_TIME_ZONE"):
        parse("0 0 9 * * *", WEBSITE_TIME_ZONE="Mars/Olympus_Mons")


def test_default_time_zone_is_utc() -> None:
    assert occurrences("0 0 9 * * *", "2024-01-15T00:00:00", 1) == [at("2024-01-15T09:00:00")]


def test_naive_datetimes_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("0 0 9 * * *").next_occurrence(datetime(2024, 1, 1))
