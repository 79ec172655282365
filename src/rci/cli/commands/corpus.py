"""`rci corpus make`: generate a labelled RCI corpus (media + videos.jsonl + pairs.jsonl + corpus.json)."""

from __future__ import annotations

from pathlib import Path

import typer

from rci.cli.context import settings_from_env

app = typer.Typer(help="Synthetic RCI corpora for training, evaluation and the demo.", no_args_is_help=True)


def _size(value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError as exc:
        raise typer.BadParameter("expected WIDTHxHEIGHT, e.g. 256x256") from exc
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise typer.BadParameter("width and height must be even and at least 64")
    return width, height


@app.command("make")
def make(
    out: Path = typer.Option(..., "--out", file_okay=False, help="Directory to write media/ and the manifest into."),
    sources: int = typer.Option(12, "--sources", min=1, help="Number of source videos (each brings its pairs)."),
    seed: int = typer.Option(0, "--seed", help="Everything follows from the seed: same seed, same corpus."),
    reproductions: int = typer.Option(2, "--reproductions", min=0, help="Edited copies per scene source."),
    hard_negatives: bool = typer.Option(True, "--hard-negatives/--no-hard-negatives",
                                        help="Same-audio, same-style and same-title negatives per scene source."),
    unrelated: int = typer.Option(1, "--unrelated", min=0, help="Unrelated-source negatives per source."),
    min_duration: float = typer.Option(4.0, "--min-duration", min=1.0, help="Shortest source clip, seconds."),
    max_duration: float = typer.Option(12.0, "--max-duration", min=1.0, help="Longest source clip, seconds."),
    size: str = typer.Option("256x256", "--size", help="Frame size WIDTHxHEIGHT."),
    fps: int = typer.Option(10, "--fps", min=1, max=60, help="Frame rate of the generated clips."),
    photo_share: float = typer.Option(0.35, "--photo-share", min=0.0, max=1.0,
                                      help="Share of pictures that are Ken-Burns photos (0 = procedural only)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Render processes."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Render a corpus of sources, reproductions and hard negatives, split by source into train/val/test."""
    settings_from_env()  # logging set-up; the corpus itself needs no settings
    from rci.training.corpus.errors import CorpusError
    from rci.training.corpus.generate import make_corpus
    from rci.training.corpus.render import RenderConfig

    width, height = _size(size)
    try:
        manifest = make_corpus(
            out, n_sources=sources, seed=seed, reproductions_per_source=reproductions, hard_negatives=hard_negatives,
            unrelated_per_source=unrelated, min_duration_s=min_duration, max_duration_s=max_duration,
            photo_share=photo_share, render=RenderConfig(width=width, height=height, fps=fps), workers=workers,
            progress=progress,
        )
    except CorpusError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    counts = manifest.counts()
    pairs = ", ".join(f"{split} {n} ({counts['positives'][split]} reproduced)" for split, n in counts["pairs"].items())
    typer.echo(f"wrote {counts['videos']} videos ({counts['media_seconds']} s of media) and pairs: {pairs} to {out}")
