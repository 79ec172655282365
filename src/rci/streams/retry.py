"""Retry with exponential backoff and jitter, for infrastructure (TransientError) failures only."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Iterator
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


class Stopped(Exception):
    """`until_stopped`: the stop event was set before the operation finished (it was cancelled)."""


async def until_stopped(operation: Awaitable[T], stop: asyncio.Event) -> T:
    """Await `operation` unless `stop` is set first: then it is cancelled (its backoff sleeps and
    requests in flight with it) and `Stopped` is raised. What makes a retry loop honour SIGTERM at once."""
    work = asyncio.ensure_future(operation)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
    if work.cancelled():
        raise Stopped()
    return work.result()


@contextlib.contextmanager
def stop_on_signals(*signals: int) -> Iterator[asyncio.Event]:
    """An event set by any of `signals` while the block runs (on the running loop; handlers removed after)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
