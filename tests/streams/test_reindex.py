"""`rci index rebuild` on the real broker and Milvus Lite: video.published replayed into the collection
of the encoders in RCI_MODEL_DIR, through the worker's features path and indexing code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rci.cli.main import app
from rci.core.settings import Settings
from rci.features.cache import FeatureCache
from rci.inference.encoders.bundle import EncoderBundle
from rci.inference.features import VideoFeatures
from rci.retrieval.milvus import MilvusVectorStore, collection_name
from rci.retrieval.store import SearchQuery
from rci.retrieval.vectors import VectorSpec, query_vectors
from rci.storage.objects import make_object_store
from rci.streams.processes import settings_env
from rci.streams.reindex import rebuild_index
from tests.streams.worker_harness import encode, produce, published_event, write_media_library

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

LATER = "2030-01-01T00:00:00Z"  # probes are published after every indexed video


def cached_features(settings: Settings, video_ids: list[str], version: str) -> dict[str, VideoFeatures]:
    async def read() -> dict[str, VideoFeatures | None]:
        store = make_object_store(settings)
        try:
            cache = FeatureCache(store)
            return {vid: await cache.get(vid, version) for vid in video_ids}
        finally:
            await store.close()

    found = asyncio.run(read())
    assert all(f is not None for f in found.values()), found
    return found  # type: ignore[return-value]


def nearest_to_own_vectors(settings: Settings, bundle: EncoderBundle, features: dict[str, VideoFeatures]):
    """Each video's top hits when searched with its own vectors under another id (a search never returns the query)."""
    spec = VectorSpec.from_settings(settings)
    queries = [SearchQuery(f"probe-{vid}", query_vectors(f.visual, f.visual_mask, spec, f.visual_views), LATER) for vid, f in features.items()]
    dim = bundle.feature_spec(settings.media_max_frames).view_dim  # each view of a frame is its own vector
    with MilvusVectorStore.from_settings(settings, encoder_version=bundle.version, dim=dim) as store:
        hits = store.search(queries, top_k=3)
        return store.count(), {vid: [(h.video_id, round(h.similarity, 4)) for h in found]
                               for vid, found in zip(features, hits, strict=True)}  # fmt: skip


def summary_row(output: str) -> dict[str, str]:
    """The command's summary table as {column: value}, without the timing."""
    rows = [[c.strip() for c in line.strip("│┃ ").split("│" if "│" in line else "┃")]
            for line in output.splitlines() if line.startswith(("│", "┃"))]  # fmt: skip
    header, values = rows[0], rows[-1]
    return {k: v for k, v in zip(header, values, strict=True) if k != "seconds"}


def test_rebuild_indexes_every_valid_video_once_and_a_second_run_changes_nothing(worker_settings: Settings):
    settings = worker_settings
    media = write_media_library(settings.media_dir, 4)
    valid = [published_event(f"vid{i}", path, second=i, creator_id=f"creator{i}") for i, path in enumerate(media)]
    gone = published_event("gone", settings.media_dir / "deleted.mp4", second=10)  # valid event, media no longer there
    produce(settings, [*map(encode, valid), (b"bad0", b"{not json"), encode(gone)])
    ids = [e["video_id"] for e in valid]
    bundle = EncoderBundle.load(settings.resolved_model_dir, device="cpu")

    dry = rebuild_index(settings, dry_run=True)
    assert (dry.read, dry.videos, dry.skipped_invalid, dry.indexed, dry.collection) == (6, 5, 1, 0, "")

    progress: list[int] = []
    first = rebuild_index(settings, batch_size=2, on_progress=lambda s: progress.append(s.read))
    assert first.collection == collection_name(settings.milvus_collection, bundle.version)
    assert (first.records, first.read, first.indexed, first.skipped_invalid, first.skipped_media) == (6, 6, 4, 1, 1)
    assert first.indexed_ids == set(ids) and progress[-1] == 6

    features = cached_features(settings, ids, bundle.version)
    count, nearest = nearest_to_own_vectors(settings, bundle, features)
    assert count == len(ids)  # the deleted media's video is not indexed
    for vid in ids:  # each video is found by its own vectors, first, with the worker's record
        assert nearest[vid][0] == (vid, pytest.approx(1.0, abs=1e-3)), nearest
    feature_files = sorted((settings.resolved_object_store_dir / "features" / bundle.version).iterdir())
    mtimes = [p.stat().st_mtime_ns for p in feature_files]

    # the second run, through the command: the same index, nothing re-encoded
    env = {**settings_env(settings), "COLUMNS": "200"}  # the summary table must not be squeezed
    result = CliRunner().invoke(app, ["index", "rebuild", "--batch-size", "4"], env=env)
    assert result.exit_code == 0, result.output
    assert summary_row(result.output) == {"records read": "6", "distinct valid videos": "5", "videos indexed": "4",
                                          "skipped: media gone": "1", "skipped: no frames": "0",
                                          "skipped: invalid records": "1"}  # fmt: skip
    assert nearest_to_own_vectors(settings, bundle, features) == (count, nearest)
    assert [p.stat().st_mtime_ns for p in feature_files] == mtimes


def test_rebuild_of_an_empty_topic_ends_at_once(worker_settings: Settings):
    summary = rebuild_index(worker_settings, dry_run=True, idle_timeout_s=5)
    assert (summary.records, summary.read, summary.videos) == (0, 0, 0)
