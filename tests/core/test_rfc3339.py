"""One RFC 3339 parser and writer for the contracts and every later step (rci.core.rfc3339)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rci.core import rfc3339

REFERENCE_MS = 1795341600000  # 2026-11-22T10:00:00Z


@pytest.mark.parametrize(
    "text",
    ["2026-11-22T10:00:00Z", "2026-11-22t10:00:00z", "2026-11-22 10:00:00Z", "2026-11-22T12:00:00+02:00",
     "2026-11-22T10:00:00.000999999Z", "2026-11-22T09:30:00-00:30"],  # fmt: skip
)
def test_every_spelling_rfc3339_allows_reads_as_the_same_instant(text: str) -> None:
    assert rfc3339.epoch_ms(text) == REFERENCE_MS


def test_fractions_are_floored_to_milliseconds_without_float_rounding() -> None:
    assert rfc3339.epoch_ms("2026-11-22T10:00:00.123999Z") == REFERENCE_MS + 123
    assert rfc3339.epoch_ms("1969-12-31T23:59:59.9995Z") == -1


@pytest.mark.parametrize(
    "bad",
    ["", "yesterday", "2026-11-22T10:00:00", "2026-11-22", "2026-02-30T10:00:00Z", "2026-11-22T24:00:00Z",
     "2026-11-22T10:00:60Z", "2026-11-22T10:00:00+24:00", "2026-11-22T10:00:00Z\n", "٢٠٢٦-11-22T10:00:00Z",
     "2026-11-22T10:00:00.Z", "2026-11-22T10:00:00+0200"],  # fmt: skip
)
def test_anything_else_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        rfc3339.parse(bad)


# --- writing: one form, UTC with milliseconds and a Z, that reads back as the same instant --------


@pytest.mark.parametrize("ms", [REFERENCE_MS, REFERENCE_MS + 123, 0, -1, -86_400_001])
def test_formatted_times_read_back_as_the_same_millisecond(ms: int) -> None:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    text = rfc3339.format(moment)
    assert re.fullmatch(rfc3339.PATTERN, text)
    assert rfc3339.epoch_ms(text) == ms
    assert rfc3339.parse(text) == moment


def test_format_writes_utc_milliseconds_and_a_z_whatever_the_offset() -> None:
    two_hours_east = timezone(timedelta(hours=2))
    moment = datetime(2026, 11, 22, 12, 0, 0, 123999, tzinfo=two_hours_east)
    assert rfc3339.format(moment) == "2026-11-22T10:00:00.123Z"  # microseconds truncated, as epoch_ms floors
    assert rfc3339.format(rfc3339.parse("2026-11-22t10:00:00z")) == "2026-11-22T10:00:00.000Z"


def test_a_naive_datetime_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError):
        rfc3339.format(datetime(2026, 11, 22, 10, 0, 0))


def test_now_is_the_current_time_in_the_written_form() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    text = rfc3339.now()
    assert re.fullmatch(rfc3339.PATTERN, text) and text.endswith("Z")
    assert before <= rfc3339.parse(text) <= datetime.now(UTC)
