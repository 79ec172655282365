"""Dynamic frame allocation (appendix A.2), uniform sampling and pixel preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rci.inference.matchlm.frames import ImageSpec, allocate_frames, frames_to_pixels, tokens_per_frame, uniform_indices

budgets = st.integers(min_value=2, max_value=64)
durations = st.floats(min_value=0.5, max_value=600.0, allow_nan=False)
counts = st.integers(min_value=0, max_value=120)


@st.composite
def cases(draw):
    budget = draw(budgets)
    min_frames = draw(st.integers(min_value=0, max_value=budget // 2))
    return budget, min_frames, (draw(durations), draw(durations)), (draw(counts), draw(counts))


@given(cases())
def test_never_exceeds_budget_nor_available_frames(case):
    budget, min_frames, lengths, available = case
    n1, n2 = allocate_frames(lengths, available, budget, min_frames)
    assert 0 <= n1 <= available[0] and 0 <= n2 <= available[1]
    assert n1 + n2 <= budget
    # nothing is left unused while frames remain
    assert n1 + n2 == min(budget, sum(available))


@given(cases())
def test_shorter_video_gets_its_minimum(case):
    budget, min_frames, lengths, available = case
    n = allocate_frames(lengths, available, budget, min_frames)
    short = 0 if lengths[0] <= lengths[1] else 1
    assert n[short] >= min(min_frames, available[short])


@given(cases())
def test_split_is_proportional_to_length_when_no_limit_binds(case):
    budget, min_frames, lengths, _ = case
    available = (10_000, 10_000)  # both long enough to take any share
    n1, n2 = allocate_frames(lengths, available, budget, min_frames)
    ideal = budget * lengths[0] / sum(lengths)
    short = 0 if lengths[0] <= lengths[1] else 1
    ideal_short = ideal if short == 0 else budget - ideal
    if ideal_short >= min_frames + 1:  # the minimum does not bind
        assert abs(n1 - ideal) <= 0.5 + 1e-9
        assert n1 + n2 == budget


def test_worked_example():
    # a 5 s clip against a 10 min source, 32 frames: proportional gives the clip 0, the minimum 4
    assert allocate_frames((5.0, 600.0), (5, 32), 32, 4) == (4, 28)
    # a 20 s and a 60 s video, both decoded at 1 fps: 8 / 24
    assert allocate_frames((20.0, 60.0), (20, 60), 32, 4) == (8, 24)
    # the longer one cannot use its share: the shorter takes the rest
    assert allocate_frames((30.0, 60.0), (30, 10), 32, 4) == (22, 10)


def test_static_allocation_halves_the_budget_whatever_the_lengths():
    assert allocate_frames((5.0, 600.0), (5, 600), 32, 4, mode="static") == (5, 16)
    assert allocate_frames((100.0, 600.0), (100, 600), 32, 4, mode="static") == (16, 16)


@given(st.integers(min_value=1, max_value=300), st.data())
def test_uniform_indices_are_spread_sorted_and_in_range(available, data):
    count = data.draw(st.integers(min_value=0, max_value=available))
    idx = uniform_indices(available, count)
    assert len(idx) == count == len(set(idx.tolist()))
    assert np.all(np.diff(idx) > 0) and (count == 0 or (idx[0] >= 0 and idx[-1] < available))
    if count:
        gaps = np.diff(np.concatenate([[-0.5], idx, [available - 0.5]]))
        assert gaps.max() - gaps.min() <= available / count + 1  # evenly spaced, not bunched


def test_uniform_indices_refuses_more_than_available():
    with pytest.raises(ValueError):
        uniform_indices(3, 4)


def test_frames_to_pixels_resizes_and_normalises():
    frames = np.zeros((3, 224, 224, 3), dtype=np.uint8)
    frames[1] = 255
    pixels = frames_to_pixels(frames, ImageSpec(size=32))
    assert pixels.shape == (3, 3, 32, 32)
    assert float(pixels[0].min()) == -1.0 and float(pixels[1].max()) == 1.0  # SigLIP: (x - 0.5) / 0.5
    with pytest.raises(ValueError):
        frames_to_pixels(frames.astype(np.float32), ImageSpec(size=32))


def test_tokens_per_frame_matches_llava_onevision_pooling():
    assert tokens_per_frame(384, 14) == 196  # 27x27 patches -> 14x14 after 2x2 bilinear pooling
    assert tokens_per_frame(32, 8) == 4
