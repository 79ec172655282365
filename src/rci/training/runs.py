"""What `rci train`, `rci distill` and `rci eval` do: corpus + model dir in, checkpoints and figures out.

The commands (src/rci/cli/commands/training.py) only parse options; everything they run is here, so the
end-to-end report (src/rci/training/pipeline.py) calls the same functions in one process.

    data = load_corpus_features(corpus_dir, model_dir, policy)           # encode what is missing, load
    train_matchlite_run(data, "V+A", TrainConfig.matchlite(), out)       # stage 1 student -> checkpoint
    train_matchlm_run(manifest, teacher_dir, TrainConfig.matchlm(), policy)   # stage 1 teacher -> dir
    distill_run(data, student_ckpt, teacher_dir, DistillConfig(), TrainConfig.matchlite(), out, policy)
    evaluate_matchlite_run(ckpt, data)  /  evaluate_matchlm_run(teacher_dir, manifest, policy)

Features live in `<model_dir>/training-features` (rci.training.data.training_feature_cache), keyed by
the encoder bundle's version, so the report, `rci train` and the demo's recipe share them.

Every function takes a `DistContext`: under `torchrun` all ranks train, rank 0 alone writes files.
Checkpoints carry their configuration: a MatchLite `.pt` holds its `MatchLiteConfig` and a meta
with the stage, variant, encoder version, `TrainConfig`, loss history (and for stage 2 the
`DistillConfig` and the teacher's `model_version`); a MatchLM directory holds its `MatchLMConfig`
and the same meta in `matchlm/matchlm.json`. Evaluation adds the threshold at 80% precision on
validation to that meta: the worker serves it as `threshold` on `rci.scores`.

The CPU teacher. There is no pretrained multimodal LM offline, so the teacher is the tiny MatchLM
(`rci.inference.matchlm.tiny`) whose backbone is randomly initialised. The paper trains LoRA adapters
on a pretrained backbone; on random weights that leaves the teacher a frozen random feature
extractor, so `backbone="full"` (the report's default) also trains the backbone itself (SigLIP,
projector, LM; Whisper stays frozen) and writes the trained base weights into the teacher
directory, next to the adapters, so `load_matchlm` serves exactly the trained model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rci.inference.checkpoint import load_checkpoint
from rci.inference.encoders.bundle import EncoderBundle
from rci.inference.encoders.extract import FeatureExtractor
from rci.inference.features import FeatureSpec, VideoFeatures
from rci.inference.matchlite import MatchLite, MatchLiteConfig
from rci.inference.matchlm.config import MatchLMConfig
from rci.inference.matchlm.loader import init_matchlm, load_frozen_matchlm, load_matchlm_model, save_matchlm
from rci.inference.matchlm.model import MatchLM
from rci.inference.matchlm.processor import MatchLMProcessor
from rci.inference.matchlm.saving import holds_matchlm, is_lora_weight, update_matchlm_meta, write_backbone
from rci.inference.matchlm.tiny import build_tiny_matchlm
from rci.media.policy import MediaPolicy
from rci.core.errors import RCIError
from rci.core.logs import get_logger
from rci.training.corpus.manifest import CorpusManifest
from rci.training.data import (
    DataError,
    PairDataset,
    PairExample,
    TeacherCollate,
    TeacherPairDataset,
    TeacherTargets,
    TeacherVideo,
    encode_corpus,
    load_features,
    read_examples,
    teacher_videos,
    training_feature_cache,
    video_ids_of,
)
from rci.training.ddp import DistContext, barrier
from rci.training.distill import distill_info, distill_matchlite, teacher_targets
from rci.training.evaluate import (
    TARGET_PRECISION,
    ModelEvaluation,
    Predictions,
    evaluate_model,
    matchlite_forward,
    matchlm_forward,
    predict,
    write_threshold,
)
from rci.training.loop import TrainConfig
from rci.training.losses import DistillConfig
from rci.training.stage1 import RunInfo, save_matchlite_run, train_matchlite, train_matchlm, variant_config, whisper_states

log = get_logger(__name__)

EVAL_SPLITS = ("val", "test")
Backbone = Literal["lora", "full"]


class RunError(RCIError):
    """A training command cannot run with what it was given (missing corpus, model, features)."""


# --- corpus + features --------------------------------------------------------------------------


@dataclass
class CorpusFeatures:
    """A corpus with the cached features of every video its pairs use."""

    manifest: CorpusManifest
    encoder_version: str
    spec: FeatureSpec
    features: dict[str, VideoFeatures]
    examples: dict[str, list[PairExample]] = field(default_factory=dict)  # split -> pairs

    def dataset(self, split: str) -> PairDataset:
        if split not in self.examples:
            raise DataError(f"split {split!r} was not loaded (have {sorted(self.examples)})")
        return PairDataset(self.examples[split], self.features)


def load_manifest(corpus_dir: Path) -> CorpusManifest:
    if not (Path(corpus_dir) / "corpus.json").exists():
        raise RunError(f"{corpus_dir} is not a corpus (no corpus.json); make one with `rci corpus make`")
    return CorpusManifest.load(Path(corpus_dir))


def load_corpus_features(
    corpus_dir: Path,
    model_dir: Path,
    policy: MediaPolicy,
    *,
    splits: Sequence[str] = ("train", "val", "test"),
    ctx: DistContext | None = None,
    progress: bool = True,
) -> CorpusFeatures:
    """Encode the corpus videos missing from the feature cache (rank 0), then load the splits' features.

    The encoders are the frozen ones under `<model_dir>/encoders` (`rci encoders build` and
    `rci encoders train-visual` make them; the report pipeline does it itself).
    """
    ctx = ctx or DistContext()
    manifest = load_manifest(corpus_dir)
    try:
        bundle = EncoderBundle.load(model_dir, device="cpu")
    except RCIError as exc:
        raise RunError(str(exc)) from exc
    extractor = FeatureExtractor(bundle)
    cache = training_feature_cache(model_dir)
    if ctx.is_main:
        encode_corpus(manifest, extractor, cache, policy, progress=progress)
    barrier(ctx)
    examples = {split: read_examples(manifest, split) for split in splits}
    ids = video_ids_of([ex for split in splits for ex in examples[split]])
    return CorpusFeatures(
        manifest=manifest,
        encoder_version=extractor.version,
        spec=extractor.feature_spec(policy.max_frames),
        features=load_features(cache, ids, extractor.version),
        examples=examples,
    )


def corpus_info(manifest: CorpusManifest) -> dict[str, Any]:
    """What a checkpoint records about the corpus it was trained on."""
    config = manifest.info.get("config", {})
    return {"path": str(manifest.root), "n_sources": config.get("n_sources"), "seed": config.get("seed")}


# --- stage 1: MatchLite ---------------------------------------------------------------------------


def matchlite_config(spec: FeatureSpec, variant: str, size: Literal["small", "paper"] = "small") -> MatchLiteConfig:
    """The variant's MatchLite for features of `spec` (small: CPU-sized; paper: appendix A.1)."""
    factory = MatchLiteConfig.small if size == "small" else MatchLiteConfig.paper
    base = factory(**spec.widths(), max_frames=spec.max_frames, text_tokens=spec.text_tokens)
    return variant_config(base, variant)


