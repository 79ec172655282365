"""MediaReader's resource bounds: media in flight, S3 bytes in flight, decodes that do not end."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

import rci.media.reader
from rci.core.errors import RejectCode
from rci.media.decoded import DecodedMedia
from rci.media.errors import MediaRejected
from rci.media.fetch import fetch_media
from rci.media.policy import MediaPolicy
from rci.media.reader import ByteBudget, MediaReader
from rci.media.synth import write_test_video
from rci.storage.s3 import S3Client, S3Config

BUCKET = "media-in"


@pytest.fixture
def clip_uri(media_root: Path) -> str:
    return write_test_video(media_root / "clip.mp4", duration_s=1.0, width=32, height=32).as_uri()


@pytest.fixture
def pool() -> ThreadPoolExecutor:
    executor = ThreadPoolExecutor(max_workers=8)  # more threads than any bound tested: the reader bounds
    yield executor
    executor.shutdown(wait=True)


class _Concurrency:
    """Stands in for decode_media: takes `seconds` and counts how many run at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.now = self.most = 0
        self._lock = threading.Lock()

    def __call__(self, source: object, policy: MediaPolicy) -> DecodedMedia:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.seconds)
        with self._lock:
            self.now -= 1
        return source  # type: ignore[return-value]  # what was fetched, for the test to look at


async def test_at_most_fetch_concurrency_media_are_fetched_and_decoded_at_once(
    policy: MediaPolicy, clip_uri: str, pool: ThreadPoolExecutor, monkeypatch
) -> None:
    decode = _Concurrency(0.1)
    monkeypatch.setattr(rci.media.reader, "decode_media", decode)
    reader = MediaReader(replace(policy, fetch_concurrency=2), executor=pool)
    results = await asyncio.gather(*(reader.decode(clip_uri) for _ in range(6)))
    assert len(results) == 6 and decode.most == 2


async def test_real_decodes_go_through_the_bounded_reader(policy: MediaPolicy, clip_uri: str, pool) -> None:
    reader = MediaReader(replace(policy, fetch_concurrency=1), executor=pool)
    decoded = await asyncio.gather(*(reader.decode(clip_uri) for _ in range(3)))
    assert [d.frame_mask.sum() for d in decoded] == [1, 1, 1]


# --- S3 bytes in flight --------------------------------------------------------------------------


class _Body:
    def __init__(self, data: bytes, reads: list[int]) -> None:
        self.data, self.reads = data, reads

    async def __aenter__(self) -> _Body:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def read(self) -> bytes:
        self.reads.append(len(self.data))
        return self.data


class _Objects:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects, self.reads = objects, []

    async def get_object(self, *, Bucket: str, Key: str) -> dict:  # noqa: N803 (boto's names)
        data = self.objects[Key]
        return {"ContentLength": len(data), "Body": _Body(data, self.reads)}


class _StubS3(S3Client):
    def __init__(self, objects: dict[str, bytes]) -> None:
        super().__init__(S3Config(endpoint_url="http://127.0.0.1:1"))
        self._client = _Objects(objects)


class _HeldBytes(_Concurrency):
    """decode_media stand-in that also sums the bytes of the S3 bodies being decoded at once."""

    def __init__(self) -> None:
        super().__init__(0.05)
        self.bytes_now = self.bytes_most = 0

    def __call__(self, source: object, policy: MediaPolicy) -> DecodedMedia:
        with self._lock:
            self.bytes_now += len(source)
            self.bytes_most = max(self.bytes_most, self.bytes_now)
        try:
            return super().__call__(source, policy)
        finally:
            with self._lock:
                self.bytes_now -= len(source)


async def test_s3_bodies_held_at_once_stay_within_the_byte_budget(pool: ThreadPoolExecutor, monkeypatch) -> None:
    objects = {f"videos/{i}.mp4": bytes([i]) * 60 for i in range(5)} | {"videos/big.mp4": b"B" * 250}
    s3 = _StubS3(objects)
    decode = _HeldBytes()
    monkeypatch.setattr(rci.media.reader, "decode_media", decode)
    policy = MediaPolicy((f"s3://{BUCKET}/videos/",), fetch_concurrency=4, max_bytes_in_flight=130)
    reader = MediaReader(policy, s3, executor=pool)
    results = await asyncio.gather(*(reader.decode(f"s3://{BUCKET}/{key}") for key in objects))
    assert sorted(map(len, results)) == [60] * 5 + [250]  # the object over the whole budget went alone
    assert decode.bytes_most == 250 and decode.most == 2  # two of 60 at once, never three (180 > 130)


