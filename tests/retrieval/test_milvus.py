"""MilvusVectorStore against a real Milvus Lite database (integration), plus its pure ranking helper.

One module-wide store holds 10k distractor videos (2 clips each, 20k rows: more than one Lite
flush, so searches span indexed segments and the in-memory table) and the scenario videos.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymilvus import MilvusClient

from rci.core.errors import TransientError
from rci.services.ports import free_port
from rci.core.settings import Settings
from rci.retrieval.errors import RetrievalUnavailable, SchemaMismatch
from rci.retrieval.milvus import MAX_ID, MAX_URI, MilvusVectorStore, _Row, best_earlier, quote
from rci.retrieval.retry import RetryPolicy
from rci.retrieval.store import SearchQuery, VideoRecord, from_epoch_ms
from rci.retrieval.synthetic import FrameSequences
from rci.retrieval.vectors import Granularity, VectorSpec, index_vectors, query_vectors

SPEC = VectorSpec()  # the default: one vector per frame
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms
DISTRACTORS = 10_000
COLLECTION = "videos"


def at(seconds: int) -> str:
    return from_epoch_ms(T0 + 1000 * seconds)


def record(video_id: str, frames: np.ndarray, seconds: int, spec: VectorSpec = SPEC) -> VideoRecord:
    vecs = index_vectors(frames, np.ones(len(frames), bool), spec)
    return VideoRecord(video_id, vecs, at(seconds), creator_id=f"creator-{video_id}",
                       media_uri=f"s3://media/{video_id}.mp4", feature_key=f"features/{video_id}.npz")


def query(video_id: str, frames: np.ndarray, seconds: int, spec: VectorSpec = SPEC) -> SearchQuery:
    return SearchQuery(video_id, query_vectors(frames, np.ones(len(frames), bool), spec), at(seconds))


class World:
    """The module store's content: distractor i is 'd{i}', published at second 10*i."""

    def __init__(self, gen: FrameSequences) -> None:
        self.gen = gen
        self.frames = gen.videos(DISTRACTORS, frames=(8, 8))

    def records(self) -> list[VideoRecord]:
        return [record(f"d{i}", f, 10 * i) for i, f in enumerate(self.frames)]


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("milvus") / "retrieval.db")


@pytest.fixture(scope="module")
def world() -> World:
    return World(FrameSequences(seed=7))


@pytest.fixture(scope="module")
def store(db_path: str, world: World) -> Iterator[MilvusVectorStore]:
    with MilvusVectorStore(db_path, collection=COLLECTION) as s:
        records = world.records()
        for start in range(0, len(records), 2500):
            s.upsert(records[start : start + 2500])
        yield s


# --- integration --------------------------------------------------------------------------------


