"""The same store against a real Milvus server.

By default the session's `milvus_standalone` (Milvus 2.3.5 standalone from the `milvus` wheel, started
once per session). RCI_TEST_MILVUS_URI (e.g. http://127.0.0.1:19530, the docker-compose Milvus) and
optionally RCI_TEST_MILVUS_TOKEN point the tests at another server instead; they are skipped when
nothing listens there.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlparse

import numpy as np
import pytest

from rci.services.ports import is_listening
from rci.retrieval.milvus import MilvusVectorStore
from rci.retrieval.store import SearchQuery, VideoRecord, from_epoch_ms
from rci.retrieval.synthetic import FrameSequences
from rci.retrieval.vectors import VectorSpec, index_vectors, query_vectors

pytestmark = pytest.mark.integration


@pytest.fixture
def server_uri(request: pytest.FixtureRequest) -> str:
    uri = os.environ.get("RCI_TEST_MILVUS_URI", "")
    if not uri:
        return request.getfixturevalue("milvus_standalone").uri
    parsed = urlparse(uri)
    if not is_listening(parsed.port or 19530, parsed.hostname or "127.0.0.1"):
        pytest.skip(f"no Milvus server listening at {uri}")
    return uri


def test_store_round_trip_on_a_server(server_uri: str):
    gen, spec = FrameSequences(seed=3), VectorSpec()
    frames = gen.videos(200, frames=(8, 16))
    ones = [np.ones(len(f), bool) for f in frames]
    collection = f"rci_test_{uuid.uuid4().hex[:8]}"
    store = MilvusVectorStore(server_uri, token=os.environ.get("RCI_TEST_MILVUS_TOKEN", ""), collection=collection)
    try:
        store.upsert([VideoRecord(f"v{i}", index_vectors(f, m, spec), from_epoch_ms(1000 * i))
                      for i, (f, m) in enumerate(zip(frames, ones, strict=True))])
        store.upsert([VideoRecord("v3", index_vectors(frames[3], ones[3], spec), from_epoch_ms(3000))])
        assert store.count() == 200
        q = [SearchQuery(f"copy{i}", query_vectors(gen.noisy_copy(frames[i]), ones[i], spec), from_epoch_ms(10**6))
             for i in (3, 50, 199)]
        assert [hits[0].video_id for hits in store.search(q)] == ["v3", "v50", "v199"]
        redelivered = SearchQuery("v50", query_vectors(frames[50], ones[50], spec), from_epoch_ms(50_000))
        assert all(h.video_id != "v50" and h.published_at < redelivered.published_at
                   for h in store.search([redelivered], top_k=5)[0])
    finally:
        store.drop()


def test_values_of_four_byte_characters_fit_on_a_server(server_uri: str):
    """A Milvus server counts VARCHAR bytes: 128 emoji (512 bytes) overflowed a VARCHAR(128) there."""
    from tests.retrieval.test_milvus import emoji_round_trip

    collection = f"rci_test_{uuid.uuid4().hex[:8]}"
    store = MilvusVectorStore(server_uri, token=os.environ.get("RCI_TEST_MILVUS_TOKEN", ""), collection=collection)
    try:
        emoji_round_trip(store)
    finally:
        store.drop()
