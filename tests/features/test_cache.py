from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from rci.inference.features import FeatureSpec, VideoFeatures
from rci.features.cache import FeatureCache, feature_key, legacy_feature_key
from rci.storage.objects import LocalObjectStore, ObjectStore

SPEC = FeatureSpec(visual_dim=8, audio_dim=6, text_dim=4, max_frames=5, text_tokens=3)


def make_features(video_id: str, encoder_version: str = "enc-1", seed: int = 0) -> VideoFeatures:
    rng = np.random.default_rng(seed)
    return VideoFeatures(
        video_id=video_id,
        encoder_version=encoder_version,
        visual=rng.standard_normal((SPEC.max_frames, SPEC.visual_dim)).astype(np.float32),
        visual_mask=np.array([True, True, True, False, False]),
        audio=rng.standard_normal(SPEC.audio_dim).astype(np.float32),
        has_audio=True,
        text=rng.standard_normal((SPEC.text_tokens, SPEC.text_dim)).astype(np.float32),
        text_mask=np.array([True, True, False]),
        duration_s=3.25,
        audio_fingerprint=rng.integers(0, 2**32, size=20, dtype=np.uint32),
    )


class CountingEncoder:
    """Stands in for the encoders: counts how often a video is encoded."""

    def __init__(self, video_id: str, encoder_version: str = "enc-1", delay_s: float = 0.0) -> None:
        self.calls = 0
        self.video_id, self.encoder_version, self.delay_s = video_id, encoder_version, delay_s

    async def __call__(self) -> VideoFeatures:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return make_features(self.video_id, self.encoder_version, seed=self.calls)


def assert_same(a: VideoFeatures, b: VideoFeatures) -> None:
    for name in ("video_id", "encoder_version", "has_audio", "duration_s"):
        assert getattr(a, name) == getattr(b, name)
    for name in ("visual", "visual_mask", "audio", "text", "text_mask", "audio_fingerprint"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert b.audio_fingerprint.dtype == np.uint32


URI = "s3://media/v.mp4"


def test_key_layout_names_the_content() -> None:
    assert feature_key("vid:1", "enc-1", URI) == "features/enc-1/vid:1.8ec3a4d5823cc4d1.npz"
    assert feature_key("vid:1", "enc-1", URI + "x") != feature_key("vid:1", "enc-1", URI)


async def test_miss_then_hit_computes_once(store: ObjectStore) -> None:
    cache = FeatureCache(store)
    encode = CountingEncoder("v1")
    assert await cache.get("v1", "enc-1") is None
    first = await cache.get_or_compute("v1", "enc-1", URI, encode)
    second = await cache.get_or_compute("v1", "enc-1", URI, encode)
    assert encode.calls == 1
    assert_same(first, second)
    assert await store.exists(feature_key("v1", "enc-1", URI))


async def test_concurrent_requests_for_one_video_share_one_computation(store: ObjectStore) -> None:
    cache = FeatureCache(store)
    encode = CountingEncoder("v2", delay_s=0.05)
    results = await asyncio.gather(*(cache.get_or_compute("v2", "enc-1", URI, encode) for _ in range(6)))
    assert encode.calls == 1
    for result in results[1:]:
        assert_same(results[0], result)


async def test_a_fresh_cache_on_the_same_store_hits(store: ObjectStore) -> None:
    await FeatureCache(store).put(make_features("v3"), URI)
    encode = CountingEncoder("v3")
    found = await FeatureCache(store).get_or_compute("v3", "enc-1", URI, encode)
    assert encode.calls == 0
    assert_same(found, make_features("v3"))


async def test_encoder_versions_do_not_share_entries(store: ObjectStore) -> None:
    cache = FeatureCache(store)
    await cache.put(make_features("v4", "enc-1"), URI)
    assert await cache.get("v4", "enc-2") is None
    encode = CountingEncoder("v4", "enc-2")
    assert (await cache.get_or_compute("v4", "enc-2", URI, encode)).encoder_version == "enc-2"
    assert encode.calls == 1


async def test_failed_computation_is_not_cached_and_is_retried(store: ObjectStore) -> None:
    cache = FeatureCache(store)

    async def broken() -> VideoFeatures:
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError):
        await cache.get_or_compute("v5", "enc-1", URI, broken)
    encode = CountingEncoder("v5")
    await cache.get_or_compute("v5", "enc-1", URI, encode)
    assert encode.calls == 1