async def test_the_size_is_reserved_before_the_body_is_read() -> None:
    s3 = _StubS3({"videos/a.mp4": b"x" * 10})
    seen = []

    async def reserve(size: int) -> None:
        seen.append((size, list(s3._client.reads)))

    await fetch_media(f"s3://{BUCKET}/videos/a.mp4", MediaPolicy((f"s3://{BUCKET}/videos/",)), s3, reserve=reserve)
    assert seen == [(10, [])]


async def test_byte_budget_is_first_come_first_served_and_admits_an_oversized_one_alone() -> None:
    budget = ByteBudget(100)
    await budget.acquire(70)
    order = []

    async def take(name: str, size: int) -> None:
        await budget.acquire(size)
        order.append(name)

    big = asyncio.create_task(take("big", 500))
    await asyncio.sleep(0)
    small = asyncio.create_task(take("small", 10))  # would fit now, but queues behind the big one
    await asyncio.sleep(0.01)
    assert order == [] and budget.held == 70
    budget.release(70)
    await asyncio.sleep(0.01)
    assert order == ["big"] and budget.held == 500
    budget.release(500)
    await asyncio.gather(big, small)
    assert order == ["big", "small"] and budget.held == 10


async def test_byte_budget_forgets_a_cancelled_waiter() -> None:
    budget = ByteBudget(100)
    await budget.acquire(100)
    waiter = asyncio.create_task(budget.acquire(50))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    budget.release(100)
    await asyncio.wait_for(budget.acquire(100), 1)  # nothing of the cancelled one is held or queued
    assert budget.held == 100


# --- decodes that do not end ------------------------------------------------------------------


async def test_a_decode_stuck_in_its_thread_is_refused_and_not_waited_on(
    policy: MediaPolicy, clip_uri: str, pool: ThreadPoolExecutor, monkeypatch
) -> None:
    # A C call that never returns: the loop gives up at the deadline plus the grace; the thread is let go.
    release = threading.Event()
    monkeypatch.setattr(rci.media.reader, "decode_media", lambda *_: release.wait(30))
    monkeypatch.setattr(rci.media.reader, "DECODE_GRACE_S", 0.1)
    reader = MediaReader(replace(policy, decode_timeout_s=0.2), executor=pool)
    started = time.monotonic()
    try:
        with pytest.raises(MediaRejected) as caught:
            await reader.decode(clip_uri)
    finally:
        release.set()
    assert time.monotonic() - started < 5
    assert caught.value.code == RejectCode.MEDIA_UNDECODABLE and "RCI_MEDIA_DECODE_TIMEOUT_S" in caught.value.detail


async def test_waiting_for_a_free_thread_does_not_count_against_the_deadline(
    policy: MediaPolicy, clip_uri: str, monkeypatch
) -> None:
    monkeypatch.setattr(rci.media.reader, "decode_media", _Concurrency(0.4))
    monkeypatch.setattr(rci.media.reader, "DECODE_GRACE_S", 0.2)
    with ThreadPoolExecutor(max_workers=1) as one_thread:  # the second decode queues 0.4 s for it
        reader = MediaReader(replace(policy, decode_timeout_s=0.3), executor=one_thread)
        assert len(await asyncio.gather(reader.decode(clip_uri), reader.decode(clip_uri))) == 2


async def test_a_fifo_swapped_in_after_the_fetch_check_is_refused_not_hung(
    policy: MediaPolicy, clip_uri: str, pool: ThreadPoolExecutor, monkeypatch
) -> None:
    # The FIFO appears between fetch_media's check and the decoder's open: the open does not wait
    # for a writer, and the descriptor is refused as not a regular file.
    async def fetch_then_swap(uri: str, policy: MediaPolicy, s3: object, reserve: object) -> Path:
        path = await fetch_media(uri, policy, s3, reserve=reserve)
        path.unlink()
        os.mkfifo(path)
        return path

    monkeypatch.setattr(rci.media.reader, "fetch_media", fetch_then_swap)
    with pytest.raises(MediaRejected) as caught:
        await asyncio.wait_for(MediaReader(policy, executor=pool).decode(clip_uri), 10)
    assert caught.value.code == RejectCode.MEDIA_NOT_ALLOWED and "not a regular file" in caught.value.detail
