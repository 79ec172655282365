"""`rci`: the command-line entry point, a table of contents of the sub-commands.

Each command lives in `rci.cli.commands.<area>` and reads its settings through
`rci.cli.context.settings_from_env`, so any command module imports on its own.
"""

from __future__ import annotations

import os

import typer

from rci import __version__
from rci.cli.commands import catalogue, corpus, demo, features, index, model, review, services, shadow, stream, topics, training, worker
from rci.core.env_check import unknown_variables

app = typer.Typer(
    name="rci",
    help="Reproduced content identification: publish events, run the scoring worker, train and evaluate models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
) -> None:
    """Reproduced content identification (RCI) as a streaming service."""
    for unknown in unknown_variables(os.environ):  # a misspelt RCI_* name would be silently ignored
        typer.secho(unknown.message(), fg=typer.colors.YELLOW, err=True)


@app.command("version")
def version_command() -> None:
    """Print the package version."""
    typer.echo(__version__)


app.command("export")(model.export)
app.command("worker")(worker.worker)
app.command("shadow")(shadow.shadow)
app.command("demo")(demo.demo)
app.command("publish")(stream.publish)
app.command("tail")(stream.tail)
app.add_typer(services.app, name="services")
app.add_typer(corpus.app, name="corpus")
app.add_typer(features.encoders_app, name="encoders")
app.add_typer(features.features_app, name="features")
app.add_typer(index.app, name="index")
index.app.command("backfill")(catalogue.backfill)
app.command("replay")(catalogue.replay)
app.command("forget")(catalogue.forget)
app.add_typer(topics.app, name="topics")
app.command("review")(review.review)
app.add_typer(review.reviews_app, name="reviews")
training.register(app)

if __name__ == "__main__":
    app()