async def test_corrupt_entry_is_a_miss_and_gets_replaced(store: ObjectStore) -> None:
    cache = FeatureCache(store)
    blob = make_features("v6").to_bytes()
    await store.put(feature_key("v6", "enc-1", URI), blob[: len(blob) // 2])  # a torn write from elsewhere
    assert await cache.get("v6", "enc-1", URI) is None
    encode = CountingEncoder("v6")
    await cache.get_or_compute("v6", "enc-1", URI, encode)
    assert encode.calls == 1
    assert await cache.get("v6", "enc-1") is not None


async def test_entry_of_another_video_under_the_key_is_a_miss(store: ObjectStore) -> None:
    await store.put(feature_key("v7", "enc-1", URI), make_features("someone-else").to_bytes())
    assert await FeatureCache(store).get("v7", "enc-1", URI) is None


async def test_compute_returning_another_video_is_a_bug(tmp_path: Path) -> None:
    cache = FeatureCache(LocalObjectStore(tmp_path))
    with pytest.raises(ValueError):
        await cache.get_or_compute("v8", "enc-1", URI, CountingEncoder("not-v8"))
    assert await cache.get("v8", "enc-1") is None


async def test_cancelled_caller_does_not_cancel_the_shared_computation(tmp_path: Path) -> None:
    cache = FeatureCache(LocalObjectStore(tmp_path))
    encode = CountingEncoder("v9", delay_s=0.1)
    impatient = asyncio.create_task(cache.get_or_compute("v9", "enc-1", URI, encode))
    patient = asyncio.create_task(cache.get_or_compute("v9", "enc-1", URI, encode))
    await asyncio.sleep(0.02)
    impatient.cancel()
    assert (await patient).video_id == "v9"
    assert encode.calls == 1


async def test_same_id_with_another_uri_misses_and_a_redelivery_hits(store: ObjectStore) -> None:
    """Issue 15: features keyed by video_id alone let another URI inherit the first one's features."""
    cache = FeatureCache(store)
    first, other = CountingEncoder("v10"), CountingEncoder("v10")
    await cache.get_or_compute("v10", "enc-1", URI, first)
    await cache.get_or_compute("v10", "enc-1", URI, first)  # the same event again: a hit
    assert first.calls == 1
    assert await cache.get("v10", "enc-1", "s3://media/other.mp4") is None
    await cache.get_or_compute("v10", "enc-1", "s3://media/other.mp4", other)
    assert other.calls == 1


async def test_lookup_by_id_alone_follows_the_last_stored_content(store: ObjectStore) -> None:
    cache = FeatureCache(store)
    assert await cache.get("v11", "enc-1") is None
    await cache.put(make_features("v11", seed=1), URI)
    assert_same(await cache.get("v11", "enc-1"), make_features("v11", seed=1))
    await cache.put(make_features("v11", seed=2), "s3://media/other.mp4")
    assert_same(await cache.get("v11", "enc-1"), make_features("v11", seed=2))
    assert_same(await cache.get("v11", "enc-1", URI), make_features("v11", seed=1))  # both contents kept


async def test_an_entry_from_before_content_keys_is_still_found_by_id(store: ObjectStore) -> None:
    await store.put(legacy_feature_key("v12", "enc-1"), make_features("v12").to_bytes())
    cache = FeatureCache(store)
    assert_same(await cache.get("v12", "enc-1"), make_features("v12"))  # a candidate indexed before the change
    assert await cache.get("v12", "enc-1", URI) is None  # an event is fetched again (through the allow-list)


async def test_a_pointer_to_another_video_is_a_miss(store: ObjectStore) -> None:
    await store.put(feature_key("other", "enc-1", URI), make_features("other").to_bytes())
    await store.put("features/enc-1/latest/v13.key", feature_key("other", "enc-1", URI).encode())
    assert await FeatureCache(store).get("v13", "enc-1") is None
