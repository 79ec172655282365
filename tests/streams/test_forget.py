"""`rci forget` on the real broker, Milvus Lite and object store: a forgotten video is no longer
matched, its cached features, pointer and memoised scores are gone, and the removal is recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rci.cli.main import app
from rci.core.settings import Settings
from rci.streams.backfill import backfill_index
from rci.streams.contracts import PublishedEvent
from rci.streams.forget import forget, forgotten_ids, record_path
from rci.streams.processes import settings_env
from rci.streams.reindex import rebuild_index
from rci.streams.replay import replay_scores
from tests.streams.test_backfill import score_copy
from tests.streams.worker_harness import encode, produce, published_event, write_media_library

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def objects(settings: Settings, video_id: str) -> list[str]:
    root = settings.resolved_object_store_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and (p.name.startswith(f"{video_id}.")))  # fmt: skip


def test_a_forgotten_video_is_no_longer_matched_and_its_files_are_gone(worker_settings: Settings) -> None:
    settings = worker_settings.model_copy(update={"retrieval_score_top": 1})  # credit the most similar (untrained models)
    media = write_media_library(settings.media_dir, 3)
    originals = [published_event(f"old{i}", path, second=i) for i, path in enumerate(media)]
    backfill_index(settings, [PublishedEvent.model_validate(e) for e in originals])
    copy = Path(shutil.copy(media[1], settings.media_dir / "copy1.mp4"))
    assert score_copy(settings, "copy1", copy, second=60).candidate_id == "old1"

    # old1's own score memo exists too once it is scored (a replay of its event)
    produce(settings, [encode(originals[1])])
    replay_scores(settings, since="2000-01-01T00:00:00Z", idle_timeout_s=30)
    held = objects(settings, "old1")
    assert {p.split("/")[0] for p in held} == {"features", "scores"}, held
    assert any("/latest/" in p for p in held) and any(p.endswith(".frames.jpg") for p in held)  # frames for reviews
    neighbour = objects(settings, "old2")

    env = {**settings_env(settings), "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["forget", "old1", "never-seen", "--reason", "DMCA-123"], env=env)
    assert result.exit_code == 0, result.output
    assert "old1: forgotten" in result.output and "never-seen: not found" in result.output
    assert objects(settings, "old1") == []
    assert objects(settings, "old2") == neighbour  # nothing else touched
    lines = [json.loads(line) for line in record_path(settings).read_text().splitlines()]
    assert [(line["video_id"], line["found"], line["reason"]) for line in lines] == [
        ("old1", True, "DMCA-123"), ("never-seen", False, "DMCA-123")]
    assert sorted(lines[0]["feature_objects"] + lines[0]["score_objects"]) == held
    assert len(lines[0]["index_collections"]) == 1

    # a later copy of the forgotten video no longer matches it
    later = Path(shutil.copy(media[1], settings.media_dir / "copy2.mp4"))
    record = score_copy(settings, "copy2", later, second=120)
    assert record.candidate_id != "old1"  # copy1 stays indexed: the copy-of-a-copy is still caught
    # replays skip the forgotten video's event instead of indexing it again
    assert objects(settings, "old1") == [] and "old1" in forgotten_ids(settings)

    # nor do a rebuild of the topic (which holds old1's event) or a second backfill of the catalogue
    rebuilt = rebuild_index(settings, idle_timeout_s=30)
    assert rebuilt.skipped_forgotten == 1 and "old1" not in rebuilt.indexed_ids
    refilled = backfill_index(settings, [PublishedEvent.model_validate(e) for e in originals])
    assert (refilled.skipped_forgotten, refilled.indexed_ids) == (1, {"old0", "old2"})
    assert objects(settings, "old1") == []

    again = forget(settings, ["old1"])  # idempotent
    assert [(r.video_id, r.found) for r in again] == [("old1", False)]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_forget_matches_keys_exactly_on_each_object_store(rci_settings: Settings, backend: str) -> None:
    """Only `<id>.<16 hex>.npz|.frames.jpg|.json`, the legacy `<id>.npz` and the pointer go: never an id that starts like it."""
    import asyncio

    from rci.storage.objects import make_object_store

    settings = rci_settings.model_copy(update={"object_store": backend})
    mine = ["features/enc-a/v1.0123456789abcdef.npz", "features/enc-a/v1.npz", "features/enc-a/latest/v1.key",
            "features/enc-b/v1.fedcba9876543210.npz", "features/enc-b/v1.fedcba9876543210.frames.jpg", "scores/m+enc.e/v1.0123456789abcdef.json"]
    others = ["features/enc-a/v1.x.0123456789abcdef.npz", "features/enc-a/latest/v1.x.key", "features/enc-a/v10.npz",
              "features/enc-a/v1.x.0123456789abcdef.frames.jpg", "scores/m+enc.e/v1.x.0123456789abcdef.json", "scores/m+enc.e/v1.notadigest.json"]  # fmt: skip

    async def put_and_list(keys: list[str]) -> list[str]:
        store = make_object_store(settings)
        try:
            for key in keys:
                await store.put(key, b"x")
            return sorted(await store.list_keys("features/") + await store.list_keys("scores/"))
        finally:
            await store.close()

    asyncio.run(put_and_list(mine + others))
    [result] = forget(settings, ["v1"])
    assert sorted(result.feature_objects + result.score_objects) == sorted(mine) and result.index_collections == []
    assert asyncio.run(put_and_list([])) == sorted(others)
