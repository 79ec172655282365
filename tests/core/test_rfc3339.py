"""One RFC 3339 parser for the contracts and every later step (rci.core.rfc3339)."""

from __future__ import annotations

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
