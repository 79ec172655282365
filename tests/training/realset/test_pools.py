"""The two real-media pools: the benchmark's and the validation pool the served threshold is chosen
on share no source, and the validation pool's pictures are far (pHash) from every bench picture."""

from __future__ import annotations

import numpy as np
import pytest

from rci.training.realset.phash import hamming
from rci.training.realset.pools import (BENCH, NEAR_DUPLICATE_BITS, PHRASES, VALIDATION, check_heldout_media,
                                        language_of, music_pool, photo_pool)  # fmt: skip
from rci.training.realset.sets import SIZES


def test_the_benchmark_and_validation_pools_share_no_source() -> None:
    assert not set(BENCH.voices) & set(VALIDATION.voices)
    assert {language_of(v) for v in BENCH.voices}.isdisjoint({language_of(v) for v in VALIDATION.voices})
    assert BENCH.music_dir != VALIDATION.music_dir
    assert not set(BENCH.photo_activities) & set(VALIDATION.photo_activities)
    assert VALIDATION.avoid == (BENCH.name,)  # its photos are checked against the bench's, not the reverse
    for spec in (BENCH, VALIDATION):  # every voice speaks from a phrase bank of its own language
        for voice in spec.voices:
            assert language_of(voice) in PHRASES["sentences"] and language_of(voice) in PHRASES["titles"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_validation_pool_pictures_and_music_are_allowed_and_unlike_the_benchmarks() -> None:
    validation, counts = photo_pool(VALIDATION)
    bench, _ = photo_pool(BENCH)
    size = SIZES["validation"]
    assert len(validation) >= size.library + size.unrelated + size.template + 2, counts
    from rci.training.realset.pools import _photo_hash  # noqa: PLC0415 - the pool's own hash

    near = hamming(np.array([_photo_hash(p.path) for p in validation], np.uint64),
                   np.array([_photo_hash(p.path) for p in bench], np.uint64))  # [validation, bench] bits
    assert near.min() > NEAR_DUPLICATE_BITS
    for photo in validation:
        check_heldout_media(photo.path)
    tracks = music_pool(VALIDATION)
    assert tracks and all(t.path.startswith(str(VALIDATION.music_dir)) and t.duration_s > 60 for t in tracks)
