"""published_at must fit every later conversion: out-of-range UTC values are schema violations (issue 15)."""

from __future__ import annotations

import json

import pytest

from rci.core import rfc3339
from rci.core.errors import RejectCode, RejectedEvent
from rci.streams.contracts import parse_published

VALID_EVENT = {
    "schema_version": 1,
    "video_id": "vid-001",
    "media_uri": "s3://rci-media/videos/vid-001.mp4",
    "title": "a cat on a skateboard",
}


def _value(published_at: str) -> bytes:
    return json.dumps({**VALID_EVENT, "published_at": published_at}).encode()


@pytest.mark.parametrize("published_at", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_published_at_outside_years_1_to_9999_in_utc_is_a_schema_violation(published_at: str) -> None:
    with pytest.raises(RejectedEvent) as caught:
        parse_published(_value(published_at), b"vid-001")
    assert caught.value.code == RejectCode.SCHEMA_VIOLATION
    assert "published_at" in caught.value.detail


@pytest.mark.parametrize(
    "published_at",
    ["2026-11-22T10:00:00Z", "2026-11-22T12:00:00+02:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
     "0001-01-01T23:59:00+23:59"],
)
def test_normal_and_edge_values_still_pass_and_convert_back(published_at: str) -> None:
    event = parse_published(_value(published_at), b"vid-001")
    assert event.published_at == published_at
    rfc3339.format(rfc3339.parse(event.published_at))  # what retrieval does when reading it back
