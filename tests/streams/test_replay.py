"""`rci replay` on the real broker, Milvus Lite and object store: a window of video.published re-scored
into rci.scores through the worker's own pipeline, identically under one model version, anew under another."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import torch

from rci.core import rfc3339
from rci.core.settings import Settings
from rci.inference.encoders.bundle import EncoderBundle
from rci.inference.matchlite import MatchLite, MatchLiteConfig
from rci.inference.model_dir import publish_matchlite
from rci.streams.contracts import ScoreRecord
from rci.streams.readback import read_until
from rci.streams.replay import ReplayWindowError, parse_offsets, replay_scores
from tests.streams.worker_harness import MAX_FRAMES, encode, produce, published_event, write_media_library

SAME = lambda s: s.model_dump(exclude={"scored_at", "latency_ms"})  # noqa: E731  what a repeat keeps


def test_parse_offsets() -> None:
    assert parse_offsets("0:120, 3:7") == {0: 120, 3: 7}
    for bad in ["", "0", "0:x", "-1:3", "0:1,0:2"]:
        with pytest.raises(ReplayWindowError):
            parse_offsets(bad)


def scores(settings: Settings, total: int, timeout_s: float = 60.0) -> list[ScoreRecord]:
    got = read_until(settings, [settings.topic_scores, settings.topic_dlq], lambda r: len(r) >= total, timeout_s=timeout_s)
    assert all(topic == settings.topic_scores for topic, _, _ in got), "a replay dead-lettered something"
    return [ScoreRecord.model_validate_json(value) for _, _, value in got]


def other_matchlite(untrained_model_dir: Path, into: Path) -> Path:
    """The same encoders with another MatchLite: a new model_version, the same collection."""
    shutil.copytree(untrained_model_dir, into)
    spec = EncoderBundle.load(into, device="cpu").feature_spec(MAX_FRAMES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = MatchLite(MatchLiteConfig.small(**spec.widths())).eval()
    publish_matchlite(into, model, {"threshold": 0.5, "model_version": "matchlite-untrained-replay-1"})
    return into


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_replay_rescores_a_window_identically_and_anew_under_a_new_model(
    worker_settings: Settings, untrained_model_dir: Path, tmp_path: Path
) -> None:
    settings = worker_settings
    media = write_media_library(settings.media_dir, 3)
    early = [published_event(f"vid{i}", media[i], second=i) for i in range(2)]
    produce(settings, [*map(encode, early), (b"bad", b"{not json")])
    time.sleep(1.5)  # the broker's timestamps tell the two halves apart
    since = rfc3339.now()
    time.sleep(0.2)
    produce(settings, [encode(published_event("vid2", media[2], second=2))])

    late = replay_scores(settings, since=since, idle_timeout_s=30)
    assert (late.read, late.records, dict(late.scored_ids), late.skipped_invalid) == (1, 1, {"vid2": 1}, 0)

    everything = replay_scores(settings, since="2000-01-01T00:00:00Z", batch_size=2, idle_timeout_s=30)
    assert dict(everything.scored_ids) == {"vid0": 1, "vid1": 1, "vid2": 1}
    assert (everything.read, dict(everything.skipped_codes)) == (4, {"invalid_json": 1})
    first = scores(settings, 4)
    by_video = {}
    for record in first:
        by_video.setdefault(record.video_id, []).append(record)
    assert SAME(by_video["vid2"][0]) == SAME(by_video["vid2"][1])  # the memo: same model_version, same record
    assert {r.model_version for r in first} == {late.model_version}

    # a new MatchLite: the same window from explicit offsets writes new scores with the new model_version
    new = settings.model_copy(update={"model_dir": other_matchlite(untrained_model_dir, tmp_path / "models-v2")})
    windows = {w.partition: w.low for w in everything.windows}
    rescored = replay_scores(new, offsets=windows, idle_timeout_s=30)
    assert rescored.model_version != late.model_version
    assert dict(rescored.scored_ids) == {"vid0": 1, "vid1": 1, "vid2": 1}
    after = scores(settings, 7)
    newest = [r for r in after if r.model_version == rescored.model_version]
    assert sorted(r.video_id for r in newest) == ["vid0", "vid1", "vid2"]
    old = {r.video_id: r for r in first}
    assert any(SAME(r) != SAME(old[r.video_id]) | {"model_version": r.model_version} for r in newest)

    with pytest.raises(ReplayWindowError, match="partitions"):
        replay_scores(settings, offsets={99: 0}, idle_timeout_s=10)
