"""Moderators' verdicts the worker obeys (rci.streams.reviews), read from the real broker: the topic to its
end before scoring starts, then new verdicts as they come; a cluster without the topic means no verdicts."""

from __future__ import annotations

import time

import pytest

from rci.core.settings import Settings
from rci.streams.contracts import ReviewVerdict
from rci.streams.reviews import ReviewedPairs, follow_reviews
from tests.streams.worker_harness import produce

pytestmark = pytest.mark.integration


def verdict(video_id: str, what: str, deboost: bool = True) -> tuple[bytes, bytes]:
    record = ReviewVerdict(video_id=video_id, candidate_id="src", verdict=what, reason="r", reviewer="m", score=0.9,
                           deboost=deboost, model_version="m1", reviewed_at="2026-12-01T11:00:00Z")  # fmt: skip
    return video_id.encode(), record.to_json_bytes()


def test_verdicts_are_read_to_the_end_then_followed(rci_settings: Settings) -> None:
    to_reviews = rci_settings.model_copy(update={"topic_published": rci_settings.topic_reviews})
    produce(to_reviews, [verdict("a", "overturn"), verdict("b", "confirm"), verdict("c", "overturn", deboost=False),
                         verdict("d", "overturn"), verdict("d", "confirm")])  # fmt: skip
    pairs, follower = follow_reviews(rci_settings)
    try:
        assert [pairs.overturned(v, "src") for v in "abcd"] == [True, False, False, False]
        produce(to_reviews, [verdict("b", "overturn")])
        deadline = time.monotonic() + 20
        while not pairs.overturned("b", "src"):
            assert time.monotonic() < deadline, "the follower did not see the new verdict"
            time.sleep(0.2)
        assert not pairs.overturned("b", "someone-else")
    finally:
        follower.stop()


def test_no_reviews_topic_means_no_verdicts_and_no_follower(rci_settings: Settings) -> None:
    pairs, follower = follow_reviews(rci_settings.model_copy(update={"topic_reviews": "rci.reviews.never-created"}))
    assert follower is None and isinstance(pairs, ReviewedPairs) and len(pairs) == 0
