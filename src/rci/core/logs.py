"""structlog set-up: JSON lines when not on a terminal, readable output on one.

Libraries that log through the standard `logging` module (aiokafka, faust, mode, pymilvus, botocore)
are rendered by the same processors, with their logger's name, at WARNING and above (at the configured
level when that is higher): without a handler Python printed their warnings as bare text lines
("Unable connect to ...") in the middle of the JSON.

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


class _StderrHandler(logging.StreamHandler):
    """A logging handler writing to whatever sys.stderr is *now*, like `_StderrLogger`."""

    @property
    def stream(self):  # noqa: ANN201 - logging's own attribute
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure_logging(level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=False,
    )
    _route_library_logs(shared, renderer, max(logging.WARNING, logging.getLevelName(level)))


def _route_library_logs(shared: list, renderer: object, level: int) -> None:
    """The root logger's handler renders stdlib records with structlog's processors (replacing the one
    an earlier call installed: configure_logging may run more than once in a process)."""
    handler = _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))  # fmt: skip
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name) if name else structlog.get_logger()


@contextmanager
def bind_video(video_id: str, **extra: object) -> Iterator[None]:
    """Every log line inside this block carries video_id (and `extra`)."""
    with structlog.contextvars.bound_contextvars(video_id=video_id, **extra):
        yield
