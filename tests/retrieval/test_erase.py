"""`erase_videos` against a real Milvus Lite file: every vector of the ids, in every encoder version's collection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rci.retrieval.erase import erase_videos
from rci.retrieval.milvus import MilvusVectorStore, collection_name
from rci.retrieval.store import SearchQuery, VideoRecord, from_epoch_ms
from rci.retrieval.vectors import VectorSpec, index_vectors, query_vectors

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000
DIM = 16


def frames(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(3, DIM)).astype(np.float32)


def record(video_id: str, seed: int) -> VideoRecord:
    vecs = index_vectors(frames(seed), np.ones(3, bool), VectorSpec())
    return VideoRecord(video_id, vecs, from_epoch_ms(T0 + seed), media_uri=f"s3://m/{video_id}.mp4",
                       feature_key=f"features/e/{video_id}.0123456789abcdef.npz")


def nearest(uri: str, collection: str, seed: int) -> str | None:
    with MilvusVectorStore(uri, collection=collection, dim=DIM) as store:
        query = SearchQuery("probe", query_vectors(frames(seed), np.ones(3, bool), VectorSpec()), from_epoch_ms(T0 + 10**6))
        hits = store.search([query], top_k=1)[0]
        return hits[0].video_id if hits and hits[0].similarity > 0.999 else None


@pytest.mark.parametrize("served", [False, True], ids=["lite-file", "served"])
def test_erase_reaches_every_encoder_version_and_is_idempotent(tmp_path: Path, served: bool, request) -> None:
    uri = request.getfixturevalue("milvus_server").uri if served else str(tmp_path / "milvus.db")
    base = f"rci_videos_{tmp_path.name[-12:].replace('-', '_')}"  # the served database is shared by the session
    names = [collection_name(base, "enc-a"), collection_name(base, "enc-b")]
    for name in names:
        with MilvusVectorStore(uri, collection=name, dim=DIM) as store:
            store.upsert([record("v1", 1), record("v1.x", 2), record("keep", 3)])
    with MilvusVectorStore(uri, collection=f"other{base}", dim=DIM) as store:  # another deployment's base name
        store.upsert([record("v1", 1)])

    removed = erase_videos(uri, base, ["v1", "never-indexed"])
    assert removed == {name: ["v1"] for name in names}
    for name in names:
        assert nearest(uri, name, 1) is None  # every vector of v1 is gone
        assert (nearest(uri, name, 2), nearest(uri, name, 3)) == ("v1.x", "keep")  # an id that only starts like it stays
        with MilvusVectorStore(uri, collection=name, dim=DIM) as store:
            assert store.count() == 2
    assert nearest(uri, f"other{base}", 1) == "v1"
    assert erase_videos(uri, base, ["v1"]) == {}


def test_erase_on_a_lite_file_never_written_creates_nothing(tmp_path: Path) -> None:
    assert erase_videos(str(tmp_path / "absent.db"), "rci_videos", ["v1"]) == {}
    assert not (tmp_path / "absent.db").exists()
