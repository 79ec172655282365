"""The same store against a real Milvus server.

By default the session's `milvus_standalone` (Milvus 2.3.5 standalone from the `milvus` wheel, started
once per session). RCI_TEST_MILVUS_URI (e.g. http://127.0.0.1:19530, the docker-compose Milvus) and
optionally RCI_TEST_MILVUS_TOKEN point the tests at another server instead; they are skipped when
nothing listens there.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import uuid
from datetime import datetime
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


# --- every contract-valid value through the worker's own index path, on a server (issue 15) -------------

def accepted_events():
    """Events the contract accepts, with the values that reach the store drawn from their whole range:
    any Unicode in creator_id and media_uri up to their limits, published_at anywhere in years 1-9999
    (UTC) written with any offset."""
    from hypothesis import assume, strategies as st

    from rci.core.errors import RejectedEvent
    from rci.streams.contracts import parse_published

    def text(max_size: int, min_size: int = 0):
        """Any text, and often text at its limit in 4-byte characters (what a byte-counting VARCHAR misses)."""
        anything = st.characters(blacklist_categories=("Cs", "Cc"))
        wide = st.characters(min_codepoint=0x10000, blacklist_categories=("Cs", "Cc"))
        return st.one_of(st.text(anything, min_size=min_size, max_size=max_size),
                         st.text(wide, min_size=max_size - 8, max_size=max_size))

    @st.composite
    def build(draw: st.DrawFn):
        when = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                                 timezones=st.timezones()))
        event = {"schema_version": 1,
                 "video_id": draw(st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True)),
                 "media_uri": "file:///" + draw(text(2048 - len("file:///"), min_size=1)),
                 "title": "t", "published_at": when.isoformat(),
                 "creator_id": draw(st.one_of(st.none(), text(128)))}
        try:
            return parse_published(json.dumps(event).encode(), None)
        except RejectedEvent:
            assume(False)

    return build()


def test_every_contract_valid_value_round_trips_through_the_index_on_a_server(server_uri: str):
    """What the worker indexes from an accepted event (`MilvusCandidateIndex.add`), upserted to a real
    Milvus server and read back: the same strings, the same instant, and the reverse conversion of the
    candidates (`nearest`) never raises. Before issue 15, '0001-01-01T00:00:00+23:59' was accepted and
    indexed, and converting it back raised OverflowError in every later batch that retrieved it."""
    from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

    from rci.inference.features import VideoFeatures
    from rci.retrieval.store import to_epoch_ms
    from rci.streams.components import MilvusCandidateIndex

    spec = VectorSpec()
    collection = f"rci_test_{uuid.uuid4().hex[:8]}"
    store = MilvusVectorStore(server_uri, token=os.environ.get("RCI_TEST_MILVUS_TOKEN", ""), collection=collection)
    index = MilvusCandidateIndex(store, spec, "enc-test", top_k=1)
    seeds = itertools.count(1)

    def features(event, seed: int) -> VideoFeatures:
        visual = FrameSequences(seed=seed).video(4)
        return VideoFeatures(video_id=event.video_id, encoder_version="enc-test", visual=visual,
                             visual_mask=np.ones(4, bool), audio=np.zeros(8, np.float32), has_audio=False,
                             text=np.zeros((1, 4), np.float32), text_mask=np.zeros(1, bool), duration_s=4.0)

    @hsettings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(accepted_events(), min_size=1, max_size=25, unique_by=lambda e: e.video_id))
    def round_trip(events) -> None:
        items = [(e, features(e, next(seeds))) for e in events]  # vectors unlike any earlier example's
        asyncio.run(index.add(items))
        later = "9999-12-31T23:59:59.999Z"
        probes = [SearchQuery(f"probe-{i}", query_vectors(f.visual, f.visual_mask, spec, f.visual_views), later)
                  for i, (_, f) in enumerate(items)]
        hits = store.search(probes, top_k=1)
        for (event, _), found in zip(items, hits, strict=True):
            assert [(h.video_id, h.creator_id, h.media_uri, to_epoch_ms(h.published_at)) for h in found] == [
                (event.video_id, event.creator_id or "", event.media_uri, to_epoch_ms(event.published_at))]
        asyncio.run(index.nearest([(e.model_copy(update={"video_id": "probe", "published_at": later}), f)
                                   for e, f in items]))  # the reverse conversion of every candidate

    try:
        round_trip()
    finally:
        store.drop()


@pytest.mark.parametrize("server", ["milvus_server", "server_uri"], ids=["lite-server", "standalone"])
def test_a_collection_created_meanwhile_by_another_worker_is_opened(server: str, request: pytest.FixtureRequest,
                                                                    monkeypatch: pytest.MonkeyPatch):
    """Two workers starting together both found no collection and both created it: the second was told
    it exists and exited 70 (seen in the two-workers test). Here the first has created it and the
    second store is shown the moment before, when it did not exist yet."""
    fixture = request.getfixturevalue(server)
    uri = fixture if isinstance(fixture, str) else fixture.uri
    token = os.environ.get("RCI_TEST_MILVUS_TOKEN", "") if server == "server_uri" else ""
    collection, spec = f"rci_test_{uuid.uuid4().hex[:8]}", VectorSpec()
    frames = FrameSequences(seed=5).videos(3, frames=(6, 8))
    first = MilvusVectorStore(uri, token=token, collection=collection)
    try:
        first.upsert([VideoRecord(f"v{i}", index_vectors(f, np.ones(len(f), bool), spec), from_epoch_ms(1000 * i))
                      for i, f in enumerate(frames)])
        first.flush()
        monkeypatch.setattr("pymilvus.MilvusClient.has_collection", lambda *args, **kwargs: False)
        second = MilvusVectorStore(uri, token=token, collection=collection)
        monkeypatch.undo()
        try:
            query = SearchQuery("copy", query_vectors(frames[1], np.ones(len(frames[1]), bool), spec), from_epoch_ms(10**6))
            assert [h.video_id for h in second.search([query])[0]][:1] == ["v1"]
        finally:
            second.close()
    finally:
        first.drop()
