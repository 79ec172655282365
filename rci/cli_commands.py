"""Registry of sub-commands. Each feature area adds one line here."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach every sub-command group to the root app."""
    # (filled in as the feature areas land)
    from rci.commands import model

    app.command("export")(model.export)
    from rci.commands import worker

    app.command("worker")(worker.worker)
    from rci.commands import shadow

    app.command("shadow")(shadow.shadow)
    from rci.commands import demo

    app.command("demo")(demo.demo)
    from rci.commands import services

    app.add_typer(services.app, name="services")
    from rci.commands import stream

    app.command("publish")(stream.publish)
    app.command("tail")(stream.tail)
    from rci.commands import corpus

    app.add_typer(corpus.app, name="corpus")
    from rci.commands import features

    app.add_typer(features.encoders_app, name="encoders")
    app.add_typer(features.features_app, name="features")
    from rci.commands import training

    training.register(app)
    return None
