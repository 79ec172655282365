"""A time whose UTC value leaves years 1-9999 is refused when parsed, not an OverflowError later (issue 15)."""

from __future__ import annotations

import pytest

from rci.core import rfc3339

OUT_OF_RANGE = ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00.5+00:01"]
EDGES = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "0001-01-01T23:59:00+23:59", "9999-12-31T00:00:00-23:59"]


@pytest.mark.parametrize("text", OUT_OF_RANGE)
def test_utc_value_outside_years_1_to_9999_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="years 1-9999"):
        rfc3339.parse(text)


@pytest.mark.parametrize("text", EDGES)
def test_edges_inside_the_range_parse_and_convert_back(text: str) -> None:
    moment = rfc3339.parse(text)
    assert rfc3339.parse(rfc3339.format(moment)) == moment  # the reverse conversion a store does
    assert isinstance(rfc3339.epoch_ms(text), int)
