"""Stage 2 for the served MatchLite: distil the installed feature teacher (rci.training.matchlmf) into the
student a model dir serves, on the student's own labelled pairs plus unlabelled pairs the teacher scores.

    meta = install_distilled_student(model_dir, policy)     # `rci distil-serving`: replaces the served student

The teacher knows what the student was never taught (install_feature_teacher: the real-media modality
pairs, where only the voice-over's words or the caption decide); unlabelled pairs of that kind (another
seed of the training pool's modality set, labels dropped: rci.training.data.unlabelled) are where only the
teacher can teach, as a platform's own traffic would be. The student restarts from its served weights
(lambda 1.5, the paper's L_emb + L_logits + L_class, a tenth of the recipe's learning rate), is recalibrated
and gets its threshold as the stage-1 recipe does, and is installed in place, its teacher named in its meta.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from rci.inference.checkpoint import load_checkpoint
from rci.inference.encoders.extract import FeatureExtractor
from rci.inference.matchlite import MatchLite
from rci.inference.matchlmf.loader import load_matchlmf
from rci.inference.matchlmf.model import MatchLMF
from rci.inference.model_dir import matchlite_checkpoint, matchlmf_checkpoint
from rci.media.policy import MediaPolicy
from rci.training.corpus.manifest import CorpusManifest
from rci.training.data import DataError, PairDataset, TeacherTargets, join_pairs, unlabelled
from rci.training.distill import distill_info, distill_matchlite
from rci.training.loop import TrainConfig
from rci.training.losses import DistillConfig
from rci.training.matchlmf import predict_matchlmf
from rci.training.realpairs import training_modality_pairs
from rci.training.calibration import VoteChoice
from rci.training.serving import (STAMP, CalibrationSets, ServingRecipe, calibrate_for_serving, calibration_sets,
                                  install_served_student, serving_extractor, serving_training_pairs,
                                  validation_pairs)  # fmt: skip

UNLABELLED_SEED = 1  # a seed of the training pool's modality set the teacher never learned from
UNLABELLED_SOURCES = 100  # sources per subset: 400 unlabelled pairs
DISTIL_EPOCHS = 10


def with_unlabelled(train: PairDataset, model_dir: Path, extractor: FeatureExtractor, policy: MediaPolicy, *,
                    sources: int = UNLABELLED_SOURCES, progress: bool = True) -> PairDataset:  # fmt: skip
    """`train`, then the training pool's modality set of UNLABELLED_SEED without its labels."""
    pool = training_modality_pairs(model_dir, extractor, policy, sources=sources, seed=UNLABELLED_SEED, progress=progress)
    return join_pairs(train, PairDataset([unlabelled(e) for e in pool.examples], pool.features))


def distil_served(student: MatchLite, teacher: MatchLMF, train: PairDataset, sets: CalibrationSets,
                  recipe: ServingRecipe, *, epochs: int = DISTIL_EPOCHS, lam: float = 1.5,
                  progress: bool = True) -> tuple[MatchLite, VoteChoice]:  # fmt: skip
    """A copy of the served `student` trained on `train` (labelled and unlabelled pairs) against the frozen
    `teacher`'s logits and pair embeddings, recalibrated as served (and the vote chosen). lam = 0 is the
    control: the same schedule and pairs with L_class only, which unlabelled pairs do not enter."""
    targets = predict_matchlmf(teacher, train)
    with_teacher = train.with_teacher(TeacherTargets(torch.from_numpy(targets.logits), torch.from_numpy(targets.embeddings)))
    config = TrainConfig.matchlite(epochs=epochs, batch_size=recipe.batch_size, lr=recipe.lr / 10, warmup_steps=10,
                                   seed=recipe.seed)  # fmt: skip
    model, _ = distill_matchlite(student, with_teacher, config, DistillConfig(lam=lam), name=f"stage 2 (lambda {lam})",
                                 progress=progress)  # fmt: skip
    return calibrate_for_serving(model, sets, recipe)


def install_distilled_student(model_dir: Path, policy: MediaPolicy, recipe: ServingRecipe = ServingRecipe(), *,
                              epochs: int = DISTIL_EPOCHS, lam: float = 1.5, unlabelled_sources: int = UNLABELLED_SOURCES,
                              progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Replace the student `model_dir` serves (stage 1, from `rci demo`) by its distillation from the teacher
    installed there (`rci teacher`); returns the new student's meta. DataError when either is missing."""
    for path, how in ((matchlite_checkpoint(model_dir), "rci demo"), (matchlmf_checkpoint(model_dir), "rci teacher")):
        if not path.exists():
            raise DataError(f"{path} is missing: run `{how}` for this model dir first")
    student, student_meta = load_checkpoint(matchlite_checkpoint(model_dir))
    teacher, teacher_meta = load_matchlmf(matchlmf_checkpoint(model_dir))
    extractor = serving_extractor(model_dir, recipe)
    if teacher_meta.get("encoder_version") != extractor.version:
        raise DataError(f"the teacher was trained on {teacher_meta.get('encoder_version')} features, the model dir "
                        f"encodes {extractor.version}: run `rci teacher` again")  # fmt: skip
    manifest = CorpusManifest.load(model_dir / "training-corpus")
    examples, features, _ = serving_training_pairs(model_dir, manifest, extractor, policy, recipe, progress=progress)
    train = with_unlabelled(PairDataset(examples, features), model_dir, extractor, policy, sources=unlabelled_sources,
                            progress=progress)  # fmt: skip
    sets = calibration_sets(model_dir, extractor, policy, recipe, progress=progress)
    model, vote = distil_served(student.eval(), teacher, train, sets, recipe, epochs=epochs, lam=lam, progress=progress)
    meta = install_served_student(model_dir, model, vote, sets, recipe, extractor.version,
                                  validation_pairs(manifest, features, recipe), {
                                      "stage": "stage2", "train_pairs": len(examples),
                                      "unlabelled_pairs": len(train) - len(examples),
                                      "distilled_from": student_meta.get("model_version"),
                                      "distill_epochs": epochs,
                                      **distill_info(DistillConfig(lam=lam), teacher_meta["model_version"])})  # fmt: skip
    stamp_path = model_dir / STAMP
    if stamp_path.exists():  # `rci demo` keeps this student: its stamp still matches, its meta is the new one
        stamp = json.loads(stamp_path.read_text())
        stamp_path.write_text(json.dumps({**stamp, "meta": meta}, indent=2, default=str) + "\n")
    return meta
