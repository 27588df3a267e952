"""ISO times parse the same on Python 3.10 as on 3.11+ for the forms the host meets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from durableagent.devhost._history import format_timestamp, parse_timestamp
from durableagent.devhost._isotime import parse_iso_datetime

UTC = timezone.utc
PLUS_TWO = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31", datetime(2024, 1, 31)),
        ("2024-01-31T10:00:00", datetime(2024, 1, 31, 10)),
        ("2024-01-31T10:00:00Z", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        ("2024-01-31T10:00:00z", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        # .NET's round-trip format: 7 digits, the last one dropped.
        ("2026-12-03T11:28:54.4763109Z", datetime(2026, 12, 3, 11, 28, 54, 476310, tzinfo=UTC)),
        ("2020-07-23T21:56:54.9367Z", datetime(2020, 7, 23, 21, 56, 54, 936700, tzinfo=UTC)),
        ("2024-01-31T10:00:00.5+02:00", datetime(2024, 1, 31, 10, 0, 0, 500000, tzinfo=PLUS_TWO)),
        ("2024-01-31T10:00:00,25", datetime(2024, 1, 31, 10, 0, 0, 250000)),
        ("2024-01-31T10:00:00.123", datetime(2024, 1, 31, 10, 0, 0, 123000)),
        (" 2024-01-31 10:00:00.1Z ", datetime(2024, 1, 31, 10, 0, 0, 100000, tzinfo=UTC)),
    ],
)
def test_iso_forms_parse(text: str, expected: datetime) -> None:
    parsed = parse_iso_datetime(text)
    assert parsed == expected and parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("text", ["", "yesterday", "2024-01-31T10:00:00.", "2024-13-01", "2024-01-31T10:00:00.5Q"])
def test_non_iso_text_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso_datetime(text)


def test_history_timestamps_round_trip_with_seven_digits() -> None:
    moment = datetime(2026, 12, 3, 11, 28, 54, 476310, tzinfo=UTC)
    written = format_timestamp(moment.astimezone(PLUS_TWO))
    assert written == "2026-12-03T11:28:54.4763100Z"
    assert parse_timestamp(written) == moment


def test_history_timestamps_keep_a_non_utc_offset() -> None:
    # The digits of the offset are not fraction digits: 10:00:00.25+02:00 is 08:00:00.25 UTC.
    assert parse_timestamp("2024-01-31T10:00:00.25+02:00") == datetime(2024, 1, 31, 8, 0, 0, 250000, tzinfo=UTC)
    assert parse_timestamp("2024-01-31T10:00:00") == datetime(2024, 1, 31, 10, tzinfo=UTC)
