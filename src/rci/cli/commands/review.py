"""`rci review`: the review page for moderators."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from rci.cli.context import settings_from_env


def review(
    host: str | None = typer.Option(None, "--host", help="Bind address (default RCI_REVIEW_HOST, loopback)."),
    port: int | None = typer.Option(None, "--port", min=0, max=65535, help="Port (default RCI_REVIEW_PORT; 0: a free one)."),
) -> None:
    """Serve the review page: recent scores, why a video was deboosted, verdicts to rci.reviews.

    Reads rci.scores, video.published, rci.shadow, rci.reviews and the dead-letter topic from
    their earliest records. Read-only unless RCI_REVIEW_TOKEN is set; a verdict must carry that
    token. Stops on SIGTERM or Ctrl-C.
    """
    from rci.review.server import serve_review

    settings = settings_from_env()
    updates = {k: v for k, v in {"review_host": host, "review_port": port}.items() if v is not None}
    settings = settings.model_copy(update=updates)
    asyncio.run(serve_review(settings, on_listening=lambda url: typer.echo(f"review page: {url}")))


reviews_app = typer.Typer(help="Moderators' verdicts on rci.reviews.", no_args_is_help=True)


@reviews_app.command("export")
def export(out: Path = typer.Argument(..., help="JSON lines file to write: one labelled pair per line.")) -> None:
    """Write the verdicts on rci.reviews as labelled pairs for training (the latest verdict per pair).

    label 1 (a reproduction): a confirmed deboost or an overturned kept score; label 0: a confirmed
    kept score or an overturned deboost.
    """
    from rci.core.errors import RCIError
    from rci.review.export import export_pairs

    settings = settings_from_env()
    try:
        counts = export_pairs(settings, out)
    except RCIError as exc:
        typer.secho(f"rci reviews export: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(counts | {"out": str(out)}))
