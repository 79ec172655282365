"""`rci worker`: consume video.published, write rci.scores and the DLQ."""

from __future__ import annotations

import typer

from rci.cli.context import settings_from_env
from rci.core.errors import ConfigError, ModelError


def worker() -> None:
    """Run the scoring worker (a faust consumer group on video.published) until SIGTERM.

    Every setting comes from RCI_* variables (see README). Add processes to scale out:
    Kafka spreads the partitions over the group. A configuration fault found at start-up (no
    models, no S3 credentials, an unknown bucket) exits 2 with one message naming the setting;
    so does a model that is there but cannot be loaded (found when the agent opens it).
    """
    from rci.streams.service import run_scoring_worker
    from rci.streams.worker import EXIT_CONFIG

    settings = settings_from_env()
    try:
        run_scoring_worker(settings)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except (ConfigError, ModelError) as exc:
        typer.secho(f"rci worker cannot start: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_CONFIG) from None
