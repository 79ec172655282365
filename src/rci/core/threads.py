"""A client that is not thread-safe gets one thread of its own; the event loop awaits calls made there."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class OwnThread:
    """Runs blocking calls one at a time, in order, on a dedicated thread (Milvus, the catalog consumer)."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Wait for the call in flight, then stop the thread."""
        self._executor.shutdown(wait=True)
