"""Retry with exponential backoff and jitter, for infrastructure (TransientError) failures only."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rci.core.errors import TransientError
from rci.core.logs import get_logger

T = TypeVar("T")
log = get_logger(__name__)


def backoff_delays(base_s: float = 0.2, cap_s: float = 10.0, rng: random.Random | None = None):
    """Infinite sequence of 'full jitter' delays: uniform(0, min(cap, base * 2**n))."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        yield rng.uniform(0, min(cap_s, base_s * 2**attempt))
        attempt += 1


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    max_attempts: int | None = None,
    base_s: float = 0.2,
    cap_s: float = 10.0,
    on_retry: Callable[[TransientError], None] | None = None,
) -> T:
    """Run `operation` until it succeeds; retry TransientError (forever unless max_attempts)."""
    delays = backoff_delays(base_s, cap_s)
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except TransientError as exc:
            if max_attempts is not None and attempt >= max_attempts:
                raise
            delay = next(delays)
            log.warning("transient failure, retrying", what=what, attempt=attempt, delay_s=round(delay, 3),
                        error=str(exc))
            if on_retry:
                on_retry(exc)
            await asyncio.sleep(delay)
