"""Fetch a media URI under the policy and decode it off the event loop: what the worker's features
path and the shadow consumer both need before their models run.

Resource bounds (one reader per process path; docs/reliability.md, "Resource bounds"):
  * at most `policy.fetch_concurrency` media are fetched and decoded at once: a batch of 16 events
    does not hold 16 files' decoders and buffers at once, the rest wait their turn;
  * fetched S3 bodies held in memory total at most `policy.max_bytes_in_flight`: an object's size
    (its ContentLength) is reserved before its body is read and given back once it is decoded;
    one larger than the whole budget is fetched when nothing else is held. Local files are read
    by the decoder in place and reserve nothing;
  * a decode is given `policy.decode_timeout_s` from when a thread starts it (waiting for a free
    thread does not count), plus a grace: past it the record is refused (MEDIA_UNDECODABLE) and the
    event loop stops waiting. The thread itself cannot be killed; it is bounded because it cannot
    block: the file was opened non-blocking and is a regular file (rci.media.localfile), and the
    decode checks the same deadline between packets and on every read (rci.media.decode), so it
    ends within about one packet's work of it, which the pixel limit bounds.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import suppress
from concurrent.futures import Executor

from rci.core.errors import RejectCode
from rci.core.logs import get_logger
from rci.media.decode import MediaSource, decode_media
from rci.media.decoded import DecodedMedia
from rci.media.errors import MediaRejected
from rci.media.fetch import fetch_media
from rci.media.policy import MediaPolicy
from rci.storage.s3 import S3Client

log = get_logger(__name__)

# How long past the decode deadline the loop still waits for the thread (which checks the deadline
# itself and normally ends with its own, clearer, rejection first).
DECODE_GRACE_S = 5.0


class MediaReader:
    """Fetch (allow-list, size limits) on the loop, decode in `executor` (PyAV releases the GIL while it decodes).

    `executor` must run calls in threads of this process (a ThreadPoolExecutor; None: the event
    loop's default executor).
    """

    def __init__(self, policy: MediaPolicy, s3: S3Client | None = None, executor: Executor | None = None) -> None:
        self.policy = policy
        self.s3 = s3
        self._executor = executor
        self._limits: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore, ByteBudget] | None = None

    async def decode(self, media_uri: str) -> DecodedMedia:
        """Raises MediaRejected for media the event is to blame for, TransientError for infrastructure."""
        slots, budget = self._bounds()
        async with slots:
            reserved = 0

            async def reserve(size: int) -> None:
                nonlocal reserved
                await budget.acquire(size)
                reserved = size

            try:
                source = await fetch_media(media_uri, self.policy, self.s3, reserve=reserve)
                return await self._decode_in_thread(source, media_uri)
            finally:
                budget.release(reserved)

    async def _decode_in_thread(self, source: MediaSource, media_uri: str) -> DecodedMedia:
        loop = asyncio.get_running_loop()
        started = loop.create_future()

        def run() -> DecodedMedia:
            loop.call_soon_threadsafe(_settle, started)
            return decode_media(source, self.policy)

        job = loop.run_in_executor(self._executor, run)
        job.add_done_callback(_retrieve)  # its outcome is not awaited when the loop gives up on it
        await asyncio.wait([job, started], return_when=asyncio.FIRST_COMPLETED)  # queueing does not count
        limit_s = self.policy.decode_timeout_s + DECODE_GRACE_S
        try:
            return await asyncio.wait_for(asyncio.shield(job), limit_s)
        except TimeoutError:
            log.warning("decode abandoned", media_uri=media_uri, waited_s=limit_s)
            raise MediaRejected(
                RejectCode.MEDIA_UNDECODABLE,
                f"decoding did not end within {self.policy.decode_timeout_s:g} s (RCI_MEDIA_DECODE_TIMEOUT_S)",
            ) from None

    def _bounds(self) -> tuple[asyncio.Semaphore, ByteBudget]:
        # asyncio primitives belong to one loop; `extract_features` runs each call on a loop of its own.
        loop = asyncio.get_running_loop()
        if self._limits is None or self._limits[0] is not loop:
            self._limits = (loop, asyncio.Semaphore(self.policy.fetch_concurrency),
                            ByteBudget(self.policy.max_bytes_in_flight))  # fmt: skip
        return self._limits[1], self._limits[2]


class ByteBudget:
    """Bytes held at once, at most `limit`; first come, first served (a large object is not starved by
    small ones that keep arriving); one larger than `limit` is admitted when nothing else is held."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, size: int) -> None:
        if not self._waiting and self._fits(size):
            self.held += size
            return
        granted = asyncio.get_running_loop().create_future()
        self._waiting.append((size, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # granted as it was cancelled: give it back
                self.release(size)
            else:
                with suppress(ValueError):  # _grant may have dropped it already
                    self._waiting.remove((size, granted))
                self._grant()
            raise

    def release(self, size: int) -> None:
        self.held -= size
        self._grant()

    def _fits(self, size: int) -> bool:
        return self.held == 0 or self.held + size <= self.limit

    def _grant(self) -> None:
        while self._waiting:
            size, granted = self._waiting[0]
            if granted.done():  # its waiter was cancelled
                self._waiting.popleft()
                continue
            if not self._fits(size):
                return
            self._waiting.popleft()
            self.held += size
            granted.set_result(None)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _retrieve(job: asyncio.Future) -> None:
    if not job.cancelled():
        job.exception()
