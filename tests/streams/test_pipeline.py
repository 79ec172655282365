"""Unit tests of the broker-free scoring pipeline, with in-memory features, index and scorer."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import numpy as np
import pytest

from rci.inference.features import VideoFeatures
from rci.core.errors import RejectCode, RejectedEvent, TransientError
from rci.inference.runtime import PairScore
from rci.retrieval.similarity import frame_set_similarity
from rci.streams.pipeline import (
    Candidate,
    chain_to_source,
    credited,
    source_links,
    rank_key,
    InputRecord,
    ModelInfo,
    ScoringPipeline,
    published_ms,
)

DIM = 16


def make_features(video_id: str, seed: int, noise: float = 0.0, audio: bool = True) -> VideoFeatures:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(4, DIM)).astype(np.float32)
    if noise:
        base = base + np.random.default_rng(seed + 1000).normal(scale=noise, size=base.shape).astype(np.float32)
    visual = np.zeros((6, DIM), np.float32)
    visual[:4] = base
    return VideoFeatures(
        video_id=video_id,
        encoder_version="test-enc",
        visual=visual,
        visual_mask=np.array([True] * 4 + [False] * 2),
        audio=np.ones(8, np.float32) if audio else np.zeros(8, np.float32),
        has_audio=audio,
        text=np.zeros((3, 4), np.float32),
        text_mask=np.zeros(3, bool),
        duration_s=4.0,
    )


class MemoryFeatures:
    """Features by video_id; the media 'decides' by a lookup table."""

    encoder_version = "test-enc"

    def __init__(self, table: dict[str, VideoFeatures | Exception]) -> None:
        self.table = table
        self.cache: dict[str, VideoFeatures] = {}

    async def features_for(self, event):
        item = self.table[event.video_id]
        if isinstance(item, Exception):
            raise item
        self.cache[event.video_id] = item
        return item

    async def cached(self, video_id):
        return self.cache.get(video_id)


class ExactIndex:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[np.ndarray, int]] = {}
        self.adds = 0

    async def nearest(self, queries):
        """Every earlier indexed video, most similar first (the pipeline re-ranks them itself)."""
        out = []
        for event, feats in queries:
            video_id, emb, at_ms = event.video_id, feats.video_embedding(), published_ms(event)
            shortlist = [
                Candidate(other, float(vec @ emb), other_ms)
                for other, (vec, other_ms) in self.rows.items()
                if other != video_id and other_ms < at_ms
            ]
            out.append(sorted(shortlist, key=lambda c: -c.similarity))
        return out

    async def add(self, items):
        self.adds += 1
        for event, feats in items:
            self.rows[event.video_id] = (feats.video_embedding(), published_ms(event))


class CosineScorer:
    async def score(self, query, candidate):
        sim = float(query.video_embedding() @ candidate.video_embedding())
        return PairScore(score=(sim + 1) / 2, matched_segments=[[0.0, 1.0, 0.0, 1.0]])


def event_record(video_id: str, offset: int, second: int, **overrides) -> InputRecord:
    event = {
        "schema_version": 1,
        "video_id": video_id,
        "media_uri": f"file:///media/{video_id}.mp4",
        "title": "t",
        "published_at": f"2026-11-22T10:00:{second:02d}Z",
    }
    event.update(overrides)
    return InputRecord(video_id.encode(), json.dumps(event).encode(), "video.published", 0, offset, 1)


def make_pipeline(table, index=None):
    return ScoringPipeline(MemoryFeatures(table), index or ExactIndex(), CosineScorer(), ModelInfo("m1", 0.9))


async def test_one_outcome_per_record_in_order_with_dead_letters_for_bad_ones():
    table = {
        "src": make_features("src", 1),
        "copy": make_features("copy", 1, noise=0.05),
        "broken": RejectedEvent(RejectCode.MEDIA_UNDECODABLE, "truncated"),
        "other": make_features("other", 7),
    }
    records = [
        event_record("src", 0, 1),
        InputRecord(b"x", b"{not json", "video.published", 0, 1, 1),
        event_record("copy", 2, 5),
        event_record("broken", 3, 6),
        event_record("other", 4, 7),
    ]
    outcomes = await make_pipeline(table).process(records)

    assert [o.record.offset for o in outcomes] == [0, 1, 2, 3, 4]
    assert outcomes[1].dead_letter.error == RejectCode.INVALID_JSON
    assert outcomes[3].dead_letter.error == RejectCode.MEDIA_UNDECODABLE
    assert outcomes[3].dead_letter.original_bytes() == records[3].value
    assert (outcomes[3].dead_letter.partition, outcomes[3].dead_letter.offset) == (0, 3)
    scored = {o.score.video_id: o.score for o in outcomes if o.score}
    assert set(scored) == {"src", "copy", "other"}
    # the copy finds its source inside the batch (not indexed yet) and is deboosted
    assert scored["copy"].candidate_id == "src"
    assert scored["copy"].deboost is True
    # the first video has nothing earlier to match: score 0, no candidate
    assert scored["src"].candidate_id is None and scored["src"].score == 0.0
    assert scored["other"].score < scored["copy"].score


async def test_candidates_come_from_the_index_and_are_never_later_videos():
    index = ExactIndex()
    pipeline = make_pipeline({"src": make_features("src", 3), "copy": make_features("copy", 3, 0.05)}, index)
    first = await pipeline.process([event_record("src", 0, 1)])
    await pipeline.index(first)
    second = await pipeline.process([event_record("copy", 1, 9)])
    assert second[0].score.candidate_id == "src"
    # re-delivery of the source after the copy was indexed: the later copy is not a candidate
    await pipeline.index(second)
    again = await pipeline.process([event_record("src", 0, 1)])
    assert again[0].score.candidate_id is None


async def test_redelivered_event_yields_identical_values():
    index = ExactIndex()
    pipeline = make_pipeline({"a": make_features("a", 5), "b": make_features("b", 5, 0.1)}, index)
    first = await pipeline.process([event_record("a", 0, 1), event_record("b", 1, 2)])
    await pipeline.index(first)
    again = await pipeline.process([event_record("b", 1, 2)])
    keep = ("candidate_id", "retrieval_similarity", "score", "deboost", "modalities", "evidence")
    assert again[0].score.model_dump(include=set(keep)) == first[1].score.model_dump(include=set(keep))


async def test_transient_failures_escape_for_the_caller_to_retry():
    pipeline = make_pipeline({"a": TransientError("object store down")})
    with pytest.raises(TransientError):
        await pipeline.process([event_record("a", 0, 1)])


async def test_wrong_key_and_schema_errors_are_dead_lettered_with_their_codes():
    good = event_record("a", 0, 1)
    wrong_key = InputRecord(b"not-a", good.value, "video.published", 0, 1, 1)
    bad_uri = event_record("b", 2, 1, media_uri="http://example.com/x.mp4")
    keyless = InputRecord(None, good.value, "video.published", 0, 3, 1)
    outcomes = await make_pipeline({"a": make_features("a", 1)}).process([good, wrong_key, bad_uri, keyless])
    assert outcomes[0].score is not None
    assert outcomes[1].dead_letter.error == RejectCode.INVALID_KEY
    assert outcomes[2].dead_letter.error == RejectCode.SCHEMA_VIOLATION
    assert outcomes[3].dead_letter.error == RejectCode.INVALID_KEY


async def test_modalities_reflect_what_the_media_had():
    outcomes = await make_pipeline({"a": make_features("a", 1, audio=False)}).process([event_record("a", 0, 1)])
    assert outcomes[0].score.modalities == ["visual"]


def test_near_ties_go_to_the_earliest_video_whichever_side_reports_them():
    # the same two competitors as a re-delivery sees them: once from the batch (numpy), once from
    # Milvus (float32, approximate) with the order of the near-equal similarities flipped
    first_time = [Candidate("late", 0.999991, 2_000), Candidate("early", 0.999987, 1_000)]
    redelivered = [Candidate("early", 0.999992, 1_000), Candidate("late", 0.999990, 2_000)]
    assert min(first_time, key=rank_key).video_id == min(redelivered, key=rank_key).video_id == "early"
    # a real difference in similarity still wins over publish time
    assert min([Candidate("early", 0.91, 1_000), Candidate("late", 0.95, 2_000)], key=rank_key).video_id == "late"


class DictMemo:
    def __init__(self):
        self.records = {}

    async def get(self, video_id, model_version, media_uri):
        return self.records.get((video_id, model_version, media_uri))

    async def put(self, record, media_uri):
        self.records[(record.video_id, record.model_version, media_uri)] = record


async def test_redelivery_after_the_index_changed_returns_the_first_score():
    # "late" was published first but its partition was consumed after "copy" was scored: when "copy"
    # is re-delivered, the index holds a better candidate than the first delivery could see
    table = {"src": make_features("src", 4), "late": make_features("late", 4, 0.2), "copy": make_features("copy", 4, 0.2)}
    memo, index = DictMemo(), ExactIndex()
    pipeline = ScoringPipeline(MemoryFeatures(table), index, CosineScorer(), ModelInfo("m1", 0.9), memo=memo)
    await pipeline.index(await pipeline.process([event_record("src", 0, 1)]))
    first = await pipeline.process([event_record("copy", 1, 9)])
    await pipeline.index(await pipeline.process([event_record("late", 2, 5)]))
    again = await pipeline.process([event_record("copy", 1, 9)])
    assert again[0].score == first[0].score  # every field, scored_at included
    assert again[0].features is not None  # still indexed by the caller
    assert first[0].score.candidate_id == "src"  # "late" (identical to "copy") is indexed only afterwards


class FixedShortlist:
    """An index whose shortlist order is deliberately wrong: the decoy first."""

    def __init__(self, shortlist: list[Candidate]) -> None:
        self.shortlist = shortlist

    async def nearest(self, queries):
        return [list(self.shortlist) for _ in queries]

    async def add(self, items):
        pass


async def test_the_shortlist_is_reranked_on_frame_sets_and_a_lost_candidate_is_skipped():
    src = make_features("src", 1)
    query = make_features("copy", 1, noise=0.05)
    decoy = make_features("decoy", 9)
    decoy.visual[0] = query.visual[0]  # one shared frame: the best single frame pair, a poor frame set
    features = MemoryFeatures({"copy": query})
    features.cache.update({"src": src, "decoy": decoy})
    shortlist = [Candidate("decoy", 0.99, 1_000), Candidate("lost", 0.98, 1_000), Candidate("src", 0.10, 1_000)]
    pipeline = ScoringPipeline(features, FixedShortlist(shortlist), CosineScorer(), ModelInfo("m1", 0.9))

    [outcome] = await pipeline.process([event_record("copy", 0, 30)])

    assert outcome.score.candidate_id == "src"
    expected = frame_set_similarity(query, src)
    assert outcome.score.retrieval_similarity == pytest.approx(expected, abs=1e-6)
    assert expected > frame_set_similarity(query, decoy)


async def test_the_same_id_with_other_media_is_scored_afresh_not_recalled():
    table = {"src": make_features("src", 4), "copy": make_features("copy", 4, 0.2)}
    memo = DictMemo()
    pipeline = ScoringPipeline(MemoryFeatures(table), ExactIndex(), CosineScorer(), ModelInfo("m1", 0.9), memo=memo)
    await pipeline.index(await pipeline.process([event_record("src", 0, 1)]))
    first = await pipeline.process([event_record("copy", 1, 9)])
    assert first[0].score.candidate_id == "src"
    table["copy"] = make_features("copy", 77)  # the same id, other media: nothing like src any more
    again = await pipeline.process([event_record("copy", 2, 9, media_uri="file:///media/other.mp4")])
    assert again[0].score.score < first[0].score.score
    assert len(memo.records) == 3  # src, copy from its first media, copy from the other


def test_credit_goes_to_the_earliest_flagged_candidate_about_as_similar_as_the_best():
    ranked = [Candidate("copy", 0.97, 2_000), Candidate("original", 0.90, 1_000), Candidate("other", 0.5, 500)]
    assert credited(ranked, [0.99, 0.93, 0.2], threshold=0.3, margin=0.15) == 1  # the original, not its copy
    assert credited(ranked, [0.99, 0.25, 0.2], threshold=0.3, margin=0.15) == 0  # not flagged
    assert credited(ranked, [0.99, 0.93, 0.2], threshold=0.3, margin=0.05) == 0  # clearly less alike
    assert credited(ranked, [0.99, 0.93, 0.96], threshold=0.3, margin=0.15) == 1  # "other" looks nothing alike
    assert credited(ranked, [0.99, 0.93, 0.96], threshold=0.3, margin=0.5) == 2  # the earliest of the family
    assert credited(ranked, [0.1, 0.9, 0.3], threshold=0.95, margin=0.5) == 1  # none flagged: the best score
    assert credited(ranked, [0.1, 0.9, 0.3], threshold=0.95, margin=0.05) == 0  # ... among those about as alike
    assert credited(ranked, [0.4, 0.4, 0.1], threshold=0.95, margin=0.5) == 0  # a tie: the most similar


def test_the_chain_follows_flagged_reproductions_among_the_shortlist_back_to_the_earliest():
    ranked = [Candidate("zoom_copy", 0.8, 3_000), Candidate("crop_copy", 0.75, 2_000),
              Candidate("original", 0.7, 1_000), Candidate("later", 0.6, 4_000)]
    assert source_links(ranked, 0) == [(0, 1), (0, 2), (1, 2)]  # "later" was published after the evidence
    assert source_links(ranked, 2) == []
    links = {(0, 1): 0.95, (0, 2): 0.2, (1, 2): 0.9}
    # unflagged evidence: the name moves to the original, the score stays the query's own
    assert chain_to_source(ranked, 0, 0.4, links, threshold=0.85) == (2, 0.4)
    # flagged evidence: the weakest flagged link, so the deboost decision stands
    assert chain_to_source(ranked, 0, 0.99, links, threshold=0.85) == (2, 0.9)
    assert chain_to_source(ranked, 0, 0.4, links, threshold=0.92) == (1, 0.4)  # crop -> original not flagged
    assert chain_to_source(ranked, 0, 0.4, {(0, 1): 0.5, (0, 2): 0.5, (1, 2): 0.99}, threshold=0.85) == (0, 0.4)
    # two flagged sources of the evidence: the earliest
    assert chain_to_source(ranked, 0, 0.4, {(0, 1): 0.9, (0, 2): 0.9, (1, 2): 0.1}, threshold=0.85) == (2, 0.4)


class TableScorer:
    """MatchLite by a table of (query, candidate) -> score; pairs not in it look unrelated."""

    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        self.table = table
        self.pairs: list[tuple[str, str]] = []

    async def score(self, query, candidate):
        self.pairs.append((query.video_id, candidate.video_id))
        return PairScore(score=self.table.get((query.video_id, candidate.video_id), 0.05),
                         matched_segments=[[0.0, 1.0, 0.0, 1.0]])


@pytest.mark.parametrize(("query_to_copy", "copy_to_original", "credited_id", "score", "deboost"), [
    (0.6, 0.99, "original", 0.6, False),  # an unflagged hard copy: named after the original, same score
    (0.95, 0.92, "original", 0.92, True),  # flagged: credited to the original, still deboosted
    (0.6, 0.5, "copy", 0.6, False),  # the copy is not MatchLite's reproduction of the original: no chain
])
async def test_a_query_most_like_an_earlier_copy_is_credited_to_the_copy_s_original(
        query_to_copy, copy_to_original, credited_id, score, deboost):
    original = make_features("original", 5)
    copy = make_features("copy", 5, noise=0.3)
    table = {"original": original, "copy": copy, "query": replace(copy, video_id="query")}  # most like the copy
    scorer = TableScorer({("copy", "original"): copy_to_original, ("query", "copy"): query_to_copy,
                          ("query", "original"): 0.3})
    pipeline = ScoringPipeline(MemoryFeatures(table), ExactIndex(), scorer, ModelInfo("m1", 0.9),
                               score_top=2, credit_margin=0.5)
    for offset, vid in enumerate(("original", "copy", "query")):
        [outcome] = await pipeline.process([event_record(vid, offset, offset + 1)])
        await pipeline.index([outcome])
    assert (outcome.score.candidate_id, outcome.score.score, outcome.score.deboost) == (credited_id, score, deboost)
    assert ("copy", "original") in scorer.pairs[-1:]  # the second round compares the shortlist itself


async def test_a_copy_of_a_copy_is_credited_to_the_original_when_both_score_as_matches():
    original = make_features("original", 5)
    first_copy = make_features("first_copy", 5, noise=0.3)
    table = {"original": original, "first_copy": first_copy,
             "second_copy": replace(first_copy, video_id="second_copy")}  # closer to the first copy
    outcomes = {}
    for top in (1, 2):
        pipeline = ScoringPipeline(MemoryFeatures(table), ExactIndex(), CosineScorer(), ModelInfo("m1", 0.6),
                                   score_top=top, credit_margin=0.5)
        for offset, (vid, second) in enumerate((("original", 1), ("first_copy", 2), ("second_copy", 3))):
            [outcome] = await pipeline.process([event_record(vid, offset, second)])
            await pipeline.index([outcome])
        outcomes[top] = outcome.score
    assert outcomes[1].candidate_id == "first_copy"  # the most similar earlier video
    assert outcomes[2].candidate_id == "original" and outcomes[2].deboost
    assert outcomes[2].retrieval_similarity < outcomes[1].retrieval_similarity  # reported for the credited one
    with pytest.raises(ValueError, match="score_top"):
        ScoringPipeline(MemoryFeatures(table), ExactIndex(), CosineScorer(), ModelInfo("m1", 0.6), score_top=0)


async def test_a_deboost_a_moderator_overturned_is_not_given_again_on_redelivery_or_replay():
    from rci.streams.reviews import ReviewedPairs
    from rci.streams.contracts import ReviewVerdict

    table = {"src": make_features("src", 6), "copy": make_features("copy", 6, 0.05)}
    memo, reviewed = DictMemo(), ReviewedPairs()
    pipeline = ScoringPipeline(MemoryFeatures(table), ExactIndex(), CosineScorer(), ModelInfo("m1", 0.9), memo=memo,
                               overturned=reviewed.overturned)  # fmt: skip
    await pipeline.index(await pipeline.process([event_record("src", 0, 1)]))
    [first] = await pipeline.process([event_record("copy", 1, 9)])
    assert first.score.deboost and first.score.candidate_id == "src"

    def verdict(what: str) -> ReviewVerdict:
        return ReviewVerdict(video_id="copy", candidate_id="src", verdict=what, reason="r", reviewer="m",
                             score=first.score.score, deboost=True, model_version="m1", reviewed_at="2026-12-01T11:00:00Z")  # fmt: skip

    reviewed.add(verdict("overturn"))
    [again] = await pipeline.process([event_record("copy", 1, 9)])  # re-delivered: recalled from the memo
    assert (again.score.deboost, again.score.score, again.score.evidence.model_extra) == (False, first.score.score, {"review": "overturned"})
    assert memo.records[("copy", "m1", "file:///media/copy.mp4")].deboost  # the memo keeps the model's own decision
    reviewed.add(verdict("confirm"))  # a later verdict confirms it after all: deboosted again
    [third] = await pipeline.process([event_record("copy", 1, 9)])
    assert third.score.deboost and not third.score.evidence.model_extra


class GatedFeatures(MemoryFeatures):
    """Features that wait for their gate (a video still decoding); counts the cache reads of candidates."""

    def __init__(self, table, gates: dict[str, asyncio.Event]) -> None:
        super().__init__(table)
        self.gates = gates
        self.reads: list[str] = []

    async def features_for(self, event):
        if event.video_id in self.gates:
            await self.gates[event.video_id].wait()
        return await super().features_for(event)

    async def cached(self, video_id):
        self.reads.append(video_id)
        return await super().cached(video_id)


class RecordingIndex(ExactIndex):
    """Notes each search call's videos, and which gates were still shut when it ran."""

    def __init__(self, gates: dict[str, asyncio.Event]) -> None:
        super().__init__()
        self.gates = gates
        self.calls: list[tuple[list[str], list[str]]] = []

    async def nearest(self, queries):
        shut = sorted(vid for vid, gate in self.gates.items() if not gate.is_set())
        self.calls.append(([event.video_id for event, _ in queries], shut))
        return await super().nearest(queries)


