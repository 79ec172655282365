"""`rci export`: MatchLite checkpoint -> ONNX file for the serving runtime."""

from __future__ import annotations

from pathlib import Path

import typer

from rci.cli.context import settings_from_env
from rci.core.errors import ModelError


def export(
    checkpoint: Path = typer.Option(..., exists=True, dir_okay=False, help="MatchLite checkpoint (.pt) to export."),
    out: Path = typer.Option(..., help="Where to write the .onnx file."),
    fp16: bool = typer.Option(False, "--fp16", help="Float16 weights and compute (for the CUDA provider)."),
    opset: int = typer.Option(17, min=17, help="ONNX opset."),
) -> None:
    """Export MatchLite to ONNX (dynamic batch and frame axes), check it, and verify parity with torch."""
    settings_from_env()  # logging set-up; export itself needs no settings
    from rci.inference.checkpoint import load_checkpoint
    from rci.inference.onnx_export import export_and_verify

    try:
        model, meta = load_checkpoint(checkpoint)
        diffs = export_and_verify(model, out, meta=meta, opset=opset, fp16=fp16)
    except ModelError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    worst = max(diffs.values())
    typer.echo(f"wrote {out} (model_version={meta['model_version']}, max |onnx - torch| = {worst:.2e})")