def train_matchlite_run(
    data: CorpusFeatures,
    variant: str,
    train_config: TrainConfig,
    out: Path,
    *,
    ctx: DistContext | None = None,
    size: Literal["small", "paper"] = "small",
    extra: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any] | None:
    """Stage 1 MatchLite on the train split -> checkpoint at `out` (rank 0); returns its meta there."""
    ctx = ctx or DistContext()
    config = matchlite_config(data.spec, variant, size)
    model, result = train_matchlite(config, data.dataset("train"), train_config, ctx,
                                    name=f"stage 1 MatchLite {variant}", progress=progress)
    barrier(ctx)
    if not ctx.is_main:
        return None
    info = RunInfo("stage1", variant, data.encoder_version, train_config.to_dict(), result.to_dict(),
                   {"corpus": corpus_info(data.manifest), "size": size, **(extra or {})})
    return save_matchlite_run(out, model, info)


# --- stage 1: the teacher -------------------------------------------------------------------------


def teacher_inputs(
    manifest: CorpusManifest,
    examples: Sequence[PairExample],
    model: MatchLM,
    policy: MediaPolicy,
    *,
    progress: bool = True,
) -> dict[str, TeacherVideo]:
    """The teacher's inputs (frames at its image size, its own Whisper states) for the examples' videos."""
    image_size = model.llava.config.vision_config.image_size
    return teacher_videos(manifest, video_ids_of(examples), policy, image_size, whisper_states(model), progress=progress)


