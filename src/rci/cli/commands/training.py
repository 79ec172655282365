"""`rci train`, `rci distill`, `rci eval`, `rci report`, `rci teacher` and `rci distil-serving`: option parsing only; the work is in training/.

`rci train` and `rci distill` run under torchrun as they are (DDP, gloo on CPU, NCCL on GPUs):

    torchrun --nproc-per-node 2 -m rci train --corpus .rci/training/corpus --variant V+A --out va.pt

Heavy imports (torch, transformers) happen inside the commands so `rci --help` stays quick.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from rci.cli.choices import Backbone, Device, ModelKind, ModelSize, Variant
from rci.cli.context import settings_from_env

console = Console(stderr=True)

CorpusOption = typer.Option(..., "--corpus", exists=True, file_okay=False,
                            help="Corpus directory made by `rci corpus make` (its train split trains, val/test evaluate).")
ModelDirOption = typer.Option(None, "--model-dir", file_okay=False,
                              help="Model dir holding the frozen encoders (encoders/) and the feature cache; "
                              "default RCI_MODEL_DIR.")
ProgressOption = typer.Option(True, "--progress/--no-progress", help="Show progress bars.")


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(str(exc), fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _check_checkpoint(path: Path) -> None:
    """Fail at once, before the slow feature loading, when `path` is no MatchLite checkpoint."""
    from rci.core.errors import ModelError
    from rci.inference.checkpoint import load_checkpoint

    try:
        load_checkpoint(path)
    except ModelError as exc:
        raise _fail(exc) from exc


def _written(out: Path, meta: dict[str, Any] | None) -> None:
    if meta is not None:  # None on the ranks other than 0 under torchrun
        typer.echo(f"wrote {out} (model_version={meta['model_version']})")


def _train_config(kind: str, epochs: int, lr: float | None, batch_size: int, warmup: int, seed: int, max_steps: int | None):
    from rci.training.loop import TrainConfig

    factory = TrainConfig.matchlite if kind == "matchlite" else TrainConfig.matchlm
    overrides: dict[str, Any] = {"epochs": epochs, "batch_size": batch_size, "warmup_steps": warmup, "seed": seed,
                                 "max_steps": max_steps}
    if lr is not None:
        overrides["lr"] = lr
    return factory(**overrides)


def train(
    corpus: Path = CorpusOption,
    out: Path = typer.Option(..., "--out", help="MatchLite: the checkpoint (.pt) to write. MatchLM: the model "
                             "directory to train in place (a fresh tiny MatchLM is created there when it holds none; "
                             "a LLaVA-OneVision base directory gets new adapters and heads)."),
    model: ModelKind = typer.Option(ModelKind.MATCHLITE, "--model", help="matchlite (the student) or matchlm (the teacher)."),
    variant: Variant = typer.Option(Variant.VAT, "--variant", help="MatchLite modalities (paper Table 2)."),
    size: ModelSize = typer.Option(ModelSize.SMALL, "--size", help="MatchLite size: small (CPU) or paper (appendix A.1)."),
    epochs: int = typer.Option(8, "--epochs", min=1, help="Epochs (paper: 8)."),
    lr: float | None = typer.Option(None, "--lr", min=0.0,
                                    help="Peak AdamW learning rate; default the paper's: 1e-4 (MatchLite, cosine), "
                                    "2e-5 (MatchLM, linear)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Pairs per step and process (paper: 16 for MatchLite)."),
    warmup: int = typer.Option(0, "--warmup", min=0, help="Linear warm-up steps."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps."),
    backbone: Backbone = typer.Option(Backbone.LORA, "--backbone",
                                 help="MatchLM: lora (adapters, audio fusion and heads train, as the paper) or full "
                                 "(also the backbone: for the tiny teacher whose backbone starts random)."),
    seed: int = typer.Option(0, "--seed", help="Initialisation and data order."),
    model_dir: Path | None = ModelDirOption,
    device: Device | None = typer.Option(None, "--device", help="Default RCI_DEVICE."),
    progress: bool = ProgressOption,
) -> None:
    """Stage 1: train MatchLite (a modality variant) or the teacher MatchLM with multi-task cross-entropy.

    The checkpoint carries its model config, the training config, the loss history and the encoder
    version. Works under torchrun (DDP); rank 0 writes.
    """
    settings = settings_from_env()
    from rci.media.policy import media_policy
    from rci.core.errors import RCIError
    from rci.training.ddp import barrier, distributed
    from rci.training.runs import load_corpus_features, load_manifest, prepare_teacher_dir, train_matchlite_run, train_matchlm_run

    policy = media_policy(settings)
    tc = _train_config(model.value, epochs, lr, batch_size, warmup, seed, max_steps)
    try:
        with distributed(os.environ, device.value if device else settings.device) as ctx:
            if model == ModelKind.MATCHLITE:
                data = load_corpus_features(corpus, model_dir or settings.resolved_model_dir, policy, ctx=ctx,
                                            splits=("train",), progress=progress)
                meta = train_matchlite_run(data, variant.value, tc, out, ctx=ctx, size=size.value, progress=progress)  # type: ignore[arg-type]
            else:
                manifest = load_manifest(corpus)
                if ctx.is_main:
                    prepare_teacher_dir(out, seed=seed)
                barrier(ctx)
                meta = train_matchlm_run(manifest, out, tc, policy, ctx=ctx, backbone=backbone.value,  # type: ignore[arg-type]
                                         progress=progress)
    except RCIError as exc:
        raise _fail(exc) from exc
    _written(out, meta)


def distill(
    corpus: Path = CorpusOption,
    student: Path = typer.Option(..., "--student", exists=True, dir_okay=False, help="Stage-1 MatchLite checkpoint to start from."),
    teacher: Path = typer.Option(..., "--teacher", exists=True, file_okay=False, help="Trained MatchLM directory (rci train --model matchlm)."),
    out: Path = typer.Option(..., "--out", help="Distilled checkpoint to write."),
    lam: float = typer.Option(1.5, "--lambda", min=0.0, help="lambda of L_total = lambda (L_emb + L_logits) + L_class (paper: 1.5; 0 = CE-only control)."),
    temperature: float = typer.Option(2.0, "--temperature", min=1e-3, help="Softmax temperature T of L_logits (KL, scaled by T^2)."),
    emb_weight: float = typer.Option(1.0, "--emb-weight", min=0.0, help="Weight of L_emb (1 - cos(z_s, P(z_t))) inside the lambda term."),
    logits_weight: float = typer.Option(1.0, "--logits-weight", min=0.0, help="Weight of L_logits inside the lambda term."),
    epochs: int = typer.Option(8, "--epochs", min=1, help="Epochs (paper: 8)."),
    lr: float | None = typer.Option(None, "--lr", min=0.0, help="Peak AdamW learning rate, cosine (default 1e-4)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Pairs per step and process."),
    warmup: int = typer.Option(0, "--warmup", min=0, help="Linear warm-up steps."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps."),
    seed: int = typer.Option(0, "--seed", help="Data order."),
    model_dir: Path | None = ModelDirOption,
    device: Device | None = typer.Option(None, "--device", help="Default RCI_DEVICE."),
    progress: bool = ProgressOption,
) -> None:
    """Stage 2: distil the frozen MatchLM into MatchLite (L_emb cosine via a learnable projection, L_logits KL).

    The teacher's logits and embeddings on the train pairs are computed once, then the student
    trains on L_total. Works under torchrun (DDP); rank 0 writes.
    """
    settings = settings_from_env()
    from rci.media.policy import media_policy
    from rci.core.errors import RCIError
    from rci.training.ddp import distributed
    from rci.training.losses import DistillConfig
    from rci.training.runs import distill_run, load_corpus_features

    policy = media_policy(settings)
    tc = _train_config("matchlite", epochs, lr, batch_size, warmup, seed, max_steps)
    dc = DistillConfig(lam=lam, emb_weight=emb_weight, logits_weight=logits_weight, temperature=temperature)
    _check_checkpoint(student)
    try:
        with distributed(os.environ, device.value if device else settings.device) as ctx:
            data = load_corpus_features(corpus, model_dir or settings.resolved_model_dir, policy, ctx=ctx,
                                        splits=("train",), progress=progress)
            meta = distill_run(data, student, teacher, dc, tc, out, policy, ctx=ctx, progress=progress)
    except RCIError as exc:
        raise _fail(exc) from exc
    _written(out, meta)


def evaluate(
    corpus: Path = CorpusOption,
    checkpoint: Path | None = typer.Option(None, "--checkpoint", exists=True, dir_okay=False, help="A MatchLite checkpoint to evaluate."),
    teacher: Path | None = typer.Option(None, "--teacher", exists=True, file_okay=False, help="A MatchLM directory to evaluate."),
    store_threshold: bool = typer.Option(True, "--store-threshold/--no-store-threshold",
                                         help="Write the threshold at 80% precision on val into the model's meta "
                                         "(the worker serves it as `threshold`)."),
    out: Path | None = typer.Option(None, "--out", help="Also write the figures (and predictions next to it) here (.json)."),
    model_dir: Path | None = ModelDirOption,
    progress: bool = ProgressOption,
) -> None:
    """Evaluate on val and test: AP, F1, R@P80, per subset; pick the threshold at 80% precision on val."""
    settings = settings_from_env()
    from rci.media.policy import media_policy
    from rci.core.errors import RCIError
    from rci.training.runs import evaluate_matchlite_run, evaluate_matchlm_run, load_corpus_features, load_manifest, save_predictions

    if (checkpoint is None) == (teacher is None):
        raise typer.BadParameter("give exactly one of --checkpoint and --teacher")
    if checkpoint is not None:
        _check_checkpoint(checkpoint)
    policy = media_policy(settings)
    try:
        if checkpoint is not None:
            data = load_corpus_features(corpus, model_dir or settings.resolved_model_dir, policy,
                                        splits=("val", "test"), progress=progress)
            evaluated = evaluate_matchlite_run(checkpoint, data, store_threshold=store_threshold)
        else:
            evaluated = evaluate_matchlm_run(teacher, load_manifest(corpus), policy,  # type: ignore[arg-type]
                                             store_threshold=store_threshold, progress=progress)
    except RCIError as exc:
        raise _fail(exc) from exc
    _print_evaluation(evaluated.evaluation)
    if out is not None:
        save_predictions(out.parent, out.name.removesuffix(".json"), evaluated)
    point = evaluated.evaluation.operating_point
    where = "stored in the model's meta" if store_threshold else "not stored (--no-store-threshold)"
    typer.echo(f"threshold {point.threshold:.4f} (val precision {point.precision:.3f}, recall {point.recall:.3f}) {where}")


def _print_evaluation(evaluation: Any) -> None:
    pct = lambda v: "–" if v is None or v != v else f"{100 * v:.2f}"  # noqa: E731
    table = Table(title=f"{evaluation.name}  ({evaluation.info.get('model_version', '')})")
    for col in ("split", "pairs", "reproduced", "AP", "F1", "R@P80", "P @ thr", "R @ thr"):
        table.add_column(col, justify="right")
    for split, fig in evaluation.splits.items():
        s = fig.summary
        table.add_row(split, str(s.pairs), str(s.positives), pct(s.ap), pct(s.f1), pct(s.recall_at_p80),
                      pct(fig.precision_at_threshold), pct(fig.recall_at_threshold))
    Console().print(table)
    subsets = Table(title="per subset at the val threshold")
    for col in ("split", "subset", "pairs", "reproduced", "AP", "flagged", "recall", "false positives"):
        subsets.add_column(col, justify="right")
    for split, fig in evaluation.splits.items():
        for name, sub in fig.subsets.items():
            subsets.add_row(split, name, str(sub.pairs), str(sub.positives), pct(sub.ap), pct(sub.flag_rate),
                            pct(sub.recall), pct(sub.false_positive_rate))
    Console().print(subsets)


def report(
    work_dir: Path = typer.Option(Path(".rci/training"), "--work-dir", file_okay=False,
                                  help="Where the corpus, the model dir, checkpoints and evaluations go."),
    report_dir: Path | None = typer.Option(None, "--report-dir", file_okay=False, help="Where the report goes; default <work-dir>/report."),
    sources: int = typer.Option(96, "--sources", min=3, help="Corpus sources (about 4.4 videos and pairs each)."),
    seed: int = typer.Option(7, "--seed", help="Corpus, initialisation and data-order seed."),
    min_duration: float = typer.Option(4.0, "--min-duration", min=1.0, help="Shortest source clip, seconds."),
    max_duration: float = typer.Option(8.0, "--max-duration", min=1.0, help="Longest source clip, seconds."),
    visual_steps: int = typer.Option(150, "--visual-steps", min=1, help="SSCD steps of the visual encoder."),
    epochs: int = typer.Option(100, "--epochs", min=1, help="Stage-1 MatchLite epochs."),
    lr: float = typer.Option(2e-3, "--lr", min=0.0, help="Stage-1 MatchLite peak lr (AdamW, cosine)."),
    teacher_epochs: int = typer.Option(40, "--teacher-epochs", min=1, help="Stage-1 MatchLM epochs."),
    teacher_lr: float = typer.Option(2e-3, "--teacher-lr", min=0.0, help="MatchLM peak lr (AdamW, linear)."),
    teacher_backbone: Backbone = typer.Option(Backbone.FULL, "--teacher-backbone", help="full (train the tiny random backbone too) or lora."),
    distill_epochs: int = typer.Option(30, "--distill-epochs", min=1, help="Stage-2 epochs."),
    distill_lr: float = typer.Option(5e-4, "--distill-lr", min=0.0, help="Stage-2 peak lr (AdamW, cosine)."),
    lam: float = typer.Option(1.5, "--lambda", min=0.0, help="Distillation weight lambda."),
    temperature: float = typer.Option(2.0, "--temperature", min=1e-3, help="Distillation temperature T."),
    quick: bool = typer.Option(False, "--quick", help="A minutes-long smoke run: 12 sources, 4 s clips, few steps and epochs "
                               "(explicit size flags are ignored)."),
    export: bool = typer.Option(True, "--export/--no-export", help="Install the distilled MatchLite (ONNX) in <work-dir>/models."),
    fresh: bool = typer.Option(False, "--fresh", help="Retrain every model even when a matching one exists."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0 = torch's default)."),
    progress: bool = ProgressOption,
) -> None:
    """End to end: corpus, features, stage 1, stage 2, evaluation, the ablation report, ONNX export.

    Stage 1 trains the four MatchLite variants (V, V+A, V+T, V+A+T) and MatchLM; stage 2 distils
    MatchLM into MatchLite V+A+T (and trains its lambda = 0 control); the report holds the paper's
    Table 2 and Table 4 analogues, PR curves and score distributions per subset.

    Rerunnable: finished steps whose inputs did not change are reused. Defaults take roughly
    20-30 minutes on 2 CPU cores; --quick, --sources and the epoch flags make it smaller.
    """
    settings = settings_from_env()
    from rci.media.policy import media_policy
    from rci.training.pipeline import ReportOptions, run_report

    sizes: dict[str, Any] = dict(sources=sources, min_duration_s=min_duration, max_duration_s=max_duration, visual_steps=visual_steps, epochs=epochs,
                                 teacher_epochs=teacher_epochs, distill_epochs=distill_epochs)
    if quick:
        sizes = dict(sources=12, min_duration_s=2.5, max_duration_s=4.0, visual_steps=20, epochs=3, teacher_epochs=2,
                     distill_epochs=2)
    options = ReportOptions(work_dir=work_dir, report_dir=report_dir, seed=seed, lr=lr, teacher_lr=teacher_lr,
                            teacher_backbone=teacher_backbone.value, distill_lr=distill_lr, lam=lam,  # type: ignore[arg-type]
                            temperature=temperature, export=export, fresh=fresh, threads=threads, progress=progress,
                            **sizes)
    run = run_report(options, media_policy(settings), console)
    found = run.summary.findings
    lines = [f"report: {run.report_dir / 'report.md'}"]
    for key, value in found.items():
        lines.append(f"  {key}: {value.get('verdict')}")
    if run.served:
        lines.append(f"served model: {run.served['model_version']} (threshold {run.served['threshold']:.4f}) in {run.model_dir}")
    typer.echo("\n".join(lines))


TEACHER_SIZES = {"small": {"d_model": 128, "layers": 4, "heads": 4, "embedding_dim": 128}, "default": {}}


def teacher(
    model_dir: Path = ModelDirOption,
    size: str = typer.Option("default", "--size", help="default: d 256, 6 layers, 8 heads (5.2 M parameters); "
                             "small: d 128, 4 layers (1 M)."),
    epochs: int = typer.Option(8, "--epochs", min=1),
    lr: float = typer.Option(3e-4, "--lr", min=0.0),
    modality_sources: int = typer.Option(100, "--modality-sources", min=0,
                                         help="sources per subset of the real-media modality set only the teacher "
                                              "learns from (0: none)."),
    progress: bool = ProgressOption,
) -> None:
    """Train the feature-level teacher MatchLMF for a model dir that `rci demo` trained, and install it.

    It learns from the same pairs and stored features as the served MatchLite (the dir's training corpus,
    encoded there) and, its alone, from real-media pairs that only the voice-over's words or the caption
    decide (rendered once per machine); picks its threshold at 80% precision on the real-media validation
    pairs and goes to <model-dir>/matchlmf/model.pt, where `rci shadow` finds it and re-scores a sample
    with it (reading the features the worker stored, no second decode). About 30 minutes at the default
    size on 2 CPU cores the first time (rendering those pairs), 16 after.
    """
    if size not in TEACHER_SIZES:
        raise _fail(ValueError(f"--size must be one of {sorted(TEACHER_SIZES)}"))
    settings = settings_from_env()
    model_dir = model_dir or settings.resolved_model_dir
    corpus = model_dir / "training-corpus"
    if not (corpus / "corpus.json").exists():
        raise _fail(FileNotFoundError(f"{corpus} holds no corpus: run `rci demo` (or train serving models) first"))
    from rci.inference.matchlmf.config import MatchLMFConfig
    from rci.media.policy import media_policy
    from rci.training.corpus.manifest import CorpusManifest
    from rci.training.loop import TrainConfig
    from rci.training.matchlmf import install_feature_teacher
    from rci.training.serving import ServingRecipe, serving_extractor

    recipe = ServingRecipe()
    extractor = serving_extractor(model_dir, recipe)
    train_config = TrainConfig.matchlm(epochs=epochs, batch_size=16, lr=lr, warmup_steps=20, schedule="cosine",
                                       seed=recipe.seed)  # fmt: skip
    _, meta = install_feature_teacher(model_dir, CorpusManifest.load(corpus), extractor, media_policy(settings),
                                      MatchLMFConfig(**TEACHER_SIZES[size]), train_config, recipe,
                                      modality_sources=modality_sources, progress=progress)  # fmt: skip
    typer.echo(f"installed {meta['model_version']} in {model_dir / 'matchlmf'} (threshold {meta['threshold']:.3f}, "
               f"real validation AP {meta['val_average_precision']:.3f})")


def distil_serving(
    model_dir: Path = ModelDirOption,
    epochs: int = typer.Option(10, "--epochs", min=1, help="Stage-2 epochs from the served student."),
    lam: float = typer.Option(1.5, "--lambda", min=0.0, help="Weight of the distillation terms (the paper's 1.5)."),
    unlabelled_sources: int = typer.Option(100, "--unlabelled-sources", min=0,
                                           help="sources per subset of the unlabelled modality pairs the teacher "
                                                "scores (0: the student's own pairs only)."),
    progress: bool = ProgressOption,
) -> None:
    """Stage 2 for the served student: distil the teacher `rci teacher` installed into the MatchLite the model
    dir serves, and install the result in its place (checkpoint and ONNX, recalibrated, new threshold).

    It learns from its own labelled pairs plus unlabelled ones only the teacher scores (real-media pairs
    where the voice-over's words or the caption decide, labels dropped), which is where the teacher knows
    more. About 2 minutes on 2 CPU cores once the unlabelled set is rendered and encoded (~12 minutes, once).
    Restart the worker to serve it.
    """
    settings = settings_from_env()
    model_dir = model_dir or settings.resolved_model_dir
    from rci.core.errors import RCIError
    from rci.media.policy import media_policy
    from rci.training.serving_distil import install_distilled_student

    try:
        meta = install_distilled_student(model_dir, media_policy(settings), epochs=epochs, lam=lam,
                                         unlabelled_sources=unlabelled_sources, progress=progress)  # fmt: skip
    except RCIError as exc:
        raise _fail(exc) from exc
    typer.echo(f"installed {meta['model_version']} (distilled from {meta['distilled_from']} by "
               f"{meta['teacher_model_version']}) in {model_dir / 'matchlite'}: threshold {meta['threshold']:.3f}, "
               f"real validation AP {meta['val_average_precision']:.3f}")


def register(app: typer.Typer) -> None:
    """Attach the training commands to the root app (rci/cli/main.py calls this)."""
    app.command("train")(train)
    app.command("distill")(distill)
    app.command("eval")(evaluate)
    app.command("report")(report)
    app.command("teacher")(teacher)
    app.command("distil-serving")(distil_serving)
