"""`rci publish` and `rci tail`: event sources (unit) and the commands against the real broker."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from typer.testing import CliRunner

from tests.kafka_helpers import consume_all, settings_env
from rci.cli.main import app
from rci.cli.commands.stream import (
    EventSourceError,
    PublishOrder,
    events_from_jsonl,
    events_from_media_dir,
    video_id_from_stem,
)
from rci.core import rfc3339
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


def _touch(path: Path, mtime: float) -> Path:
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def test_media_folder_gives_one_event_per_media_file(tmp_path: Path) -> None:
    for name in ("b.mp4", "a.webm", "readme.md", "c.WAV"):
        _touch(tmp_path / name, 1_700_000_000)
    events = events_from_media_dir(tmp_path)
    assert [e.video_id for e in events] == ["a", "b", "c"]  # same modification time: by name
    assert events[0].media_uri == (tmp_path / "a.webm").as_uri()
    assert events[0].title == "a"


def test_media_folder_is_published_oldest_file_first_with_increasing_times(tmp_path: Path) -> None:
    # the copies were made after their original, but sort before it by name
    _touch(tmp_path / "z-original.mp4", 1_700_000_000)
    _touch(tmp_path / "a-copy.mp4", 1_700_000_100)
    _touch(tmp_path / "m-copy-of-copy.mp4", 1_700_000_200)
    before = rfc3339.epoch_ms(rfc3339.now())
    events = events_from_media_dir(tmp_path)
    after = rfc3339.epoch_ms(rfc3339.now())
    assert [e.video_id for e in events] == ["z-original", "a-copy", "m-copy-of-copy"]
    times = [rfc3339.epoch_ms(e.published_at) for e in events]
    assert times == sorted(set(times)), "published_at must strictly increase in publication order"
    assert before - len(events) <= times[0] and times[-1] <= after
    by_name = events_from_media_dir(tmp_path, PublishOrder.NAME)
    assert [e.video_id for e in by_name] == ["a-copy", "m-copy-of-copy", "z-original"]
    times = [rfc3339.epoch_ms(e.published_at) for e in by_name]
    assert times == sorted(set(times))


def test_publish_refuses_an_unknown_order(tmp_path: Path) -> None:
    _touch(tmp_path / "a.mp4", 1_700_000_000)
    result = CliRunner().invoke(app, ["publish", str(tmp_path), "--order", "size"])
    assert result.exit_code == 2
    assert "mtime" in result.output and "name" in result.output
    assert "Traceback" not in result.output


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


def test_a_non_utf8_events_file_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = json.dumps({**EVENT, "video_id": "ok-1"}).encode()
    path.write_bytes(good + b"\n" + json.dumps({**EVENT, "video_id": "ok-2", "title": "caf"}).encode()[:-3] + b"\xe9\"}\n")
    with pytest.raises(EventSourceError, match=r"events.jsonl:2: not UTF-8 text \(byte 0xe9"):
        events_from_jsonl(path)
    result = CliRunner().invoke(app, ["publish", str(path)])
    assert result.exit_code == 2
    assert "not UTF-8" in result.output and "nothing sent" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


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
    assert f"{rci_settings.topic_scores}: 3 records" in shown.output  # the title names the topic read
    for column in ("q0", "c1", "0.900", "yes"):
        assert column in shown.output
    short = CliRunner().invoke(app, ["tail", "--from-beginning", "--max", "10", "--timeout", "3"], env=env)
    assert short.exit_code == 1


# --- rci tail: options and views (no broker) -------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [["--rows", "-1"], ["--rows", "0"], ["--rows", "many"], ["--max", "-1"], ["--timeout", "-1"], ["--topic", "nope"]],
)
def test_tail_refuses_invalid_numbers_and_topics_with_a_message(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["tail", *args])
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output
    assert "Traceback" not in result.output


def _render(table: object) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_tail_dlq_view_shows_the_code_the_video_and_where_the_record_came_from() -> None:
    from collections import deque

    from rci.cli.commands.stream import TailTopic, _table
    from rci.streams.contracts import DeadLetterRecord

    def dead(original: bytes, error: str, detail: str) -> DeadLetterRecord:
        return DeadLetterRecord(error=error, detail=detail, original=base64.b64encode(original).decode(),
                                topic="video.published", partition=3, offset=41, failed_at="2026-11-22T10:00:01.000Z")

    rows = deque([
        dead(json.dumps({**EVENT, "video_id": "v-outside"}).encode(), "media_not_allowed", "s3://x [not allowed]"),
        dead(b"\xff\xfe not json", "invalid_json", "value is not UTF-8 JSON"),
    ])
    text = _render(_table(TailTopic.DLQ, "video.published.dlq", rows, 2, 0))
    assert "video.published.dlq: 2 records" in text
    for cell in ("v-outside", "media_not_allowed", "s3://x [not allowed]", "video.published[3]@41", "invalid_json"):
        assert cell in text


def test_tail_shadow_view_shows_both_scores() -> None:
    from collections import deque

    from rci.cli.commands.stream import TailTopic, _table
    from rci.streams.contracts import ShadowRecord

    record = ShadowRecord(video_id="q1", candidate_id="c1", student_score=0.91, teacher_score=0.2, agree=False,
                          student_model_version="s", teacher_model_version="t", scored_at="2026-11-22T10:00:01.000Z")
    text = _render(_table(TailTopic.SHADOW, "rci.shadow", deque([record]), 1, 1))
    assert "rci.shadow: 1 records, 1 not matching the contract" in text
    for cell in ("q1", "c1", "0.910", "0.200", "no"):
        assert cell in text


@pytest.mark.integration
def test_tail_follows_the_dead_letter_topic(rci_settings: Settings) -> None:
    from rci.streams.contracts import DeadLetterRecord

    producer = make_producer(rci_settings)
    for i, (original, code) in enumerate([(json.dumps({**EVENT, "video_id": "gone"}).encode(), "media_not_found"),
                                          (b"not json", "invalid_json")]):
        record = DeadLetterRecord(error=code, detail=f"detail {i}", original=base64.b64encode(original).decode(),
                                  topic=rci_settings.topic_published, partition=0, offset=i,
                                  failed_at="2026-11-22T10:00:01.000Z")
        producer.produce(rci_settings.topic_dlq, key=b"gone", value=record.to_json_bytes())
    assert producer.flush(10) == 0
    env = settings_env(rci_settings)
    shown = CliRunner().invoke(app, ["tail", "--topic", "dlq", "--from-beginning", "--max", "2", "--timeout", "30"], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"{rci_settings.topic_dlq}: 2 records" in shown.output
    for cell in ("gone", "media_not_found", "invalid_json", "detail 1"):
        assert cell in shown.output
    raw = CliRunner().invoke(app, ["tail", "--topic", "dlq", "--from-beginning", "--max", "2", "--timeout", "30", "--json"],
                             env=env)
    assert raw.exit_code == 0, raw.output
    assert sorted(DeadLetterRecord.model_validate_json(line).error for line in raw.stdout.splitlines()
                  if line.startswith("{")) == ["invalid_json", "media_not_found"]
