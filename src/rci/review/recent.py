"""What a page's requests share: one load per feature record or frame sheet, kept for a few seconds.

A detail page asks for ten images at once (8 frames, 2 heat maps); without sharing, each frame would read
and decode its video's sheet and each map both videos' features. Concurrent requests for the same key
await one load; a finished value is kept `ttl_s` (long enough for one page, short enough that a
re-encoded video shows its new frames within seconds); failures are not kept.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    def __init__(self, load: Callable[[K], Awaitable[V]], ttl_s: float = 30.0, size: int = 64) -> None:
        self._load, self._ttl_s, self._size = load, ttl_s, size
        self._entries: OrderedDict[K, tuple[float, asyncio.Future[V]]] = OrderedDict()

    async def get(self, key: K) -> V:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > self._ttl_s:
            entry = (time.monotonic(), asyncio.ensure_future(self._load(key)))
            self._entries[key] = entry
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        try:
            # shield: one request given up (the browser navigated away) must not cancel the others' load
            return await asyncio.shield(entry[1])
        except Exception:
            if self._entries.get(key) is entry:
                del self._entries[key]
            raise
