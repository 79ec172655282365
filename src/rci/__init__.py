"""Reproduced content identification (RCI) as a streaming service.

`rci` holds what every other package shares: settings, errors, logging, the CLI and
the local services. The pipeline itself lives in `streams`, `media`, `storage`,
`inference`, `retrieval` and `training`.
"""

__version__ = "0.1.0"
