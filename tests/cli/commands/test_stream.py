"""`rci publish` and `rci tail`: event sources (unit) and the commands against the real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from typer.testing import CliRunner

from tests.kafka_helpers import consume_all, settings_env
from rci.cli.main import app
from rci.cli.commands.stream import EventSourceError, events_from_jsonl, events_from_media_dir, video_id_from_stem
from rci.core.settings import Settings
from rci.streams.contracts import VIDEO_ID_PATTERN, ScoreRecord, parse_published
from rci.streams.kafka import make_consumer, make_producer

EVENT = {
    "schema_version": 1,
    "media_uri": "s3://rci-media/x.mp4",
    "title": "t",
    "published_at": "2026-11-22T10:00:00Z",
}


# --- event sources ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stem", "video_id"),
    [
        ("clip_01", "clip_01"),
        ("My Holiday (2026)", "My-Holiday-2026"),
        ("ünïcødé", "n-c-d"),
        ("////", "video"),
        ("x" * 300, "x" * 128),
        ("a:b.c-d", "a:b.c-d"),
    ],
)
def test_video_id_from_stem_follows_the_contract(stem: str, video_id: str) -> None:
    import re

    assert video_id_from_stem(stem) == video_id
    assert re.fullmatch(VIDEO_ID_PATTERN, video_id)


def test_media_folder_gives_one_event_per_media_file(tmp_path: Path) -> None:
    for name in ("b.mp4", "a.webm", "readme.md", "c.WAV"):
        (tmp_path / name).write_bytes(b"x")
    events = events_from_media_dir(tmp_path)
    assert [e.video_id for e in events] == ["a", "b", "c"]
    assert events[0].media_uri == (tmp_path / "a.webm").as_uri()
    assert events[0].title == "a"
    assert len({e.published_at for e in events}) == 1


def test_media_folder_refuses_colliding_ids(tmp_path: Path) -> None:
    (tmp_path / "clip one.mp4").write_bytes(b"x")
    (tmp_path / "clip-one.mkv").write_bytes(b"x")
    with pytest.raises(EventSourceError, match="clip-one"):
        events_from_media_dir(tmp_path)


def test_empty_media_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EventSourceError):
        events_from_media_dir(tmp_path)


def test_jsonl_is_validated_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = json.dumps({**EVENT, "video_id": "ok-1", "extra": "ignored"})
    path.write_text(f"{good}\n\n{json.dumps({**EVENT, 'video_id': 'bad id'})}\nnot json\n")
    with pytest.raises(EventSourceError) as caught:
        events_from_jsonl(path)
    assert "events.jsonl:3" in str(caught.value) and "events.jsonl:4" in str(caught.value)
    path.write_text(good + "\n")
    assert [e.video_id for e in events_from_jsonl(path)] == ["ok-1"]


# --- rci publish / rci tail against the broker ----------------------------------------------------------
def _end_offsets(settings: Settings, topic: str) -> int:
    """Records ever written to `topic` (sum of the partitions' high watermarks)."""
    consumer = make_consumer(settings, group="test-offsets")
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(settings.topic_partitions))  # fmt: skip
    finally:
        consumer.close()


@pytest.mark.integration
def test_publish_jsonl_delivers_every_event(rci_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({**EVENT, "video_id": f"v{i}"}) + "\n" for i in range(5)))
    result = CliRunner().invoke(app, ["publish", str(path)], env=settings_env(rci_settings))
    assert result.exit_code == 0, result.output
    assert "delivered 5/5" in result.output
    messages = consume_all(rci_settings, rci_settings.topic_published, expected=5)
    assert sorted(parse_published(m.value(), m.key()).video_id for m in messages) == [f"v{i}" for i in range(5)]


@pytest.mark.integration
def test_publish_sends_nothing_when_one_event_is_invalid(rci_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({**EVENT, "video_id": "fine"}) + "\n" + json.dumps({**EVENT, "video_id": ""}) + "\n")
    result = CliRunner().invoke(app, ["publish", str(path)], env=settings_env(rci_settings))
    assert result.exit_code == 2
    assert "nothing sent" in result.output
    assert _end_offsets(rci_settings, rci_settings.topic_published) == 0


def _score(i: int) -> ScoreRecord:
    return ScoreRecord(
        video_id=f"q{i}", candidate_id=f"c{i}" if i % 2 else None, retrieval_similarity=0.9 if i % 2 else None,
        score=0.9 if i % 2 else 0.0, deboost=bool(i % 2), threshold=0.5, model_version="m-test",
        modalities=["visual"], published_at="2026-11-22T10:00:00Z", scored_at="2026-11-22T10:00:02Z",
        latency_ms=2000.0,
    )  # fmt: skip


def _produce_scores(settings: Settings, n: int) -> list[ScoreRecord]:
    producer = make_producer(settings)
    scores = [_score(i) for i in range(n)]
    for score in scores:
        producer.produce(settings.topic_scores, key=score.video_id.encode(), value=score.to_json_bytes())
    assert producer.flush(10) == 0
    return scores


@pytest.mark.integration
def test_tail_json_prints_raw_records(rci_settings: Settings) -> None:
    scores = _produce_scores(rci_settings, 4)
    result = CliRunner().invoke(
        app, ["tail", "--from-beginning", "--max", "4", "--timeout", "30", "--json"], env=settings_env(rci_settings)
    )
    assert result.exit_code == 0, result.output
    printed = [ScoreRecord.model_validate_json(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert sorted(printed, key=lambda s: s.video_id) == scores


@pytest.mark.integration
def test_tail_table_shows_scores_and_fails_when_too_few(rci_settings: Settings) -> None:
    _produce_scores(rci_settings, 3)
    env = settings_env(rci_settings)
    shown = CliRunner().invoke(app, ["tail", "--from-beginning", "--max", "3", "--timeout", "30"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "rci.scores: 3 records" in shown.output
    for column in ("q0", "c1", "0.900", "yes"):
        assert column in shown.output
    short = CliRunner().invoke(app, ["tail", "--from-beginning", "--max", "10", "--timeout", "3"], env=env)
    assert short.exit_code == 1
