"""structlog set-up: JSON lines when not on a terminal, readable output on one.

Event processing binds `video_id` with `bind_video(...)` (contextvars), so every log line
emitted while that event is handled carries it, across awaits and helper functions.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import structlog

_REDACTED_KEYS = ("password", "secret", "token", "sasl_password", "access_key")


def _redact_secrets(_logger: object, _method: str, event: dict) -> dict:
    # Defence in depth: settings hold secrets as SecretStr, but never let a raw one through.
    for key in list(event):
        if any(marker in key.lower() for marker in _REDACTED_KEYS):
            event[key] = "**********"
    return event


class _StderrLogger:
    """Writes each rendered line to whatever sys.stderr is *now* (test runners swap it)."""

    def __init__(self, *_args: object) -> None:
        pass

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def configure_logging(level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_secrets,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name) if name else structlog.get_logger()


@contextmanager
def bind_video(video_id: str, **extra: object) -> Iterator[None]:
    """Every log line inside this block carries video_id (and `extra`)."""
    with structlog.contextvars.bound_contextvars(video_id=video_id, **extra):
        yield