@pytest.mark.integration
def test_copies_find_their_source_among_10k_distractors(store: MilvusVectorStore, world: World):
    sources = range(0, DISTRACTORS, DISTRACTORS // 32)
    late = 10 * DISTRACTORS + 1
    queries = [query(f"copy-of-d{i}", world.gen.trimmed_copy(world.frames[i], keep=(0.5, 0.8)), late) for i in sources]
    queries += [query(f"noisy-d{i}", world.gen.noisy_copy(world.frames[i]), late) for i in sources]
    results = store.search(queries)
    assert [hits[0].video_id for hits in results] == [f"d{i}" for i in sources] * 2
    best = results[0][0]
    assert best.published_at == at(0) and best.creator_id == "creator-d0"
    assert best.media_uri == "s3://media/d0.mp4" and best.feature_key == "features/d0.npz"
    assert 0.5 < best.similarity <= 1.0 + 1e-5


@pytest.mark.integration
def test_batched_search_returns_one_list_per_query_in_order(store: MilvusVectorStore, world: World):
    picks = list(range(5, DISTRACTORS, DISTRACTORS // 64))[:64]
    late = 10 * DISTRACTORS + 1
    queries = [query(f"q{i}", world.gen.noisy_copy(world.frames[i]), late) for i in picks]
    forward = store.search(queries, top_k=3)
    assert len(forward) == len(queries)
    assert [hits[0].video_id for hits in forward] == [f"d{i}" for i in picks]
    for hits in forward:
        assert len(hits) == 3 and len({h.video_id for h in hits}) == 3
        assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    backward = store.search(queries[::-1], top_k=3)
    assert [[h.video_id for h in hits] for hits in backward] == [[h.video_id for h in hits] for hits in forward[::-1]]
    assert store.search([]) == []


@pytest.mark.integration
def test_never_returns_the_query_itself_or_later_videos(store: MilvusVectorStore, world: World, db_path: str):
    # Per case: a source, the query video (a copy of it, already indexed: a redelivered event)
    # and a later re-upload of the query. Self and the re-upload are far more similar to the query
    # than the source is, and must still never come back.
    gen, cases, scenario = world.gen, [], []
    for k in range(12):
        t_source = 10 * (100 + 700 * k) + 5  # spread over the distractors' time range
        source = gen.video(8)
        copy = gen.trimmed_copy(source, keep=(0.6, 0.9), noise=0.3)
        reupload = gen.noisy_copy(copy, noise=0.05)
        scenario += [record(f"src{k}", source, t_source), record(f"q{k}", copy, t_source + 3000),
                     record(f"reup{k}", reupload, t_source + 6000)]
        if k == 0:  # enough later re-uploads to fill every over-fetched hit list
            scenario += [record(f"reup0-{j}", gen.noisy_copy(copy, noise=0.05), t_source + 6001 + j)
                         for j in range(16)]
        cases.append((f"src{k}", query(f"q{k}", copy, t_source + 3000)))
    store.upsert(scenario)

    before = store.stats.fallback_queries
    results = store.search([q for _, q in cases], top_k=3)
    assert store.stats.fallback_queries > before  # later rows filled hit lists: the exact path ran
    for (source_id, q), hits in zip(cases, results, strict=True):
        assert hits[0].video_id == source_id
        assert all(h.video_id != q.video_id for h in hits)
        assert all(h.published_at < q.published_at for h in hits)  # same RFC 3339 format: sorts by time

    per_query = MilvusVectorStore(db_path, collection=COLLECTION, batched_filter=False)
    try:
        exact = per_query.search([q for _, q in cases], top_k=3)
    finally:
        per_query.close()
    assert [[h.video_id for h in hits] for hits in exact] == [[h.video_id for h in hits] for hits in results]


@pytest.mark.integration
def test_upserted_videos_are_visible_to_the_next_search(store: MilvusVectorStore, world: World):
    late = 10 * DISTRACTORS + 100
    for round_ in range(3):
        frames = world.gen.video(8)
        n = store.count()
        store.upsert([record(f"fresh{round_}", frames, late)])
        assert store.count() == n + 1
        hits = store.search([query(f"probe{round_}", world.gen.noisy_copy(frames), late + 1)])[0]
        assert hits[0].video_id == f"fresh{round_}"
        store.flush()  # sealed into a segment (Lite indexes it in the background): still found
        assert store.search([query(f"probe{round_}", frames, late + 1)])[0][0].video_id == f"fresh{round_}"


@pytest.mark.integration
def test_upserting_a_video_twice_leaves_one_video(db_path: str):
    gen = FrameSequences(seed=11)
    with MilvusVectorStore(db_path, collection="twice") as s:
        first, second = gen.video(16), gen.video(6)  # 16 frame vectors, then 6
        s.upsert([record("dup", first, 1)])
        s.upsert([record("dup", second, 2), record("dup", second, 2)])
        assert s.count() == 1
        client = MilvusClient(db_path)
        try:
            rows = client.query("twice", filter='video_id == "dup"', output_fields=["clip_index", "published_at_ms"])
        finally:
            client.close()
        assert sorted(r["clip_index"] for r in rows) == list(range(6))  # the first upsert's rows 6-15 are gone
        assert {r["published_at_ms"] for r in rows} == {T0 + 2000}
        hits = s.search([query("probe", second, 10)], top_k=5)[0]
        assert [h.video_id for h in hits] == ["dup"]
        s.drop()
    with MilvusVectorStore(db_path, collection="twice") as s:
        assert s.count() == 0


@pytest.mark.integration
def test_data_survives_close_and_reopen(tmp_path: Path):
    uri = str(tmp_path / "reopen.db")
    gen = FrameSequences(seed=5)
    frames = gen.videos(50, frames=(8, 12))
    settings = Settings(milvus_uri=uri, milvus_collection="reopened")
    with MilvusVectorStore.from_settings(settings) as s:
        s.upsert([record(f"v{i}", f, i) for i, f in enumerate(frames)])
        s.flush()
        s.upsert([record("unflushed", gen.video(8), 60)])  # only in the write-ahead log at close
        before = s.search([query("probe", frames[7], 100)], top_k=2)
    with MilvusVectorStore.from_settings(settings) as s:  # a new embedded server re-reads the file
        assert s.count() == 51
        after = s.search([query("probe", frames[7], 100)], top_k=2)
        # the same hits; the similarity may move in the last float bits (a segment indexed on reopen)
        assert [(h.video_id, h.published_at) for h in after[0]] == [(h.video_id, h.published_at) for h in before[0]]
        assert [h.similarity for h in after[0]] == pytest.approx([h.similarity for h in before[0]], abs=1e-5)
        assert before[0][0].video_id == "v7"


@pytest.mark.integration
def test_reopening_with_another_dimension_or_kind_is_refused(db_path: str, store: MilvusVectorStore):
    with pytest.raises(SchemaMismatch):
        MilvusVectorStore(db_path, collection=COLLECTION, dim=64)
    with pytest.raises(SchemaMismatch):
        MilvusVectorStore(db_path, collection=COLLECTION, vector_kind=VectorSpec(Granularity.VIDEO).kind)
    assert store.count() >= DISTRACTORS  # the shared server is still up for the module's store


@pytest.mark.integration
def test_unreachable_server_is_a_transient_error_after_retries():
    t = time.monotonic()
    with pytest.raises(RetrievalUnavailable) as info:
        MilvusVectorStore(f"http://127.0.0.1:{free_port()}", timeout_s=1.0,
                          retry=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.02))
    assert isinstance(info.value, TransientError)
    assert "3 attempts" in str(info.value)
    assert time.monotonic() - t < 30


# --- ranking helper (pure) ---------------------------------------------------------------------


def row(video_id: str, similarity: float, published_ms: int) -> _Row:
    return _Row(video_id, similarity, published_ms, "", "", "")


def test_best_earlier_keeps_each_videos_best_vector_and_drops_self_and_later():
    per_vector = [
        [row("self", 1.0, 5), row("later", 0.95, 20), row("a", 0.7, 1), row("b", 0.6, 2)],
        [row("b", 0.9, 2), row("a", 0.5, 1)],
    ]
    hits, certain = best_earlier(per_vector, "self", 10, top_k=2, limit=math.inf)
    assert [(h.video_id, h.similarity) for h in hits] == [("b", 0.9), ("a", 0.7)]
    assert certain


def test_best_earlier_is_uncertain_when_a_full_list_may_hide_better_videos():
    full_of_later = [[row("later1", 0.9, 50), row("later2", 0.8, 60)]]
    assert best_earlier(full_of_later, "q", 10, top_k=1, limit=2) == ([], False)
    # the same list, not full: nothing is hidden, so "no earlier video" is the answer
    assert best_earlier(full_of_later, "q", 10, top_k=1, limit=3) == ([], True)
    # a valid hit above every hidden score is certain
    mixed = [[row("a", 0.95, 1), row("later", 0.9, 50)], [row("b", 0.4, 2), row("later", 0.3, 50)]]
    hits, certain = best_earlier(mixed, "q", 10, top_k=1, limit=2)
    assert [h.video_id for h in hits] == ["a"] and certain
    assert best_earlier(mixed, "q", 10, top_k=2, limit=2)[1] is False  # b (0.4) < hidden 0.9


def test_quote_escapes_milvus_string_literals():
    assert quote('a"b\\c') == '"a\\"b\\\\c"'


def test_each_encoder_version_gets_its_own_collection() -> None:
    from rci.retrieval.milvus import collection_name

    assert collection_name("rci_videos", None) == "rci_videos"
    first, second = collection_name("rci_videos", "enc-3fa9c0d1e2b4"), collection_name("rci_videos", "enc-000000000000")
    assert first == "rci_videos_enc_3fa9c0d1e2b4" and first != second
    assert all(c.isalnum() or c == "_" for c in first)  # Milvus names: letters, digits, underscores


# --- values of many-byte characters (issue 15, item 4) ----------------------------------------------


EMOJI = "\N{GRINNING FACE}"  # 4 bytes in UTF-8


def emoji_round_trip(store: MilvusVectorStore) -> None:
    """The longest values the contract lets through, in 4-byte characters, upsert and search back.

    creator_id and media_uri are contract-valid like this; video_id is ASCII by contract, but the store
    bounds it in characters only, so it is tried too (and makes vector_id 516 bytes). A Milvus server
    counts VARCHAR bytes: before the fields were declared 4 bytes per character, this upsert failed there.
    """
    frames = FrameSequences(seed=17).video(8)
    video_id, creator_id = EMOJI * MAX_ID, EMOJI * MAX_ID
    media_uri = "file:///" + EMOJI * (MAX_URI - len("file:///"))
    feature_key = "features/enc/" + EMOJI * (MAX_URI - len("features/enc/"))
    for value, chars in ((video_id, MAX_ID), (creator_id, MAX_ID), (media_uri, MAX_URI), (feature_key, MAX_URI)):
        assert len(value) == chars and len(value.encode()) > 3 * chars
    stored = VideoRecord(video_id, index_vectors(frames, np.ones(len(frames), bool), SPEC), at(1),
                         creator_id=creator_id, media_uri=media_uri, feature_key=feature_key)
    store.upsert([stored])
    hits = store.search([query("probe", frames, 10)], top_k=1)[0]
    assert [(h.video_id, h.creator_id, h.media_uri, h.feature_key) for h in hits] == [
        (video_id, creator_id, media_uri, feature_key)
    ]
    assert store.count() == 1


def test_values_of_four_byte_characters_fit_every_field(tmp_path: Path):
    with MilvusVectorStore(str(tmp_path / "emoji.db"), collection="emoji") as s:
        emoji_round_trip(s)
        client = MilvusClient(str(tmp_path / "emoji.db"))
        try:
            fields = {f["name"]: f for f in client.describe_collection("emoji")["fields"]}
        finally:
            client.close()
    declared = {name: int(fields[name]["params"]["max_length"])
                for name in ("vector_id", "video_id", "creator_id", "media_uri", "feature_key")}
    assert declared == {"vector_id": 4 * (MAX_ID + 8), "video_id": 4 * MAX_ID, "creator_id": 4 * MAX_ID,
                        "media_uri": 4 * MAX_URI, "feature_key": 4 * MAX_URI}


def test_clients_keepalive_is_one_both_servers_accept(milvus_uri: str):
    """pymilvus' own keepalive (a ping every 10 s, idle too) drew GOAWAY `too_many_pings` from Milvus Lite's
    gRPC server after a worker sat idle: pings only during calls, at most every 5 minutes (gRPC's server
    default minimum); a Milvus server's minimum is 5 s."""
    from rci.retrieval.milvus import GRPC_KEEPALIVE

    assert GRPC_KEEPALIVE["grpc.keepalive_time_ms"] >= 300_000
    assert GRPC_KEEPALIVE["grpc.keepalive_permit_without_calls"] is False
    with MilvusVectorStore(milvus_uri, collection="keepalive") as store:
        options = store._live()._handler._grpc_options  # what pymilvus puts on the channel, over its defaults
    assert {k: options.get(k) for k in GRPC_KEEPALIVE} == GRPC_KEEPALIVE
