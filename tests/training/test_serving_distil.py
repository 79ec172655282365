"""Stage 2 for the served student (rci.training.serving_distil, `rci distil-serving`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rci.core.settings import Settings
from rci.inference.checkpoint import load_checkpoint
from rci.inference.matchlmf.config import MatchLMFConfig
from rci.inference.model_dir import matchlite_checkpoint, matchlite_onnx
from rci.media.policy import media_policy
from rci.training.corpus.manifest import CorpusManifest
from rci.training.data import DataError
from rci.training.loop import TrainConfig
from rci.training.matchlmf import install_feature_teacher
from rci.training.serving import STAMP, ServingRecipe, serving_extractor
from rci.training.serving_distil import install_distilled_student


def test_a_model_dir_without_a_student_or_a_teacher_names_the_command_that_makes_it(tmp_path: Path):
    with pytest.raises(DataError, match="rci demo"):
        install_distilled_student(tmp_path, media_policy(Settings()), progress=False)


@pytest.mark.slow
def test_the_distilled_student_replaces_the_served_one_and_names_its_teacher(trained_model_dir: Path, tmp_path: Path):
    """A tiny teacher (one epoch, a 2-source modality set) on a copy of the demo's models, then stage 2 from the
    served student (one epoch, 8 unlabelled pairs): the new student is installed in place, checkpoint, ONNX
    and stamp, and names the student and teacher it came from."""
    model_dir = tmp_path / "models"
    shutil.copytree(trained_model_dir, model_dir)
    policy, recipe = media_policy(Settings()), ServingRecipe()
    before = load_checkpoint(matchlite_checkpoint(model_dir))[1]
    onnx_before = matchlite_onnx(model_dir).read_bytes()
    extractor = serving_extractor(model_dir, recipe)
    _, teacher_meta = install_feature_teacher(
        model_dir, CorpusManifest.load(model_dir / "training-corpus"), extractor, policy, MatchLMFConfig.tiny(),
        TrainConfig.matchlm(epochs=1, batch_size=16, lr=3e-4, seed=0), recipe, modality_sources=2, progress=False)
    assert teacher_meta["modality_pairs"] == {"sources": 2, "seed": 0, "pairs": 8}
    assert teacher_meta["train_pairs"] == teacher_meta["student_pairs"] + 8

    meta = install_distilled_student(model_dir, policy, recipe, epochs=1, unlabelled_sources=2, progress=False)
    assert meta["stage"] == "stage2" and meta["unlabelled_pairs"] == 8
    assert meta["distilled_from"] == before["model_version"] != meta["model_version"]
    assert meta["teacher_model_version"] == teacher_meta["model_version"]
    assert 0.0 < meta["threshold"] < 1.0
    assert load_checkpoint(matchlite_checkpoint(model_dir))[1]["model_version"] == meta["model_version"]
    assert matchlite_onnx(model_dir).read_bytes() != onnx_before
    # `rci demo` compares the stamp without its meta, so it keeps this student; the meta is the new one
    assert json.loads((model_dir / STAMP).read_text())["meta"]["model_version"] == meta["model_version"]
