"""Retry loops end as soon as they are told to stop (issue 15: SIGTERM during start-up retries)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from rci.core.errors import TransientError
from rci.streams.retry import Stopped, retry_transient, stop_on_signals, until_stopped


async def test_a_stop_interrupts_a_retry_loop_in_its_backoff_sleep() -> None:
    attempts = 0

    async def outage() -> None:
        nonlocal attempts
        attempts += 1
        raise TransientError("connection refused")

    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, stop.set)
    started = time.monotonic()
    with pytest.raises(Stopped):
        # base 30 s: without the stop, the first backoff sleep alone could outlast the test
        await until_stopped(retry_transient(outage, what="test", base_s=30.0, cap_s=30.0), stop)
    assert time.monotonic() - started < 2.0
    assert attempts >= 1


async def test_a_stop_cancels_the_operation_itself() -> None:
    cancelled = asyncio.Event()

    async def hanging_request() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.1, stop.set)
    with pytest.raises(Stopped):
        await until_stopped(hanging_request(), stop)
    assert cancelled.is_set()


async def test_without_a_stop_the_result_or_the_error_comes_through() -> None:
    async def answer() -> int:
        return 42

    async def broken() -> None:
        raise ValueError("bad")

    assert await until_stopped(answer(), asyncio.Event()) == 42
    with pytest.raises(ValueError, match="bad"):
        await until_stopped(broken(), asyncio.Event())


async def test_sigterm_sets_the_stop_event_while_the_block_runs() -> None:
    with stop_on_signals(signal.SIGTERM) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 2.0)
    assert stop.is_set()