def trainable_digest(model: torch.nn.Module) -> str:
    """Short hash of every trained weight of a MatchLM (adapters, heads and, when trained, the backbone)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith("audio_encoder."):
            continue  # frozen Whisper
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def unfreeze_backbone(model: MatchLM) -> int:
    """Make the backbone's own weights trainable (LoRA adapters already are); returns how many tensors."""
    count = 0
    for name, param in model.llava.named_parameters():
        if not is_lora_weight(name) and not param.requires_grad:
            param.requires_grad_(True)
            count += 1
    return count


def new_teacher_dir(teacher_dir: Path, config: MatchLMConfig | None = None, seed: int = 0) -> Path:
    """A fresh tiny MatchLM directory (random backbone, new adapters and heads) to train."""
    return build_tiny_matchlm(teacher_dir, config or MatchLMConfig.tiny(), seed=seed)


def prepare_teacher_dir(teacher_dir: Path, config: MatchLMConfig | None = None, seed: int = 0) -> str:
    """Make `teacher_dir` a MatchLM directory to train; returns what it found: "matchlm", "base" or "new".

    A directory that already holds a MatchLM is kept (training continues from it); a
    LLaVA-OneVision base (e.g. llava-onevision-qwen2-0.5b-ov, with whisper/) gets fresh adapters
    and heads; anything else becomes a new tiny MatchLM.
    """
    teacher_dir = Path(teacher_dir)
    if holds_matchlm(teacher_dir):
        return "matchlm"
    if (teacher_dir / "config.json").exists():
        model, _ = init_matchlm(teacher_dir, config or MatchLMConfig(), seed=seed)
        save_matchlm(model, teacher_dir)
        return "base"
    new_teacher_dir(teacher_dir, config, seed)
    return "new"


def train_matchlm_run(
    manifest: CorpusManifest,
    teacher_dir: Path,
    train_config: TrainConfig,
    policy: MediaPolicy,
    *,
    ctx: DistContext | None = None,
    backbone: Backbone = "full",
    extra: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any] | None:
    """Stage 1 MatchLM: train the teacher in `teacher_dir` in place on the train split; returns its meta."""
    ctx = ctx or DistContext()
    model, processor, _ = load_matchlm_model(teacher_dir)
    if backbone == "full":
        unfreeze_backbone(model)
    examples = read_examples(manifest, "train")
    videos = teacher_inputs(manifest, examples, model, policy, progress=progress and ctx.is_main)
    if backbone == "full" and not train_config.find_unused_parameters:
        # the backbone has weights this objective never uses (lm_head, the vision tower's last norm)
        train_config = TrainConfig(**{**train_config.to_dict(), "find_unused_parameters": True})
    result = train_matchlm(model, processor, TeacherPairDataset(examples, videos), train_config, ctx,
                           name="stage 1 MatchLM", progress=progress)
    barrier(ctx)
    if not ctx.is_main:
        return None
    model = model.cpu()
    if backbone == "full":
        write_backbone(model, teacher_dir)
    meta = {
        "model_version": f"matchlm-stage1-{trainable_digest(model)}",
        "stage": "stage1",
        "variant": "V+A+T",
        "backbone_trained": backbone,
        "train_config": train_config.to_dict(),
        "history": result.to_dict(),
        "corpus": corpus_info(manifest),
        **(extra or {}),
    }
    return save_matchlm(model, teacher_dir, json.loads(json.dumps(meta)))


def load_teacher(teacher_dir: Path, device: torch.device | str = "cpu") -> tuple[MatchLM, MatchLMProcessor, dict[str, Any]]:
    """A trained teacher, frozen and in eval mode."""
    try:
        return load_frozen_matchlm(teacher_dir, device=device)
    except RCIError as exc:
        raise RunError(str(exc)) from exc


