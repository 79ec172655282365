"""`rci review`: the review page for moderators."""

from __future__ import annotations

import asyncio

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
