"""Pairs made from real media: validation pairs that no training and no benchmark uses (where the served
score's scale and bias are fitted and the stored threshold is chosen), and training pairs from a pool
of their own.

A threshold chosen on the generated corpus's own validation pairs sits where generated negatives
score, far below where real unrelated uploads and templates score (the corpus's negatives are easy).
So the set of rci.training.realset's VALIDATION pools (GCompris's vocabulary pictures, ASC's music,
Dutch, Polish and Swedish speech: disjoint from every training pool and from the benchmark's pools)
is rendered once per machine (under the cache dir, ~2 minutes) and encoded once per model dir with the
serving encoders. Its pairs are what the worker scores, under the service's default retrieval
settings (rci.core.settings):

* each later upload with its `retrieval_score_top` most similar earlier originals (frame-set Chamfer
  similarity, as the worker re-ranks) within `retrieval_credit_margin` of the best, labelled 1 for the
  original it reproduces; the query is flagged when any of them scores at the threshold, as the worker
  flags it (rci.streams.pipeline.credited), so the threshold is chosen on those query-level scores;
* and, for the calibration's fit, so both hard cases are there whatever retrieval ranks first, each
  copy with its true source (1) and each template with the original whose sound, title and sticker it
  borrows (0).

The TRAINING pool's sets (`realmedia_training`: other pictures, music and voices again, several seeds)
give MatchLite real uploads to learn from beside the generated corpus, paired the same way: a head that
learns from generated media only calls real re-crops, duets and zooms unrelated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from rci.core.settings import Settings
from rci.features.cache import FeatureCache
from rci.features.pipeline import FeaturePipeline, extract_features
from rci.inference.encoders.extract import FeatureExtractor
from rci.inference.features import VideoFeatures
from rci.media.policy import MediaPolicy
from rci.retrieval.similarity import frame_set_similarity
from rci.storage.objects import LocalObjectStore
from rci.streams.contracts import PublishedEvent
from rci.training.data import PairDataset, PairExample, load_features, raise_if_rejected
from rci.training.realset.modalities import AUDIO_SUBSET, TEXT_SUBSET, ModalityPair, build_modality_set
from rci.training.realset.pools import TRAINING, VALIDATION, PoolSpec
from rci.training.realset.sets import SET_VERSION, SIZES, HeldoutSet, Video, build_set

ID_PREFIX = "realval-"  # the set's ids are short ("q012"): prefixed, they cannot meet a corpus video's
SET_SIZE = "validation"
FEATURES_DIR = "realval-features"
SUBSET = "realmedia_validation"
TRAINING_SUBSET = "realmedia_training"
TRAINING_SEEDS = (0, 1, 2)  # sets of the training pool: one photo is in several seeds' originals, never in another pool
TRAINING_SIZE = "training"
# what a trained model's threshold depends on: a new pairing rule or set changes it (the serving stamp)
VALIDATION_STAMP = {"pools": VALIDATION.name, "size": SET_SIZE, "set": asdict(SIZES[SET_SIZE]),
                    "set_version": SET_VERSION, "pairs": 2}
TRAINING_STAMP = {"pools": TRAINING.name, "size": TRAINING_SIZE, "set": asdict(SIZES[TRAINING_SIZE]),
                  "seeds": list(TRAINING_SEEDS), "set_version": SET_VERSION, "pairs": 2}
SCORE_TOP = Settings.model_fields["retrieval_score_top"].default  # the worker's defaults
CREDIT_MARGIN = Settings.model_fields["retrieval_credit_margin"].default


@dataclass(frozen=True)
class ServedQuery:
    """One later upload as the worker sees it: the pairs (indices into the examples) it is scored on."""

    video_id: str
    label: int  # 1 = a reproduction
    pairs: tuple[int, ...]
    kind: str = ""  # the set's kind of query: easy, hard (copies), unrelated, template


@dataclass(frozen=True)
class RealValidation:
    examples: list[PairExample]
    features: dict[str, VideoFeatures]
    queries: list[ServedQuery]
    info: dict  # what the set is made of, for the model's meta

    @property
    def positives(self) -> int:
        return sum(e.label for e in self.examples)

    def query_scores(self, pair_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """([Q] each query's best pair score, the one the worker flags it on; [Q] its label)."""
        scores = np.array([max(pair_scores[i] for i in q.pairs) for q in self.queries], np.float64)
        return scores, np.array([q.label for q in self.queries], np.int64)


def realmedia_validation(model_dir: Path, extractor: FeatureExtractor, policy: MediaPolicy, *, seed: int = 0,
                         jobs: int = 2, progress: bool = True) -> RealValidation:
    """The validation pool's set (rendered once under the cache dir), encoded by `extractor` (once per
    model dir), and its pairs."""
    return realmedia_pairs(model_dir, extractor, policy, VALIDATION, SET_SIZE, seed=seed, id_prefix=ID_PREFIX,
                           jobs=jobs, progress=progress)


def realmedia_training(model_dir: Path, extractor: FeatureExtractor, policy: MediaPolicy, *, jobs: int = 2,
                       progress: bool = True) -> tuple[list[PairExample], dict[str, VideoFeatures], list[dict]]:
    """The training pool's sets (TRAINING_SEEDS), encoded by `extractor`, as training pairs: the pairs the worker
    would score, so the head learns the real uploads it will see (copies, templates, unrelated look-alikes)."""
    examples: list[PairExample] = []
    features: dict[str, VideoFeatures] = {}
    infos = []
    for seed in TRAINING_SEEDS:
        real = realmedia_pairs(model_dir, extractor, policy, TRAINING, TRAINING_SIZE, seed=seed,
                               id_prefix=f"realtrain{seed}-", jobs=jobs, progress=progress,
                               subset=TRAINING_SUBSET, split="train")  # fmt: skip
        examples += real.examples
        features.update(real.features)
        infos.append(real.info)
    return examples, features, infos


def realmedia_pairs(model_dir: Path, extractor: FeatureExtractor, policy: MediaPolicy, pools: PoolSpec, size: str,
                    *, seed: int, id_prefix: str, jobs: int = 2, progress: bool = True, subset: str = SUBSET,
                    split: str = "val") -> RealValidation:
    """A set of real media from `pools` (rendered once under the cache dir), encoded by `extractor` (once per
    model dir, under `id_prefix` + the set's ids), and its pairs as served (pairs_as_served)."""
    with Progress(disable=not progress) as bar:
        dataset = build_set(None, size, seed=seed, jobs=jobs, progress=bar, pools=pools)
        features = encoded_set(model_dir, extractor, policy, dataset, dataset.videos, id_prefix=id_prefix,
                               what=f"{pools.name} set {size}/{seed}", bar=bar)  # fmt: skip
    info = {"pools": pools.name, "size": size, "seed": seed, "counts": dataset.counts(),
            "photo_pool": dataset.info.get("photo_pool")}  # fmt: skip
    examples, queries = pairs_as_served(dataset, features, id_prefix=id_prefix, subset=subset, split=split)
    return RealValidation(examples, features, queries, info)


def encoded_set(model_dir: Path, extractor: FeatureExtractor, policy: MediaPolicy, dataset: HeldoutSet,
                videos: list[Video], *, id_prefix: str, what: str, bar: Progress) -> dict[str, VideoFeatures]:
    """`videos` of `dataset` encoded by `extractor` once per model dir and plan, keyed `id_prefix` + their ids;
    DataError if the media stack refused any."""
    events = [_event(v, id_prefix) for v in videos]
    # per plan: a re-planned set re-renders its videos under the same names and paths
    cache = FeatureCache(LocalObjectStore(Path(model_dir) / FEATURES_DIR / dataset.info["plan_digest"]))
    pipeline = FeaturePipeline(extractor, cache, policy.admitting([dataset.root.absolute().as_uri() + "/"]))
    task = bar.add_task(f"encode {what} ({extractor.version})", total=len(events))
    summary = extract_features(pipeline, events, on_progress=lambda s: bar.update(task, completed=s.done))
    raise_if_rejected(summary, what)
    return load_features(cache, [e.video_id for e in events], extractor.version)


def _event(video: Video, id_prefix: str) -> PublishedEvent:
    return PublishedEvent(schema_version=1, video_id=id_prefix + video.video_id, media_uri=Path(video.path).as_uri(),
                          title=video.title, sticker_text=video.sticker, published_at=video.published_at)  # fmt: skip


def pairs_as_served(dataset: HeldoutSet, features: dict[str, VideoFeatures], *, score_top: int = SCORE_TOP,
                    margin: float = CREDIT_MARGIN, id_prefix: str = ID_PREFIX, subset: str = SUBSET,
                    split: str = "val") -> tuple[list[PairExample], list[ServedQuery]]:
    """The pairs the worker would score (each query with its best few earlier originals about as similar
    as the best), plus each copy with its source and each template with the original it borrows from
    (no pair twice); and each query with the pairs it is flagged on."""
    index: dict[tuple[str, str], int] = {}
    labels: list[int] = []
    queries: list[ServedQuery] = []

    def pair(query: str, candidate: str, label: int) -> int:
        if (query, candidate) not in index:
            index[(query, candidate)] = len(labels)
            labels.append(label)
        return index[(query, candidate)]

    for query in dataset.queries():
        q = features[id_prefix + query.video_id]
        similar = sorted(((frame_set_similarity(q, features[id_prefix + c.video_id]), c.video_id)
                          for c in dataset.earlier_originals(query)), reverse=True)[:score_top]  # fmt: skip
        alike = [vid for sim, vid in similar if sim >= similar[0][0] - margin]
        served = tuple(pair(query.video_id, vid, int(query.is_reproduction and vid == query.source_id)) for vid in alike)
        queries.append(ServedQuery(id_prefix + query.video_id, int(query.is_reproduction), served, query.kind))
        if query.source_id is not None:  # a copy's source (1); a template's borrowed original (0)
            pair(query.video_id, query.source_id, int(query.is_reproduction))
    examples = [PairExample(id_prefix + q, id_prefix + c, labels[i], subset, split,
                            {"visual": labels[i], "audio": None, "text": None}) for (q, c), i in index.items()]  # fmt: skip
    return examples, queries


def modality_pairs(model_dir: Path, extractor: FeatureExtractor, policy: MediaPolicy, pools: PoolSpec, *,
                   sources: int, seed: int, id_prefix: str, split: str, jobs: int = 2,
                   progress: bool = True) -> tuple[PairDataset, np.ndarray, dict]:  # fmt: skip
    """The modality set of `pools` (rci.training.realset.modalities: pairs that only the sound or only the
    text decides; rendered once under the pool's cache dir), encoded by `extractor` once per model dir: its
    pairs with their features, each pair's subset, and what the set is made of."""
    with Progress(disable=not progress) as bar:
        dataset, pairs = build_modality_set(None, sources, seed, jobs=jobs, progress=bar, pools=pools)
        needed = {p.query_id for p in pairs} | {p.candidate_id for p in pairs}
        features = encoded_set(model_dir, extractor, policy, dataset, [v for v in dataset.videos if v.video_id in needed],
                               id_prefix=id_prefix, what=f"{pools.name} modality set {sources}/{seed}", bar=bar)  # fmt: skip
    examples = [_modality_example(p, id_prefix, split) for p in pairs]
    return PairDataset(examples, features), np.array([p.subset for p in pairs]), dataset.info


def training_modality_pairs(model_dir: Path, extractor: FeatureExtractor, policy: MediaPolicy, *, sources: int,
                            seed: int, progress: bool = True) -> PairDataset:  # fmt: skip
    """The TRAINING pool's modality set of `seed` as training pairs (none for 0 sources)."""
    if not sources:
        return PairDataset([], {})
    pairs, _, _ = modality_pairs(model_dir, extractor, policy, TRAINING, sources=sources, seed=seed,
                                 id_prefix=f"trainmodal{seed}-", split="train", progress=progress)  # fmt: skip
    return pairs


def _modality_example(pair: ModalityPair, id_prefix: str, split: str) -> PairExample:
    """The pair's label; its auxiliary labels: the picture is shared, the deciding modality is the label."""
    aux = {"visual": 1, "audio": pair.label if pair.subset == AUDIO_SUBSET else None,
           "text": pair.label if pair.subset == TEXT_SUBSET else None}  # fmt: skip
    return PairExample(id_prefix + pair.query_id, id_prefix + pair.candidate_id, pair.label, pair.subset, split, aux)
