import numpy as np
import pytest

from rci.retrieval.errors import InvalidRecord
from rci.retrieval.store import checked_embeddings, from_epoch_ms, to_epoch_ms


def test_rfc3339_round_trips_through_epoch_milliseconds():
    ms = to_epoch_ms("2026-11-22T10:00:00.123Z")
    assert ms == 1795341600123
    assert from_epoch_ms(ms) == "2026-11-22T10:00:00.123Z"
    assert to_epoch_ms("2026-11-22T12:00:00.123+02:00") == ms


@pytest.mark.parametrize("bad", ["yesterday", "2026-11-22T10:00:00", ""])
def test_unparseable_or_naive_timestamps_are_rejected(bad):
    with pytest.raises(InvalidRecord):
        to_epoch_ms(bad)


def test_checked_embeddings_accepts_unit_rows():
    rows = np.eye(3, 8, dtype=np.float32)
    assert checked_embeddings("v", rows, 8).shape == (3, 8)


@pytest.mark.parametrize(
    "rows",
    [
        np.ones(8, np.float32) / np.sqrt(8),  # 1-D
        np.eye(2, 4, dtype=np.float32),  # wrong dim
        np.zeros((0, 8), np.float32),  # no vectors
        np.full((1, 8), 2.0, np.float32),  # not normalised
        np.full((1, 8), np.nan, np.float32),
    ],
)
def test_checked_embeddings_rejects_malformed_rows(rows):
    with pytest.raises(InvalidRecord):
        checked_embeddings("v", rows, 8)
