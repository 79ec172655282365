"""`python -m rci ...` is the same as the `rci` console script."""

from rci.cli.main import app

app()
