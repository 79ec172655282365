"""Loads shared by a page's concurrent requests, kept briefly, failures not kept."""

from __future__ import annotations

import asyncio

import pytest

from rci.review.recent import Recent


class Loader:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail = False

    async def __call__(self, key: str) -> str:
        self.calls.append(key)
        await asyncio.sleep(0.01)
        if self.fail:
            raise OSError("store down")
        return key.upper()


async def test_concurrent_gets_share_one_load_and_the_value_is_kept() -> None:
    loader = Loader()
    recent = Recent(loader, ttl_s=60)
    assert await asyncio.gather(*(recent.get("a") for _ in range(5))) == ["A"] * 5
    assert await recent.get("a") == "A" and loader.calls == ["a"]


async def test_values_expire_and_the_oldest_make_room() -> None:
    loader = Loader()
    expiring = Recent(loader, ttl_s=0.0)
    await expiring.get("a")
    await asyncio.sleep(0.001)
    await expiring.get("a")
    small = Recent(loader, size=2)
    for key in ("b", "c", "d", "b"):
        await small.get(key)
    assert loader.calls == ["a", "a", "b", "c", "d", "b"]  # b was pushed out by d


async def test_a_failed_load_is_not_kept() -> None:
    loader = Loader()
    recent = Recent(loader)
    loader.fail = True
    with pytest.raises(OSError):
        await recent.get("a")
    loader.fail = False
    assert await recent.get("a") == "A" and loader.calls == ["a", "a"]