async def test_a_video_is_searched_while_later_videos_of_its_batch_are_still_encoded():
    gates = {"slow": asyncio.Event()}
    table = {"src": make_features("src", 1), "fast": make_features("fast", 1, noise=0.05),
             "slow": make_features("slow", 2)}
    features = GatedFeatures(table, gates)
    index = RecordingIndex(gates)
    pipeline = ScoringPipeline(features, index, CosineScorer(), ModelInfo("m1", 0.9))
    await pipeline.index(await pipeline.process([event_record("src", 0, 1)]))
    index.calls.clear()

    batch = asyncio.ensure_future(pipeline.process([event_record("slow", 1, 5), event_record("fast", 2, 6)]))
    for _ in range(20):  # let every ready coroutine run; "slow" stays shut
        await asyncio.sleep(0)
    assert index.calls == [(["fast"], ["slow"])]  # searched while "slow" was still decoding
    gates["slow"].set()
    outcomes = await batch

    assert index.calls == [(["fast"], ["slow"]), (["slow"], [])]
    assert outcomes[1].score.candidate_id == "src" and outcomes[1].score.deboost
    assert features.reads.count("src") == 1  # shortlisted by both calls, read from the cache once


class FailingIndex(ExactIndex):
    async def nearest(self, queries):
        raise TransientError("milvus unavailable")


