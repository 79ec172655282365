"""`rci demo`: the main job end to end on embedded defaults."""

from __future__ import annotations

import typer

from rci.cli.context import settings_from_env


def demo(
    sources: int = typer.Option(8, min=2, help="Source videos in the published sample (each brings copies and negatives)."),
    train_sources: int = typer.Option(32, min=4, help="Source videos in the separate corpus the model trains on."),
    seed: int = typer.Option(7, help="Seed of the sample media (the training corpus uses seed + 1000)."),
    workers: int = typer.Option(1, min=1, help="`rci worker` processes in the consumer group."),
    timeout: float = typer.Option(900.0, "--timeout", min=1.0, help="Give up if the events are not all scored by then (seconds)."),
    timeout_s: float | None = typer.Option(None, "--timeout-s", min=1.0, hidden=True, help="The old name of --timeout."),
    retrain: bool = typer.Option(False, help="Train the models again even if the model dir has them."),
    min_auc: float = typer.Option(0.0, min=0.0, max=1.0, help="Exit 1 if the scores' AUC is below this."),
    review: bool = typer.Option(False, "--review", help="After the report, serve the review page (`rci review`) on "
                                "the demo's topics until Ctrl-C, and print its address."),
) -> None:
    """Start Kafka, make sample media, train or load small models, publish, score, report.

    Uses RCI_DATA_DIR (default .rci) for the broker's data, Milvus Lite, the object store, the
    media and the models; the models and media are kept, so a second run starts faster.
    """
    from rci.cli.demo import Demo, DemoOptions

    settings = settings_from_env()
    options = DemoOptions(sources=sources, train_sources=train_sources, seed=seed, workers=workers,
                          timeout_s=timeout if timeout_s is None else timeout_s, retrain=retrain, review=review)
    result = Demo(settings, options).run()
    if result.auc is not None and result.auc < min_auc:
        typer.secho(f"AUC {result.auc:.3f} is below --min-auc {min_auc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
