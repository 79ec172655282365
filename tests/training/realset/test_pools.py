"""The three real-media pools: the benchmark's, the validation pool the served threshold is chosen on and
the training pool MatchLite learns real uploads from share no source, and each pool's pictures are far
(pHash) from every picture of the pools it must avoid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rci.training.realset.phash import hamming
from rci.training.realset.pools import (BENCH, NEAR_DUPLICATE_BITS, PHRASES, TRAINING, VALIDATION, PoolSpec,
                                        check_heldout_media, language_of, music_pool, photo_pool)  # fmt: skip
from rci.training.realset.sets import SIZES


def test_the_benchmark_and_validation_pools_share_no_source() -> None:
    assert not set(BENCH.voices) & set(VALIDATION.voices)
    assert {language_of(v) for v in BENCH.voices}.isdisjoint({language_of(v) for v in VALIDATION.voices})
    assert BENCH.music_dir != VALIDATION.music_dir
    assert not set(BENCH.photo_activities) & set(VALIDATION.photo_activities)
    assert VALIDATION.avoid == (BENCH.name,)  # its photos are checked against the bench's, not the reverse
    for spec in (BENCH, VALIDATION, TRAINING):  # every voice speaks from a phrase bank of its own language
        for voice in spec.voices:
            assert language_of(voice) in PHRASES["sentences"] and language_of(voice) in PHRASES["titles"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_validation_pool_pictures_and_music_are_allowed_and_unlike_the_benchmarks() -> None:
    _pool_photos_far_from(VALIDATION, (BENCH,), "validation")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_training_pool_pictures_and_music_are_allowed_and_unlike_the_other_pools() -> None:
    _pool_photos_far_from(TRAINING, (BENCH, VALIDATION), "training")


def test_the_training_pool_shares_no_source_with_the_pools_that_never_train() -> None:
    for other in (BENCH, VALIDATION):
        assert {language_of(v) for v in TRAINING.voices}.isdisjoint({language_of(v) for v in other.voices})
        assert TRAINING.music_dir != other.music_dir
        assert not set(TRAINING.photo_activities) & set(other.photo_activities)
    assert set(TRAINING.avoid) == {BENCH.name, VALIDATION.name}  # and every picture is checked against theirs


def _pool_photos_far_from(spec: PoolSpec, others: tuple[PoolSpec, ...], set_size: str) -> None:
    photos, counts = photo_pool(spec)
    size = SIZES[set_size]
    assert len(photos) >= size.library + size.unrelated + size.template + 2, counts
    from rci.training.realset.pools import _photo_hash  # noqa: PLC0415 - the pool's own hash

    hashes = np.array([_photo_hash(p.path) for p in photos], np.uint64)
    for other in others:
        near = hamming(hashes, np.array([_photo_hash(p.path) for p in photo_pool(other)[0]], np.uint64))
        assert near.min() > NEAR_DUPLICATE_BITS, other.name  # [pool, other] bits
    for photo in photos:
        check_heldout_media(photo.path)
    tracks = music_pool(spec)
    assert tracks and all(t.path.startswith(str(spec.music_dir)) and t.duration_s > 60 for t in tracks)


def test_pictures_from_plain_directories_are_flattened_and_icons_and_mirrors_left_out(tmp_path) -> None:
    """A pool's `photo_dirs` (Tux Paint's stamps for the training pool): cut-outs flattened onto white,
    pictures under the pool's minimum side and the stamps' mirrored copies not kept."""
    from PIL import Image

    stamps = tmp_path / "stamps" / "animals"
    stamps.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, side in (("cat", 240), ("dog", 260), ("dog_mirror", 260), ("ant", 120)):
        pixels = rng.integers(0, 255, (side, side, 4), dtype=np.uint8)
        pixels[: side // 2, :, 3] = 0  # the top half transparent, as a cut-out's surroundings are
        Image.fromarray(pixels, "RGBA").save(stamps / f"{name}.png")
    spec = PoolSpec(name="plain", photo_activities={}, music_dir=tmp_path, music_glob="*.ogg", voices=("en-us",),
                    flatten=True, photo_dirs={"animals": (stamps, "*.png")}, min_side=200)  # fmt: skip
    photos, counts = photo_pool(spec, tmp_path / "work")
    assert sorted(Path(p.path).stem for p in photos) == ["cat", "dog"], counts
    assert {p.category for p in photos} == {"animals"}
    for photo in photos:
        flat = np.asarray(Image.open(photo.path).convert("RGBA"))
        assert (flat[..., 3] == 255).all() and (flat[:100, :, :3] == 255).all()  # the transparent half is white
