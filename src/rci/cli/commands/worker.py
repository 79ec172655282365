"""`rci worker`: consume video.published, write rci.scores and the DLQ."""

from __future__ import annotations

import typer

from rci.cli.context import settings_from_env


def worker() -> None:
    """Run the scoring worker (a faust consumer group on video.published) until SIGTERM.

    Every setting comes from RCI_* variables (see README). Add processes to scale out:
    Kafka spreads the partitions over the group.
    """
    from rci.streams.service import run_scoring_worker

    settings = settings_from_env()
    try:
        run_scoring_worker(settings)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