async def test_a_failed_early_search_fails_the_batch_for_a_retry_after_its_encoding():
    gates = {"slow": asyncio.Event()}
    features = GatedFeatures({"fast": make_features("fast", 1), "slow": make_features("slow", 2)}, gates)
    pipeline = ScoringPipeline(features, FailingIndex(), CosineScorer(), ModelInfo("m1", 0.9))
    batch = asyncio.ensure_future(pipeline.process([event_record("slow", 0, 5), event_record("fast", 1, 6)]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not batch.done()  # the search failed; the batch still waits for its own encoding to end
    gates["slow"].set()
    with pytest.raises(TransientError, match="milvus unavailable"):
        await batch


async def test_a_failed_encoding_cancels_the_searches_in_flight():
    started, release = asyncio.Event(), asyncio.Event()

    class SlowIndex(ExactIndex):
        async def nearest(self, queries):
            started.set()
            await release.wait()  # never released: cancelled with the failed batch
            return await super().nearest(queries)

    gates = {"broken": asyncio.Event()}
    table = {"fast": make_features("fast", 1), "broken": TransientError("object store down")}
    pipeline = ScoringPipeline(GatedFeatures(table, gates), SlowIndex(), CosineScorer(), ModelInfo("m1", 0.9))
    batch = asyncio.ensure_future(pipeline.process([event_record("fast", 0, 5), event_record("broken", 1, 6)]))
    await started.wait()
    gates["broken"].set()
    with pytest.raises(TransientError, match="object store down"):
        await batch
    await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert pending == []  # the search in flight was cancelled, not left running
