"""`rci index backfill` on the real broker, Milvus Lite and object store: a catalogue indexed without
being scored, so a later copy is matched against it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rci.cli.main import app
from rci.core.settings import Settings
from rci.streams.contracts import ScoreRecord
from rci.streams.processes import settings_env
from rci.streams.readback import read_until
from rci.streams.replay import replay_scores
from tests.streams.test_reindex import summary_row
from tests.streams.worker_harness import encode, produce, published_event, write_media_library

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def score_records(settings: Settings, total: int, timeout_s: float = 60.0) -> list[ScoreRecord]:
    got = read_until(settings, [settings.topic_scores], lambda r: len(r) >= total, timeout_s=timeout_s)
    return [ScoreRecord.model_validate_json(value) for _, _, value in got]


def score_copy(settings: Settings, copy_id: str, media: Path, second: int) -> ScoreRecord:
    """Publish a copy and score it through the worker's pipeline (a replay of its own record)."""
    produce(settings, [encode(published_event(copy_id, media, second=second))])
    summary = replay_scores(settings, since="2000-01-01T00:00:00Z", idle_timeout_s=30)
    assert copy_id in summary.scored_ids, summary.fields()
    # the scores topic holds every earlier replay's records too, over several partitions: read until the copy's
    # (reading only as many records as this replay wrote could stop before reaching it)
    mine = lambda r: r[2] is not None and ScoreRecord.model_validate_json(r[2]).video_id == copy_id  # noqa: E731
    got = read_until(settings, [settings.topic_scores], lambda records: any(map(mine, records)), timeout_s=30)
    return next(ScoreRecord.model_validate_json(value) for _, _, value in reversed(got) if mine((None, None, value)))


def test_backfill_indexes_a_catalogue_without_scores_and_a_later_copy_matches_it(worker_settings: Settings) -> None:
    # the untrained MatchLite's "confident" credit means nothing: credit the most similar video
    settings = worker_settings.model_copy(update={"retrieval_score_top": 1})
    media = write_media_library(settings.media_dir, 3)
    catalogue = settings.data_dir / "catalogue.jsonl"
    events = [published_event(f"old{i}", path, second=i) for i, path in enumerate(media)]
    events.append(published_event("gone", settings.media_dir / "deleted.mp4", second=9))  # media no longer there
    catalogue.write_text("".join(json.dumps(e) + "\n" for e in events))

    env = {**settings_env(settings), "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["index", "backfill", str(catalogue), "--batch-size", "2"], env=env)
    assert result.exit_code == 0, result.output
    assert summary_row(result.output) == {"videos": "4", "indexed": "3", "skipped: media rejected": "1",
                                          "skipped: no frames": "0", "skipped: forgotten": "0"}  # fmt: skip
    feature_files = sorted(settings.resolved_object_store_dir.glob("features/*/*.npz"))
    features = [p.name for p in feature_files]
    assert [name.split(".")[0] for name in features] == ["old0", "old1", "old2"]  # cached, media gone skipped
    assert not list(settings.resolved_object_store_dir.glob("scores/**/*.json"))  # nothing scored or memoised
    assert score_records(settings, 1, timeout_s=5) == []  # nothing on rci.scores

    copy = shutil.copy(media[1], settings.media_dir / "reupload.mp4")
    record = score_copy(settings, "reupload", Path(copy), second=60)
    assert record.candidate_id == "old1" and record.retrieval_similarity == pytest.approx(1.0, abs=1e-3)

    mtimes = [p.stat().st_mtime_ns for p in feature_files]
    again = CliRunner().invoke(app, ["index", "backfill", str(catalogue)], env=env)  # idempotent: nothing re-encoded
    assert again.exit_code == 0, again.output
    assert summary_row(again.output)["indexed"] == "3"
    assert [p.stat().st_mtime_ns for p in feature_files] == mtimes


def test_backfill_of_a_media_folder_indexes_each_file_under_its_stem(worker_settings: Settings) -> None:
    settings = worker_settings
    folder = settings.media_dir / "catalogue"
    write_media_library(folder, 2)
    env = {**settings_env(settings), "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["index", "backfill", str(folder), "--order", "name"], env=env)
    assert result.exit_code == 0, result.output
    assert summary_row(result.output)["indexed"] == "2"
    stems = sorted(p.name.split(".")[0] for p in settings.resolved_object_store_dir.glob("features/*/*.npz"))
    assert stems == ["clip000", "clip001"]
    assert score_records(settings, 1, timeout_s=5) == []
