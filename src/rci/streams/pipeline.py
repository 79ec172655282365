"""The scoring logic of the worker, free of any broker: records in, outcomes out.

The faust agent in `rci.streams.worker` only iterates the stream and calls
`ScoringPipeline.process(records)`; everything here can be tested with in-memory parts.

Per batch (DESIGN.md, "Online path"):
  parse -> features (cache, else fetch + decode + encode) -> batched retrieval (index shortlist,
  re-ranked on frame sets; a video's index search starts as soon as its own features are ready, while
  the batch's later videos are still decoded: `_EarlySearches`) -> batched MatchLite on each query's
  best few candidates -> its evidence
  (`credited`: the earliest flagged one about as similar as the best) -> back along the shortlist's
  own reproductions to the earliest of that family (`chain_to_source`) -> one `Outcome` per record,
  in input order.

Errors follow rci.core.errors: a `RejectedEvent` turns that record's outcome into a dead letter
and the rest of the batch carries on; a `TransientError` escapes so the caller retries
the whole batch (nothing was written yet, so a retry is safe).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from rci.inference.features import VideoFeatures
from rci.inference.runtime import PairScore
from rci.retrieval.similarity import frame_set_similarity
from rci.core import rfc3339
from rci.core.errors import RejectCode, RejectedEvent
from rci.core.logs import bind_video, get_logger
from rci.streams.metrics import WorkerMetrics
from rci.streams.contracts import (
    DeadLetterRecord,
    Evidence,
    PublishedEvent,
    ScoreRecord,
    parse_published_record,
)

log = get_logger(__name__)


# --- what the pipeline needs from the other packages (structural interfaces) -------------


class FeatureSource(Protocol):
    """Features per video, computed once and cached (media + encoders + storage)."""

    @property
    def encoder_version(self) -> str: ...

    async def features_for(self, event: PublishedEvent) -> VideoFeatures:
        """Features of a published video; raises RejectedEvent for bad media, TransientError for infra."""
        ...

    async def cached(self, video_id: str) -> VideoFeatures | None:
        """Features of an already indexed video, or None if the cache lost them."""
        ...


@dataclass(frozen=True)
class Candidate:
    video_id: str
    similarity: float
    published_at_ms: int


# Similarities closer than this are a tie. Retrieval must pick the same candidate for a re-delivered
# event although the competitors may now come from Milvus (approximate, float32) where they first
# came from the batch itself (numpy): ties go to the earliest published video, then the smallest id.
SIMILARITY_DECIMALS = 4


def rank_key(candidate: Candidate) -> tuple[float, int, str]:
    """The canonical order: highest similarity at SIMILARITY_DECIMALS, ties by publish time, then id."""
    return (-round(candidate.similarity, SIMILARITY_DECIMALS), candidate.published_at_ms, candidate.video_id)


def credited(ranked: Sequence[Candidate], scores: Sequence[float], threshold: float, margin: float) -> int:
    """Which of the best candidates by frame-set similarity (`ranked`, best first) a query is scored
    against, among those about as similar as the best (within `margin`): the earliest published one
    that MatchLite flags (score >= threshold), else the one it scores highest (the most similar on a tie).

    The most similar earlier video of a copy is often another copy of the same original (the copies
    share edits the original lacks); the original is about as similar, and earlier. Crediting it names
    the video whose creator the platform protects. Where none is flagged, the score reported is still
    MatchLite's best evidence among them: a copy whose most similar frames belong to another video (a
    small picture-in-picture over someone else's background) keeps the score of its true source. A
    candidate that looks clearly less alike is never credited over the best, whatever its score."""
    alike = [i for i, candidate in enumerate(ranked) if candidate.similarity >= ranked[0].similarity - margin]
    family = [i for i in alike if scores[i] >= threshold]
    if not family:
        return max(alike, key=lambda i: (scores[i], -i))
    return min(family, key=lambda i: _publication_order(ranked[i]))


def _publication_order(candidate: Candidate) -> tuple[int, str]:
    return candidate.published_at_ms, candidate.video_id


def source_links(ranked: Sequence[Candidate], evidence: int) -> list[tuple[int, int]]:
    """The pairs (later, earlier) of shortlisted candidates that `chain_to_source` may follow from the
    `evidence` candidate: both published no later than it, the first after the second."""
    order = [i for i in range(len(ranked)) if _publication_order(ranked[i]) <= _publication_order(ranked[evidence])]
    return [(i, j) for i in order for j in order if _publication_order(ranked[j]) < _publication_order(ranked[i])]


def chain_to_source(ranked: Sequence[Candidate], evidence: int, evidence_score: float,
                    links: dict[tuple[int, int], float], threshold: float) -> tuple[int, float]:
    """The credited candidate and its score: from the `evidence` candidate (`credited`), back along
    the shortlist's own reproductions to the earliest video of the family, with the chain's weakest link.

    `links[i, j]` is MatchLite's score of shortlisted candidate i reproducing the earlier candidate j
    (`source_links`). A query's best evidence is often an earlier copy of the original rather than the
    original itself (a zoomed copy is most like an earlier zoomed copy, a picture-in-picture most like
    an earlier copy that shares its background); where MatchLite flags that copy as a reproduction of
    an earlier shortlisted video, that video is the source the platform protects and is credited.
    The score is the weakest link (query -> evidence -> ... -> source): the chain is no stronger than
    its least certain step, and since every followed step is flagged, a query's deboost decision is the
    same as its evidence's; an unflagged query keeps its evidence's score exactly."""
    chosen, strength = evidence, evidence_score
    while True:
        sources = [j for (i, j), score in links.items() if i == chosen and score >= threshold]
        if not sources:
            return chosen, strength
        source = min(sources, key=lambda j: _publication_order(ranked[j]))
        chosen, strength = source, min(strength, links[chosen, source])


class CandidateIndex(Protocol):
    """Retrieval's first stage: a shortlist of earlier videos by visual similarity (Milvus in production)."""

    async def nearest(self, queries: Sequence[tuple[PublishedEvent, VideoFeatures]]) -> list[list[Candidate]]:
        """Per query: up to RCI_RETRIEVAL_TOP_K indexed videos published before it (never itself), by the
        index's own approximate similarity. The pipeline re-ranks them on their frame sets."""
        ...

    async def add(self, items: Sequence[tuple[PublishedEvent, VideoFeatures]]) -> None:
        """Idempotent upsert of scored videos so later videos can match them."""
        ...


