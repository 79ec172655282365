"""Shared set-up for the worker's end-to-end tests: real broker, Milvus Lite, media on disk,
`rci worker` child processes. Nothing here is faked."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rci.media.synth import write_test_video
from rci.core.settings import Settings
from rci.streams.contracts import DeadLetterRecord, ScoreRecord
from rci.streams.kafka import make_producer
from rci.streams.readback import read_until

MAX_FRAMES = 4


def published_event(vid: str, media: Path | str, second: int, **extra: object) -> dict:
    uri = media if isinstance(media, str) else media.as_uri()
    event = {
        "schema_version": 1,
        "video_id": vid,
        "media_uri": uri,
        "title": f"clip {vid}",
        "published_at": f"2026-11-22T{10 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z",
    }
    event.update(extra)
    return event


def write_media_library(media_dir: Path, count: int) -> list[Path]:
    """`count` distinct short clips with audio under the allowed media prefix."""
    media_dir.mkdir(parents=True, exist_ok=True)
    return [
        write_test_video(media_dir / f"clip{i:03d}.mp4", duration_s=2.0, seed=i, tone_hz=220 + 40 * i)
        for i in range(count)
    ]


def produce(settings: Settings, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = make_producer(settings)
    for key, value in records:
        producer.produce(settings.topic_published, key=key, value=value)
    assert producer.flush(30) == 0


@dataclass
class Readback:
    scores: list[ScoreRecord] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, DeadLetterRecord]] = field(default_factory=list)

    @property
    def scored_ids(self) -> Counter:
        return Counter(s.video_id for s in self.scores)


def read_outputs(settings: Settings, expected_total: int, timeout_s: float = 300.0) -> Readback:
    """Scores and dead letters until `expected_total` records arrived (or the timeout)."""
    records = read_until(
        settings,
        [settings.topic_scores, settings.topic_dlq],
        done=lambda got: len(got) >= expected_total,
        timeout_s=timeout_s,
    )
    out = Readback()
    for topic, key, value in records:
        if topic == settings.topic_scores:
            score = ScoreRecord.model_validate_json(value)
            assert key == score.video_id.encode()
            out.scores.append(score)
        else:
            out.dead_letters.append((key, DeadLetterRecord.model_validate_json(value)))
    return out


def encode(event: dict) -> tuple[bytes, bytes]:
    return event["video_id"].encode(), json.dumps(event).encode()


def ready_status(port: int) -> int | None:
    """What /ready answers: 200 or 503, None while nothing listens yet (preflight still running)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_for_status(port: int, status: int, timeout_s: float = 10.0) -> int | None:
    deadline = time.monotonic() + timeout_s
    while (got := ready_status(port)) != status and time.monotonic() < deadline:
        time.sleep(0.2)
    return got
