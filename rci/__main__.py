"""`python -m rci ...` is the same as the `rci` console script."""

from rci.cli import app

app()
