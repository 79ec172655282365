"""1000 contract events through the real broker: none lost, per-video order kept."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from tests.kafka_helpers import consume_all
from rci.core.settings import Settings
from rci.streams.contracts import PublishedEvent, parse_published
from rci.streams.kafka import cluster_metadata, publish_events

pytestmark = pytest.mark.integration

VIDEOS, EVENTS_PER_VIDEO = 100, 10


def _events() -> list[PublishedEvent]:
    # Interleaved: video 0 seq 0, video 1 seq 0, ..., video 0 seq 1, ... so order is really tested.
    return [
        PublishedEvent(
            schema_version=1,
            video_id=f"video-{v:03d}",
            media_uri=f"s3://rci-media/video-{v:03d}.mp4",
            title=f"seq={seq}",
            published_at="2026-11-22T10:00:00Z",
        )
        for seq in range(EVENTS_PER_VIDEO)
        for v in range(VIDEOS)
    ]


def test_thousand_events_round_trip_in_per_key_order(rci_settings: Settings) -> None:
    events = _events()
    report = publish_events(rci_settings, events)
    assert (report.delivered, report.failed, report.unacknowledged) == (len(events), [], 0)

    messages = consume_all(rci_settings, rci_settings.topic_published, expected=len(events))
    assert len(messages) == len(events)

    sequences: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for message in messages:
        event = parse_published(message.value(), message.key())  # key == video_id, value valid
        sequences[event.video_id].append(int(event.title.removeprefix("seq=")))
        partitions[event.video_id].add(message.partition())

    assert set(sequences) == {e.video_id for e in events}
    for video_id, seen in sequences.items():
        assert seen == list(range(EVENTS_PER_VIDEO)), f"{video_id} out of order or duplicated: {seen}"
        assert len(partitions[video_id]) == 1, f"{video_id} spread over partitions {partitions[video_id]}"
    used = set().union(*partitions.values())
    assert len(used) > 1, "keys should spread over several partitions"
    assert len(cluster_metadata(rci_settings).topics[rci_settings.topic_published].partitions) == len(used)
    assert json.loads(messages[0].value())["schema_version"] == 1