# --- stage 2 ----------------------------------------------------------------------------------------


def compute_teacher_targets(
    teacher_dir: Path,
    manifest: CorpusManifest,
    examples: Sequence[PairExample],
    policy: MediaPolicy,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[TeacherTargets, dict[str, Any]]:
    """The frozen teacher's logits and embeddings on `examples`, in order; and the teacher's meta."""
    model, processor, meta = load_teacher(teacher_dir, device)
    videos = teacher_inputs(manifest, examples, model, policy, progress=progress)
    targets = teacher_targets(model, processor, TeacherPairDataset(examples, videos), batch_size=batch_size, device=device)
    return targets, meta


def distill_run(
    data: CorpusFeatures,
    student_checkpoint: Path,
    teacher: Path | tuple[TeacherTargets, Mapping[str, Any]],
    distill_config: DistillConfig,
    train_config: TrainConfig,
    out: Path,
    policy: MediaPolicy,
    *,
    ctx: DistContext | None = None,
    extra: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any] | None:
    """Stage 2: the stage-1 student at `student_checkpoint` distilled from the teacher -> checkpoint at `out`.

    `teacher` is a MatchLM directory, or targets already computed on the train split with that
    teacher's meta (the report computes them once for the distilled model and its lambda=0 control).
    """
    ctx = ctx or DistContext()
    try:
        student, student_meta = load_checkpoint(student_checkpoint)
    except RCIError as exc:
        raise RunError(str(exc)) from exc
    if student_meta.get("encoder_version") not in (None, data.encoder_version):
        raise RunError(f"{student_checkpoint} was trained on features {student_meta['encoder_version']}, "
                       f"the corpus features are {data.encoder_version}")
    train = data.dataset("train")
    if isinstance(teacher, tuple):
        targets, teacher_meta = teacher
    else:
        targets, teacher_meta = compute_teacher_targets(teacher, data.manifest, train.examples, policy,
                                                        device=ctx.device, progress=progress and ctx.is_main)
    model, result = distill_matchlite(student, train.with_teacher(targets), train_config, distill_config, ctx,
                                      name=f"stage 2 distill (lambda {distill_config.lam:g})", progress=progress)
    barrier(ctx)
    if not ctx.is_main:
        return None
    variant = student_meta.get("variant") or "V+A+T"
    info = RunInfo("distill", variant, data.encoder_version, train_config.to_dict(), result.to_dict(), {
        **distill_info(distill_config, str(teacher_meta.get("model_version"))),
        "student_init": student_meta.get("model_version"),
        "corpus": corpus_info(data.manifest),
        **(extra or {}),
    })
    return save_matchlite_run(out, model, info)


# --- evaluation ------------------------------------------------------------------------------------


@dataclass
class EvaluatedModel:
    """A model's figures plus the raw scores behind them (the report plots those)."""

    evaluation: ModelEvaluation
    predictions: dict[str, Predictions]  # split -> scores in manifest order


def _evaluate(
    name: str,
    datasets: Mapping[str, Any],
    predictions: Mapping[str, Predictions],
    info: Mapping[str, Any],
    target_precision: float,
) -> ModelEvaluation:
    return evaluate_model(name, {s: (datasets[s], predictions[s]) for s in datasets}, info, target_precision)


def evaluate_matchlite_run(
    checkpoint: Path,
    data: CorpusFeatures,
    *,
    name: str | None = None,
    splits: Sequence[str] = EVAL_SPLITS,
    store_threshold: bool = True,
    target_precision: float = TARGET_PRECISION,
    batch_size: int = 32,
) -> EvaluatedModel:
    """Score val/test with a MatchLite checkpoint; store the val threshold in its meta unless told not to."""
    try:
        model, meta = load_checkpoint(checkpoint)
    except RCIError as exc:
        raise RunError(str(exc)) from exc
    datasets = {split: data.dataset(split) for split in splits}
    preds = {split: predict(matchlite_forward(model), ds, batch_size=batch_size) for split, ds in datasets.items()}
    name = name or f"MatchLite {meta.get('variant', '')}".strip()
    evaluation = _evaluate(name, datasets, preds, _model_info(meta, model), target_precision)
    if store_threshold:
        write_threshold(checkpoint, evaluation.operating_point, target_precision)
    return EvaluatedModel(evaluation, preds)


def evaluate_matchlm_run(
    teacher_dir: Path,
    manifest: CorpusManifest,
    policy: MediaPolicy,
    *,
    name: str = "MatchLM V+A+T",
    splits: Sequence[str] = EVAL_SPLITS,
    store_threshold: bool = True,
    target_precision: float = TARGET_PRECISION,
    batch_size: int = 8,
    progress: bool = True,
) -> EvaluatedModel:
    """Score val/test with the teacher; store the val threshold in its matchlm.json meta unless told not to."""
    model, processor, meta = load_teacher(teacher_dir)
    examples = {split: read_examples(manifest, split) for split in splits}
    videos = teacher_inputs(manifest, [ex for exs in examples.values() for ex in exs], model, policy, progress=progress)
    datasets = {split: TeacherPairDataset(exs, videos) for split, exs in examples.items()}
    preds = {split: predict(matchlm_forward(model), ds, TeacherCollate(processor), batch_size)
             for split, ds in datasets.items()}
    info = {**_model_info(meta, model), "parameters_trained": int(sum(p.numel() for p in model.parameters()) -
                                                                   _frozen_whisper(model))}
    evaluation = _evaluate(name, datasets, preds, info, target_precision)
    if store_threshold:
        point = evaluation.operating_point
        update_matchlm_meta(teacher_dir, {
            "threshold": float(point.threshold),
            "threshold_target_precision": float(target_precision),
            "threshold_val_precision": float(point.precision),
            "threshold_val_recall": float(point.recall),
            "threshold_reached": bool(point.reached),
        })
    return EvaluatedModel(evaluation, preds)


def _frozen_whisper(model: MatchLM) -> int:
    encoder = model.audio_encoder
    return 0 if encoder is None else int(sum(p.numel() for p in encoder.parameters()))


def _model_info(meta: Mapping[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    keep = ("model_version", "stage", "variant", "encoder_version", "distill_config", "teacher_model_version")
    info: dict[str, Any] = {k: meta[k] for k in keep if k in meta}
    if isinstance(model, MatchLite):
        from rci.inference.matchlite import count_parameters

        info["parameters"] = count_parameters(model)
    return info


def save_predictions(directory: Path, key: str, evaluated: EvaluatedModel) -> None:
    """`<directory>/<key>.<split>.npz` per split, plus `<key>.json` with the figures."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, preds in evaluated.predictions.items():
        preds.save(directory / f"{key}.{split}.npz")
    (directory / f"{key}.json").write_text(json.dumps(evaluated.evaluation.to_dict(), indent=2) + "\n")


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def _text_vector(f: VideoFeatures) -> np.ndarray:
    tokens = f.text[f.text_mask]
    return tokens.mean(axis=0) if len(tokens) else np.zeros(f.text.shape[1], np.float32)


def feature_cosines(data: CorpusFeatures, split: str) -> dict[str, np.ndarray]:
    """Per pair of a split, the raw cosine of the two videos' frozen features per modality.

    No training: what the features alone say (mean-frame visual embedding, pooled audio, mean
    text token). The report shows how well each ranks the pairs, to tell what a model failed to
    learn from what the features do not carry.
    """
    feats = data.features
    pairs = [(feats[ex.query_id], feats[ex.candidate_id]) for ex in data.examples[split]]
    return {
        "visual": np.array([_cosine(q.video_embedding(), c.video_embedding()) for q, c in pairs]),
        "audio": np.array([_cosine(q.audio, c.audio) if q.has_audio and c.has_audio else 0.0 for q, c in pairs]),
        "text": np.array([_cosine(_text_vector(q), _text_vector(c)) for q, c in pairs]),
    }


def split_labels(manifest: CorpusManifest, split: str) -> tuple[np.ndarray, list[str]]:
    """(labels, subsets) of a split's pairs, in manifest order (the order predictions are in)."""
    examples = read_examples(manifest, split)
    return np.array([ex.label for ex in examples], dtype=np.int64), [ex.subset for ex in examples]