class AsyncPairScorer(Protocol):
    """MatchLite behind the micro-batcher: one awaitable per pair. Not `rci.inference.runtime.PairScorer`,
    the synchronous batch model that the micro-batcher itself drives."""

    async def score(self, query: VideoFeatures, candidate: VideoFeatures) -> PairScore: ...


# --- records in, outcomes out -------------------------------------------------------------


@dataclass(frozen=True)
class InputRecord:
    """One consumed `video.published` record, as the broker gave it."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True)
class Outcome:
    """Exactly one of `score` / `dead_letter` is set."""

    record: InputRecord
    score: ScoreRecord | None = None
    dead_letter: DeadLetterRecord | None = None
    event: PublishedEvent | None = None
    features: VideoFeatures | None = None


@dataclass(frozen=True)
class ModelInfo:
    model_version: str
    threshold: float


@dataclass
class _Pending:
    """Per-record working state while a batch moves through the stages."""

    record: InputRecord
    event: PublishedEvent | None = None
    features: VideoFeatures | None = None
    shortlist: list[tuple[Candidate, VideoFeatures]] = field(default_factory=list)  # best first
    candidate: Candidate | None = None
    result: PairScore | None = None
    rejection: RejectedEvent | None = None
    memo: ScoreRecord | None = None  # the score a previous delivery computed


def dead_letter(record: InputRecord, rejection: RejectedEvent) -> DeadLetterRecord:
    original = base64.b64encode(record.value or b"").decode("ascii")
    return DeadLetterRecord(
        error=rejection.code,
        detail=rejection.detail[:2000],
        original=original,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        failed_at=rfc3339.now(),
    )


def published_ms(event: PublishedEvent) -> int:
    """The event's publish time as retrieval stores and filters it (epoch ms, the same parser)."""
    return rfc3339.epoch_ms(event.published_at)


class ScoreMemo(Protocol):
    """The score first written for a video by a model version: at least once delivery re-delivers a
    batch whose scores may already be on the topic, and a re-delivered event must get the same values
    although the index has changed since (videos published before it may have been indexed since).
    Keyed by the media too: a later event reusing a video_id with other media is scored afresh."""

    async def get(self, video_id: str, model_version: str, media_uri: str) -> ScoreRecord | None: ...

    async def put(self, record: ScoreRecord, media_uri: str) -> None: ...


