"""`rci`: the command-line entry point. Settings are read here, once, and passed down.

Sub-command groups live next to the code they drive and are registered below, so this
file stays a table of contents.
"""

from __future__ import annotations

import typer

from rci.errors import ConfigError
from rci.logs import configure_logging
from rci.settings import Settings, load_settings

app = typer.Typer(
    name="rci",
    help="Reproduced content identification: publish events, run the scoring worker, train and evaluate models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def settings_from_env() -> Settings:
    """Load settings (and configure logging) once per command; exit 2 with a clear message on bad config."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level, settings.log_format)
    return settings


@app.callback()
def main() -> None:
    """Reproduced content identification (RCI) as a streaming service."""


@app.command()
def version() -> None:
    """Print the package version."""
    from rci import __version__

    typer.echo(__version__)


def _register_subcommands() -> None:
    # Each module exposes a typer app or command; import lazily-cheap modules only.
    from rci import cli_commands

    cli_commands.register(app)


_register_subcommands()

if __name__ == "__main__":
    app()
