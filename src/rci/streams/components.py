"""Concrete parts of the scoring pipeline, built from settings at the worker's start.

* `FeaturePipeline` (rci.features.pipeline): feature cache, else fetch (allow-listed) -> decode -> frozen encoders.
* `MilvusCandidateIndex`: retrieval's shortlist from the Milvus store (frame-level vectors by default).
* `BatchedPairScorer`: MatchLite behind the asyncio micro-batcher.

CPU-heavy work (decode, encoders, MatchLite, the synchronous Milvus client) runs in
executors so the event loop keeps the consumer's group membership alive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rci.inference.batcher import MicroBatcher
from rci.inference.encoders.bundle import EncoderBundle
from rci.inference.encoders.extract import FeatureExtractor
from rci.inference.features import FeatureSpec, VideoFeatures
from rci.inference.matchlite import MatchLiteConfig
from rci.inference.model_dir import matchlite_checkpoint, matchlite_onnx
from rci.inference.runtime import PairScorer as ModelScorer
from rci.inference.runtime import PairScore, make_scorer
from rci.media.policy import media_policy
from rci.core.errors import ModelError
from rci.core.logs import get_logger
from rci.core.redact import redact_uri
from rci.core.settings import Settings
from rci.core.threads import OwnThread
from rci.retrieval.milvus import MilvusVectorStore
from rci.retrieval.store import SearchQuery, VectorStore, VideoRecord, to_epoch_ms
from rci.retrieval.vectors import VectorSpec, index_vectors, query_vectors
from rci.features.cache import FeatureCache, feature_key, uri_digest
from rci.features.pipeline import FeaturePipeline
from rci.storage.errors import ObjectNotFound
from rci.storage.objects import ObjectStore, make_object_store
from rci.storage.s3 import S3Client, s3_config
from rci.streams.contracts import PublishedEvent, ScoreRecord
from rci.streams.pipeline import Candidate, ModelInfo


log = get_logger(__name__)


class MilvusCandidateIndex:
    """The pipeline's retrieval step on a VectorStore (synchronous, so on one dedicated thread)."""

    def __init__(self, store: VectorStore, spec: VectorSpec, encoder_version: str, top_k: int = 1) -> None:
        self._store = store
        self._spec = spec
        self._encoder_version = encoder_version
        self._top_k = top_k
        self._thread = OwnThread("milvus")

    async def nearest(self, queries: Sequence[tuple[PublishedEvent, VideoFeatures]]) -> list[list[Candidate]]:
        search = [
            SearchQuery(event.video_id, query_vectors(f.visual, f.visual_mask, self._spec, f.visual_views), event.published_at)
            for event, f in queries
        ]
        hits = await self._thread.run(self._store.search, search, self._top_k)
        return [[Candidate(h.video_id, float(h.similarity), to_epoch_ms(h.published_at)) for h in found]
                for found in hits]

    async def add(self, items: Sequence[tuple[PublishedEvent, VideoFeatures]]) -> None:
        records = [
            VideoRecord(
                video_id=event.video_id,
                embeddings=index_vectors(f.visual, f.visual_mask, self._spec, f.visual_views),
                published_at=event.published_at,
                creator_id=event.creator_id or "",
                media_uri=event.media_uri,
                feature_key=feature_key(event.video_id, self._encoder_version, event.media_uri),
            )
            for event, f in items
            if f.has_visual
        ]
        if records:
            await self._thread.run(self._store.upsert, records)

    def close(self) -> None:
        self._thread.close()
        self._store.close()


class BatchedPairScorer:
    """MatchLite pairs from many coroutines, scored in micro-batches off the event loop."""

    def __init__(self, batcher: MicroBatcher) -> None:
        self._batcher = batcher

    async def score(self, query: VideoFeatures, candidate: VideoFeatures) -> PairScore:
        return await self._batcher.score(query, candidate)

    async def aclose(self) -> None:
        await self._batcher.aclose()


@dataclass
class ServingParts:
    """Everything the worker holds open; `aclose` releases it."""

    features: FeaturePipeline
    index: MilvusCandidateIndex
    scorer: BatchedPairScorer
    model: ModelInfo
    cache: FeatureCache
    executor: Executor
    background: list[Callable[[], None]] = field(default_factory=list)  # stops of helper threads (the verdicts' follower)

    async def aclose(self) -> None:
        for stop in self.background:
            await asyncio.to_thread(stop)
        await self.scorer.aclose()
        self.index.close()
        await self.features.aclose()  # the feature store's own (S3) client and the media S3 client
        self.executor.shutdown(wait=False)