class _EarlySearches:
    """A batch's index searches, started while the batch is still being encoded.

    Each video is searched as soon as its own features are ready, in one call with every other video
    ready by then (one call in flight: the index still sees batches), and its shortlisted candidates'
    features are read from the cache in the same step, each once per batch however many queries
    shortlist it (None where the cache lost them: skipped, not fatal). On a worker whose media pool
    decodes a few videos at a time, the index's and the cache's round trips of the videos ready first
    overlap the decoding of the rest, instead of all waiting for the batch's slowest decode.
    """

    def __init__(self, index: CandidateIndex, features: FeatureSource) -> None:
        self._index = index
        self._features = features
        self._waiting: list[_Pending] = []
        self._shortlists: dict[int, list[Candidate]] = {}  # id(pending) -> the index's shortlist
        self._cached: dict[str, VideoFeatures | None] = {}
        self._calls: list[asyncio.Task[None]] = []

    def start(self, p: _Pending) -> None:
        """Search `p` (features ready, visual) with the next call."""
        self._waiting.append(p)
        if not self._calls or self._calls[-1].done():
            self._calls.append(asyncio.ensure_future(self._drain()))

    async def results(self, live: list[_Pending]) -> tuple[list[list[Candidate]], dict[str, VideoFeatures | None]]:
        """-> (each of `live`'s shortlists, in order; the candidates' cached features by id). Raises the
        first failed call's error (TransientError: the batch is retried)."""
        await asyncio.gather(*self._calls)
        return [self._shortlists[id(p)] for p in live], self._cached

    def cancel(self) -> None:
        """Stop the calls still running (the batch failed); a failed call's error is taken as seen: the
        batch's own error is the one raised."""
        for call in self._calls:
            if not call.done():
                call.cancel()
            elif not call.cancelled():
                call.exception()

    async def _drain(self) -> None:
        while self._waiting:
            ready, self._waiting = self._waiting, []
            shortlists = await self._index.nearest([(p.event, p.features) for p in ready])
            for p, shortlist in zip(ready, shortlists, strict=True):
                self._shortlists[id(p)] = shortlist
            await self._read_candidates({c.video_id for shortlist in shortlists for c in shortlist})

    async def _read_candidates(self, video_ids: set[str]) -> None:
        ordered = sorted(video_ids - self._cached.keys())  # calls run one after another: no read twice
        loaded = await asyncio.gather(*(self._features.cached(vid) for vid in ordered))
        self._cached.update(zip(ordered, loaded, strict=True))


