"""End to end on the real broker and Milvus Lite: `rci worker` processes, video.published in,
rci.scores and the DLQ out."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rci.errors import RejectCode
from rci.settings import Settings
from streams.processes import ChildProcess
from tests.streams.worker_harness import (
    encode,
    produce,
    published_event,
    read_outputs,
    write_media_library,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def malformed_records(settings: Settings, media: list[Path], tmp_path: Path) -> list[tuple[bytes | None, bytes, RejectCode]]:
    """20 bad inputs, each with the DLQ code it must get."""
    outside = tmp_path / "outside" / "x.mp4"
    outside.parent.mkdir()
    outside.write_bytes(media[0].read_bytes())
    empty = settings.media_dir / "empty.mp4"
    empty.write_bytes(b"")
    truncated = settings.media_dir / "truncated.mp4"
    truncated.write_bytes(media[1].read_bytes()[:300])
    text_file = settings.media_dir / "notes.mp4"
    text_file.write_text("not a video at all\n" * 50)

    def ev(i: int, **extra: object) -> bytes:
        return json.dumps(published_event(f"bad{i}", media[0], 30 + i, **extra)).encode()

    good_key = lambda i: f"bad{i}".encode()  # noqa: E731
    return [
        (b"bad0", b"{not json", RejectCode.INVALID_JSON),
        (b"bad1", b"\xff\xfe\x00", RejectCode.INVALID_JSON),
        (b"bad2", b"[1, 2, 3]", RejectCode.INVALID_JSON),
        (good_key(3), json.dumps({"schema_version": 1, "video_id": "bad3"}).encode(), RejectCode.SCHEMA_VIOLATION),
        (b"bad 4", ev(4, video_id="bad 4"), RejectCode.SCHEMA_VIOLATION),
        (good_key(5), ev(5, title="x" * 1001), RejectCode.SCHEMA_VIOLATION),
        (good_key(6), ev(6, published_at="yesterday"), RejectCode.SCHEMA_VIOLATION),
        (good_key(7), ev(7, media_uri="http://example.com/a.mp4"), RejectCode.SCHEMA_VIOLATION),
        (good_key(8), ev(8, schema_version=2), RejectCode.UNSUPPORTED_SCHEMA_VERSION),
        (b"someone-else", ev(9), RejectCode.INVALID_KEY),
        (good_key(10), ev(10, media_uri=outside.as_uri()), RejectCode.MEDIA_NOT_ALLOWED),
        (good_key(11), ev(11, media_uri="file:///etc/passwd"), RejectCode.MEDIA_NOT_ALLOWED),
        (good_key(12), ev(12, media_uri="file://" + (settings.media_dir / ".." / "x.mp4").as_posix()), RejectCode.MEDIA_NOT_ALLOWED),
        (good_key(13), ev(13, media_uri=(settings.media_dir / "missing.mp4").as_uri()), RejectCode.MEDIA_NOT_FOUND),
        (good_key(14), ev(14, media_uri=empty.as_uri()), RejectCode.MEDIA_EMPTY),
        (good_key(15), ev(15, media_uri=truncated.as_uri()), RejectCode.MEDIA_UNDECODABLE),
        (good_key(16), ev(16, media_uri=text_file.as_uri()), RejectCode.MEDIA_UNDECODABLE),
        (good_key(17), ev(17, media_uri="s3://media-bucket/a.mp4"), RejectCode.MEDIA_SCHEME_NOT_ALLOWED),
        (None, ev(18), RejectCode.INVALID_KEY),
        (good_key(19), ev(19, creator_id="c" * 129), RejectCode.SCHEMA_VIOLATION),
    ]


def test_200_events_20_malformed_give_180_scores_and_20_dead_letters(worker_settings: Settings, tmp_path: Path):
    media = write_media_library(worker_settings.media_dir, 12)
    valid = [published_event(f"vid{i:03d}", media[i % len(media)], i) for i in range(180)]
    bad = malformed_records(worker_settings, media, tmp_path)
    records = [encode(e) for e in valid[:90]] + [(k, v) for k, v, _ in bad] + [encode(e) for e in valid[90:]]
    produce(worker_settings, records)

    worker = ChildProcess("worker", worker_settings, tmp_path / "worker.log")
    try:
        out = read_outputs(worker_settings, expected_total=200, timeout_s=600)
        time.sleep(5)  # anything beyond the 200 expected would show up in a second read
        out = read_outputs(worker_settings, expected_total=10_000, timeout_s=8)
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()

    assert len(out.scores) == 180 and len(out.dead_letters) == 20, worker.log_tail()
    assert set(out.scored_ids) == {e["video_id"] for e in valid}
    assert max(out.scored_ids.values()) == 1  # a steady run scores each event once
    expected = {(k, v): code for k, v, code in bad}
    for key, letter in out.dead_letters:
        assert letter.error == expected[(key, letter.original_bytes())], letter
        assert letter.topic == worker_settings.topic_published
    for score in out.scores:
        assert 0.0 <= score.score <= 1.0
        assert score.modalities[0] == "visual"
        assert score.deboost == (score.score >= score.threshold)
    # the clips repeat every 12 videos: from the 13th on, every video has an earlier candidate
    later = [s for s in out.scores if int(s.video_id[3:]) >= 12]
    assert all(s.candidate_id is not None for s in later)
