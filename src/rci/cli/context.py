"""What every command needs before it runs: settings read once from the environment, logging set up."""

from __future__ import annotations

import typer

from rci.core.errors import ConfigError
from rci.core.logs import configure_logging
from rci.core.settings import Settings, load_settings


def settings_from_env() -> Settings:
    """Load settings (and configure logging) once per command; exit 2 with a clear message on bad config."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level, settings.log_format)
    return settings