class ScoringPipeline:
    def __init__(
        self,
        features: FeatureSource,
        index: CandidateIndex,
        scorer: AsyncPairScorer,
        model: ModelInfo,
        metrics: WorkerMetrics | None = None,
        memo: ScoreMemo | None = None,
        score_top: int = 1,
        credit_margin: float = 0.15,
        overturned: Callable[[str, str], bool] | None = None,
    ) -> None:
        if score_top < 1:
            raise ValueError("score_top must be at least 1")
        self._score_top = score_top  # candidates MatchLite scores per query (RCI_RETRIEVAL_SCORE_TOP)
        self._credit_margin = credit_margin  # RCI_RETRIEVAL_CREDIT_MARGIN
        self._features = features
        self._index = index
        self._scorer = scorer
        self._model = model
        self._metrics = metrics or WorkerMetrics()
        self._memo = memo
        self._overturned = overturned  # (video, candidate) -> a moderator overturned its deboost (rci.streams.reviews)

    async def process(self, records: Sequence[InputRecord]) -> list[Outcome]:
        """Score a batch; one Outcome per record, in order. TransientError escapes (retry the batch)."""
        pending = [_Pending(record) for record in records]
        stage = self._metrics.stage
        with stage("parse"):
            self._parse(pending)
        searches = _EarlySearches(self._index, self._features)
        try:
            with stage("features"):  # the index searches of the videos ready first run meanwhile
                await self._extract(pending, searches)
            await self._recall(pending)
            with stage("retrieval"):  # what the overlap could not hide: at least the last videos' search
                await self._retrieve(pending, searches)  # recalled videos stay in-batch candidates for the others
        finally:
            searches.cancel()
        with stage("matchlite"):
            await self._score([p for p in pending if p.memo is None])
        scores = [self._raw_score(p) for p in pending]
        # the memo keeps the model's own decision; a moderator's verdict is applied on the way out, every time
        await self._remember([(s, p.event.media_uri) for s, p in zip(scores, pending, strict=True)
                              if s and p.memo is None])  # fmt: skip
        return [self._outcome(p, s) for p, s in zip(pending, scores, strict=True)]

    async def _recall(self, pending: list[_Pending]) -> None:
        live = [p for p in pending if p.features is not None and p.rejection is None]
        if self._memo is None or not live:
            return
        found = await asyncio.gather(
            *(self._memo.get(p.event.video_id, self._model.model_version, p.event.media_uri) for p in live)
        )
        for p, record in zip(live, found, strict=True):
            p.memo = record

    async def _remember(self, records: list[tuple[ScoreRecord, str]]) -> None:
        """Before the scores are written: a crash after the write re-delivers them, then they are recalled."""
        if self._memo is not None and records:
            await asyncio.gather(*(self._memo.put(record, media_uri) for record, media_uri in records))

    async def index(self, outcomes: Sequence[Outcome]) -> None:
        """After the scores are written: make the scored videos retrievable for later ones."""
        scored = [(o.event, o.features) for o in outcomes if o.score and o.event and o.features]
        unique = {event.video_id: (event, feats) for event, feats in scored}
        if unique:
            await self._index.add(list(unique.values()))

    # --- stages ---------------------------------------------------------------------------

    @staticmethod
    def _parse(pending: list[_Pending]) -> None:
        for p in pending:
            try:
                p.event = parse_published_record(p.record.value, p.record.key)
            except RejectedEvent as rejection:
                p.rejection = rejection

    async def _extract(self, pending: list[_Pending], searches: _EarlySearches) -> None:
        live = [p for p in pending if p.event]
        results = await asyncio.gather(*(self._features_then_search(p, searches) for p in live),
                                       return_exceptions=True)  # fmt: skip
        for p, result in zip(live, results, strict=True):
            if isinstance(result, RejectedEvent):
                p.rejection, p.event = result, None
            elif isinstance(result, BaseException):
                raise result  # TransientError or a bug: the whole batch is retried or stops

    async def _features_then_search(self, p: _Pending, searches: _EarlySearches) -> None:
        p.features = await self._features_or_rejection(p.event)
        if p.features.has_visual:
            searches.start(p)

    async def _features_or_rejection(self, event: PublishedEvent) -> VideoFeatures:
        with bind_video(event.video_id):
            features = await self._features.features_for(event)
            if not (features.has_visual or features.has_audio):
                raise RejectedEvent(RejectCode.MEDIA_NO_STREAMS, "media has neither video nor audio")
            return features

    async def _retrieve(self, pending: list[_Pending], searches: _EarlySearches) -> None:
        """Shortlist from the index plus the batch's own earlier videos, re-ranked on frame sets
        (rci.retrieval.similarity): the `score_top` earlier videos most like the query, best first."""
        live = [p for p in pending if p.features is not None and p.features.has_visual]
        if not live:
            return
        shortlists, cached = await searches.results(live)
        in_batch = {p.event.video_id: p.features for p in live}
        scoring = [(p, shortlist) for p, shortlist in zip(live, shortlists, strict=True) if p.memo is None]
        for p, shortlist in scoring:
            indexed = [(c.video_id, c.published_at_ms) for c in shortlist if c.video_id not in in_batch]
            for vid, _ in indexed:
                if cached[vid] is None:
                    with bind_video(p.event.video_id):
                        log.warning("candidate features missing from cache", candidate_id=vid)
            earlier = self._earlier_in_batch(p, live)
            found = {vid: cached[vid] for vid, _ in indexed if cached[vid] is not None}
            found.update({o.event.video_id: o.features for o in earlier})
            reranked = (Candidate(vid, frame_set_similarity(p.features, found[vid]), at_ms)
                        for vid, at_ms in indexed + [(o.event.video_id, published_ms(o.event)) for o in earlier]
                        if vid in found)
            p.shortlist = [(c, found[c.video_id]) for c in sorted(reranked, key=rank_key)[: self._score_top]]

    @staticmethod
    def _earlier_in_batch(query: _Pending, live: list[_Pending]) -> list[_Pending]:
        """The batch's videos published before the query: not indexed yet, but possibly its source."""
        at_ms = published_ms(query.event)
        return [o for o in live if published_ms(o.event) < at_ms and o.event.video_id != query.event.video_id]

    async def _score(self, pending: list[_Pending]) -> None:
        """Two rounds of pairs, each in one gather (the micro-batcher batches them): every query against
        its shortlist, which gives its evidence (`credited`); then the shortlisted candidates against each
        other, which leads from the evidence back to the earliest of its family (`chain_to_source`)."""
        scoring = [p for p in pending if p.shortlist]
        scored = await self._score_pairs([(p.features, features) for p in scoring for _, features in p.shortlist])
        evidence: list[tuple[_Pending, list[Candidate], list[PairScore], int]] = []
        for p in scoring:
            results = [next(scored) for _ in p.shortlist]
            ranked = [candidate for candidate, _ in p.shortlist]
            chosen = credited(ranked, [r.score for r in results], self._model.threshold, self._credit_margin)
            evidence.append((p, ranked, results, chosen))
        links = [source_links(ranked, chosen) for _, ranked, _, chosen in evidence]
        linked = await self._score_pairs([(p.shortlist[i][1], p.shortlist[j][1])
                                          for (p, *_), pairs in zip(evidence, links, strict=True) for i, j in pairs])
        for (p, ranked, results, chosen), pairs in zip(evidence, links, strict=True):
            link_scores = {pair: next(linked).score for pair in pairs}
            source, strength = chain_to_source(ranked, chosen, results[chosen].score, link_scores,
                                               self._model.threshold)  # fmt: skip
            # the evidence shown is the query's own comparison with the credited video
            p.candidate, p.result = ranked[source], replace(results[source], score=strength)

    async def _score_pairs(self, pairs: list[tuple[VideoFeatures, VideoFeatures]]) -> Iterator[PairScore]:
        """MatchLite on (query, candidate) pairs, in order; the first failure escapes (the batch is retried)."""
        results = await asyncio.gather(*(self._scorer.score(q, c) for q, c in pairs), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return iter(results)

    # --- output ---------------------------------------------------------------------------

    def _raw_score(self, p: _Pending) -> ScoreRecord | None:
        if p.rejection is not None or p.event is None or p.features is None:
            return None
        return p.memo or self._score_record(p)

    def _outcome(self, p: _Pending, score: ScoreRecord | None) -> Outcome:
        if score is None:
            rejection = p.rejection or RejectedEvent(RejectCode.SCHEMA_VIOLATION, "event could not be parsed")
            return Outcome(record=p.record, dead_letter=dead_letter(p.record, rejection))
        return Outcome(record=p.record, score=self._as_reviewed(score), event=p.event, features=p.features)

    def _as_reviewed(self, score: ScoreRecord) -> ScoreRecord:
        """Not deboosted against a candidate for which a moderator overturned that deboost (rci.reviews)."""
        if not (score.deboost and score.candidate_id and self._overturned
                and self._overturned(score.video_id, score.candidate_id)):  # fmt: skip
            return score
        evidence = Evidence(**score.evidence.model_dump(), review="overturned")
        return score.model_copy(update={"deboost": False, "evidence": evidence})

    def _score_record(self, p: _Pending) -> ScoreRecord:
        score = float(np.clip(p.result.score, 0.0, 1.0)) if p.result else 0.0
        scored_at = rfc3339.now()
        latency_ms = max(0.0, time.time() * 1000 - p.record.timestamp_ms) if p.record.timestamp_ms > 0 else 0.0
        segments = [list(map(float, s)) for s in (p.result.matched_segments if p.result else [])]
        return ScoreRecord(
            video_id=p.event.video_id,
            candidate_id=p.candidate.video_id if p.candidate else None,
            retrieval_similarity=round(p.candidate.similarity, 6) if p.candidate else None,
            score=round(score, 6),
            deboost=score >= self._model.threshold,
            threshold=self._model.threshold,
            model_version=self._model.model_version,
            modalities=p.features.modalities,
            evidence=Evidence(matched_segments=segments),
            published_at=p.event.published_at,
            scored_at=scored_at,
            latency_ms=round(latency_ms, 3),
        )
