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
    from rci.inference.onnx_export import export_onnx, onnx_parity, verify_parity

    try:
        model, meta = load_checkpoint(checkpoint)
        export_onnx(model, out, meta=meta, opset=opset, fp16=fp16)
        # fp32 must match torch to 1e-4; fp16 is reported, not enforced (half precision drifts).
        diffs = onnx_parity(model, out) if fp16 else verify_parity(model, out)
    except ModelError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    worst = max(diffs.values())
    typer.echo(f"wrote {out} (model_version={meta['model_version']}, max |onnx - torch| = {worst:.2e})")