def load_matchlite(settings: Settings) -> ModelScorer:
    """MatchLite from the model directory: the ONNX export, or the checkpoint for RCI_RUNTIME=torch."""
    model_dir = settings.resolved_model_dir
    path = matchlite_onnx(model_dir) if settings.runtime == "onnx" else matchlite_checkpoint(model_dir)
    if not path.exists():
        raise ModelError(f"no MatchLite model at {path}: train and export one (`rci demo` or `rci train`)")
    return make_scorer(
        settings.runtime, path, settings.device, settings.ort_intra_op_threads, settings.ort_inter_op_threads
    )


def check_model_fits(config: MatchLiteConfig, spec: FeatureSpec, model_dir: Path) -> None:
    """Refuse to serve a MatchLite built for other features (another encoder, one view instead of two) at
    start, rather than poisoning every record with InvalidFeatures."""
    try:
        config.check_spec(spec)
    except ValueError as exc:
        raise ModelError(f"{model_dir}: MatchLite does not fit the encoders' features ({exc}): retrain it "
                         "(`rci demo`, `rci train`) or restore the encoders it was trained with") from exc


def model_version(scorer: ModelScorer, encoders: EncoderBundle) -> str:
    """`model_version` on rci.scores: identifies both the MatchLite weights and the encoders."""
    return f"{scorer.model_version}+enc.{encoders.version}"


def encoder_version_of(served_model_version: str) -> str | None:
    """The encoders' version inside a `model_version` of rci.scores (what `model_version` joined), or None."""
    _, sep, encoders = served_model_version.rpartition("+enc.")
    return encoders if sep and encoders else None


async def open_serving_parts(settings: Settings) -> ServingParts:
    """Load models and open clients; call on the event loop that will use them."""
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="media")
    encoders = EncoderBundle.load(settings.resolved_model_dir, device=settings.device)
    scorer = load_matchlite(settings)
    check_model_fits(scorer.config, encoders.feature_spec(settings.media_max_frames), settings.resolved_model_dir)
    features = open_feature_pipeline(settings, encoders, executor)
    index = open_candidate_index(settings, encoders)
    batcher = MicroBatcher(scorer, settings.batch_max_size, settings.batch_max_wait_ms)
    info = ModelInfo(model_version=model_version(scorer, encoders), threshold=float(scorer.threshold))
    log.info("serving parts ready", model_version=info.model_version, threshold=info.threshold,
             runtime=settings.runtime, milvus=redact_uri(settings.resolved_milvus_uri), object_store=settings.object_store)
    return ServingParts(
        features=features,
        index=index,
        scorer=BatchedPairScorer(batcher),
        model=info,
        cache=features.cache,
        executor=executor,
    )


def open_feature_pipeline(settings: Settings, encoders: EncoderBundle, executor: Executor | None = None) -> FeaturePipeline:
    """The features path the worker serves with (also `rci index rebuild`): the configured feature cache,
    the media allow-list, an S3 client when media or features live in S3. `aclose()` it when done."""
    s3 = S3Client(s3_config(settings)) if _needs_s3(settings) else None
    cache = FeatureCache(make_object_store(settings))
    return FeaturePipeline(FeatureExtractor(encoders), cache, media_policy(settings), s3, executor,
                           keep_frames=settings.review_frames)


def open_candidate_index(settings: Settings, encoders: EncoderBundle) -> MilvusCandidateIndex:
    """Retrieval on the Milvus collection of these encoders' version (`<RCI_MILVUS_COLLECTION>_enc_<12 hex>`)."""
    store = MilvusVectorStore.from_settings(settings, encoder_version=encoders.version,
                                            dim=encoders.feature_spec(settings.media_max_frames).view_dim)
    return MilvusCandidateIndex(store, VectorSpec.from_settings(settings), encoders.version, settings.retrieval_top_k)


def _needs_s3(settings: Settings) -> bool:
    return settings.object_store == "s3" or any(p.startswith("s3://") for p in settings.resolved_media_prefixes)


class ObjectStoreScoreMemo:
    """Scores by (model_version, video_id, media) in the object store beside the feature cache."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    @staticmethod
    def key(video_id: str, model_version: str, media_uri: str) -> str:
        return f"scores/{model_version}/{video_id}.{uri_digest(media_uri)}.json"

    async def get(self, video_id: str, model_version: str, media_uri: str) -> ScoreRecord | None:
        try:
            return ScoreRecord.model_validate_json(await self._store.get(self.key(video_id, model_version, media_uri)))
        except ObjectNotFound:
            return None

    async def put(self, record: ScoreRecord, media_uri: str) -> None:
        key = self.key(record.video_id, record.model_version, media_uri)
        await self._store.put(key, record.model_dump_json().encode())
