"""`rci train`, `rci distill`, `rci eval` and `rci report` on a tiny rendered corpus with tiny models.

One corpus (4 sources of 2.5-4 s) and one model dir (small encoders, the visual one untrained) are
made per module; the models train for a step or an epoch: these tests check the plumbing (files,
configs, thresholds, the report's tables and plots), not the quality.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
import torch
from typer.testing import CliRunner

from rci.inference.checkpoint import load_checkpoint
from rci.inference.encoders.bundle import build_default_encoders
from rci.inference.matchlm.loader import read_matchlm_config
from rci.cli.main import app
from rci.training.corpus.generate import make_corpus

TINY = {"n_sources": 4, "seed": 11, "min_duration_s": 2.5, "max_duration_s": 4.0}
runner = CliRunner()


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("RCI_DATA_DIR", str(tmp_path / "rci"))
    monkeypatch.setenv("RCI_DEVICE", "cpu")
    monkeypatch.setenv("RCI_LOG_FORMAT", "console")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train-cli") / "corpus"
    make_corpus(root, **TINY, workers=2, progress=False)  # type: ignore[arg-type]
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train-cli-models")
    build_default_encoders(root, "small", device="cpu")
    return root


def rci(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_train_distill_eval_export(corpus, model_dir, tmp_path):
    common = ["--corpus", corpus, "--model-dir", model_dir, "--no-progress"]
    student, teacher, distilled = tmp_path / "va.pt", tmp_path / "teacher", tmp_path / "kd.pt"

    rci("train", *common, "--variant", "V+A", "--epochs", "1", "--lr", "1e-3", "--out", student)
    model, meta = load_checkpoint(student)
    assert (model.config.use_audio, model.config.use_text) == (True, False)
    assert meta["stage"] == "stage1" and meta["variant"] == "V+A" and meta["encoder_version"].startswith("enc-")
    assert meta["train_config"]["lr"] == 1e-3 and meta["train_config"]["schedule"] == "cosine"
    assert len(meta["history"]["history"]) == 1

    rci("train", *common, "--model", "matchlm", "--backbone", "full", "--epochs", "1", "--batch-size", "4",
        "--out", teacher)
    config, tmeta = read_matchlm_config(teacher)
    assert tmeta["stage"] == "stage1" and tmeta["backbone_trained"] == "full"
    assert tmeta["train_config"]["schedule"] == "linear" and tmeta["train_config"]["lr"] == 2e-5  # the paper's

    out = rci("distill", *common, "--student", student, "--teacher", teacher, "--out", distilled,
              "--epochs", "1", "--temperature", "3")
    assert "model_version=matchlite-distill-va-" in out
    _, dmeta = load_checkpoint(distilled)
    assert dmeta["distill_config"]["lam"] == 1.5 and dmeta["distill_config"]["temperature"] == 3.0
    assert dmeta["teacher_model_version"] == tmeta["model_version"]
    assert dmeta["student_init"] == meta["model_version"]

    out = rci("eval", "--corpus", corpus, "--model-dir", model_dir, "--no-progress", "--checkpoint", distilled,
              "--out", tmp_path / "eval" / "kd.json")
    assert "R@P80" in out and "stored in the model's meta" in out
    _, dmeta = load_checkpoint(distilled)
    assert dmeta["threshold_target_precision"] == 0.8 and "threshold_val_recall" in dmeta
    figures = json.loads((tmp_path / "eval" / "kd.json").read_text())
    assert figures["operating_point"]["threshold"] == pytest.approx(dmeta["threshold"])
    assert (tmp_path / "eval" / "kd.test.npz").exists()

    rci("eval", "--corpus", corpus, "--no-progress", "--teacher", teacher)
    assert "threshold_val_precision" in read_matchlm_config(teacher)[1]

    rci("export", "--checkpoint", distilled, "--out", tmp_path / "kd.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "kd.onnx")).metadata_props}
    assert dmeta["model_version"] in json.dumps(props) and str(dmeta["threshold"])[:6] in json.dumps(props)


def test_commands_explain_themselves_and_refuse_bad_input(corpus, tmp_path):
    for command in ("train", "distill", "eval", "report", "teacher"):
        assert "Usage" in rci(command, "--help")
    bad = runner.invoke(app, ["train", "--corpus", str(corpus), "--variant", "A", "--out", str(tmp_path / "x.pt")])
    assert bad.exit_code != 0 and "V+A+T" in bad.output
    no_encoders = runner.invoke(app, ["train", "--corpus", str(corpus), "--model-dir", str(tmp_path / "empty"),
                                      "--out", str(tmp_path / "x.pt"), "--no-progress"])
    assert no_encoders.exit_code == 1 and "rci encoders build" in no_encoders.output
    no_corpus = runner.invoke(app, ["teacher", "--model-dir", str(tmp_path), "--no-progress"])
    assert no_corpus.exit_code == 1 and "rci demo" in no_corpus.output


def test_report_end_to_end(corpus, model_dir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(corpus, work / "corpus")  # the same parameters: the report reuses it
    shutil.copytree(model_dir / "encoders", work / "models" / "encoders")
    (work / "models" / "encoders" / "visual" / "sscd-trained").write_text("{}")  # skip SSCD
    args = ["report", "--work-dir", work, "--sources", TINY["n_sources"], "--seed", TINY["seed"],
            "--min-duration", TINY["min_duration_s"], "--max-duration", TINY["max_duration_s"], "--epochs", "1",
            "--teacher-epochs", "1", "--distill-epochs", "1", "--no-progress"]
    out = rci(*args)
    report = work / "report"
    text = (report / "report.md").read_text()
    assert "## Table 2 analogue" in text and "## Table 4 analogue" in text
    for name in ("MatchLite V", "MatchLite V+A", "MatchLite V+T", "MatchLite V+A+T", "MatchLM V+A+T (teacher)",
                 "MatchLite V+A+T w/ KD"):
        assert f"| {name} |" in text
    for png in ("pr_curves.png", "score_distributions.png"):
        assert (report / png).read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((report / "summary.json").read_text())
    assert set(summary["findings"]) == {"audio_improves_visual_only", "text_improves_visual_only",
                                        "distillation_improves_ap_and_r_at_p80", "teacher_at_least_as_good_as_student"}
    # the distilled student is what the model dir serves, with its version and val threshold
    served, meta = load_checkpoint(work / "models" / "matchlite" / "model.pt")
    assert meta["stage"] == "distill" and "threshold_val_precision" in meta
    assert (work / "models" / "matchlite" / "model.onnx").exists() and meta["model_version"] in out
    assert (work / "models" / "matchlm" / "matchlm" / "matchlm.json").exists()

    again = rci(*args)  # rerunnable: the 4 + 1 stage-1 models and the 2 stage-2 ones are reused
    assert again.count("reused") == 7, again
    assert load_checkpoint(work / "models" / "matchlite" / "model.pt")[1]["model_version"] == meta["model_version"]
