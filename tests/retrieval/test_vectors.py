import numpy as np
import pytest

from rci.inference.features import VideoFeatures
from rci.retrieval.errors import InvalidRecord
from rci.retrieval.synthetic import FrameSequences
from rci.retrieval.vectors import Granularity, VectorSpec, index_vectors, query_vectors, window_means


def test_window_means_cover_every_frame_with_full_windows():
    frames = np.arange(10, dtype=np.float32)[:, None]  # [10, 1]: frame i has value i
    means = window_means(frames, width=4, stride=4)
    # windows [0..3], [4..7], and the end-aligned [6..9]
    np.testing.assert_allclose(means[:, 0], [1.5, 5.5, 7.5])
    np.testing.assert_allclose(window_means(frames, width=4, stride=2)[:, 0], [1.5, 3.5, 5.5, 7.5])


def test_short_video_gives_one_clip_over_its_frames():
    frames = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    vecs = index_vectors(frames, np.ones(2, bool), VectorSpec(clip_frames=4))
    np.testing.assert_allclose(vecs, [[2**-0.5, 2**-0.5]], rtol=1e-6)


def test_padding_frames_are_ignored_and_rows_are_unit():
    gen = FrameSequences(seed=1)
    real = gen.video(9)
    frames = np.concatenate([real, np.zeros((23, real.shape[1]), np.float32)])  # zero-padded to 32
    mask = np.arange(32) < 9
    spec = VectorSpec(clip_frames=4)
    vecs = index_vectors(frames, mask, spec)
    assert vecs.shape == (3, 128)  # [0..3], [4..7], end-aligned [5..8]
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vecs, index_vectors(real, np.ones(9, bool), spec), rtol=1e-6)
    # the default: every real frame is its own vector
    per_frame = index_vectors(frames, mask, VectorSpec())
    assert per_frame.shape == (9, 128)
    np.testing.assert_allclose(per_frame, real / np.linalg.norm(real, axis=1, keepdims=True), atol=1e-6)


def test_query_vectors_slide_by_the_query_stride():
    frames = FrameSequences(seed=2).video(16)
    spec = VectorSpec(clip_frames=4, query_stride=2)
    assert len(index_vectors(frames, np.ones(16, bool), spec)) == 4
    assert len(query_vectors(frames, np.ones(16, bool), spec)) == 7


def test_video_granularity_matches_the_feature_records_video_embedding():
    gen = FrameSequences(seed=3)
    visual = np.concatenate([gen.video(5), np.zeros((3, 128), np.float32)])
    mask = np.arange(8) < 5
    features = VideoFeatures("v", "enc", visual, mask, np.zeros(4, np.float32), False,
                             np.zeros((2, 3), np.float32), np.zeros(2, bool), 5.0)
    vecs = index_vectors(visual, mask, VectorSpec(Granularity.VIDEO))
    np.testing.assert_allclose(vecs[0], features.video_embedding(), rtol=1e-5, atol=1e-6)


def test_no_visual_frames_is_an_invalid_record():
    with pytest.raises(InvalidRecord):
        index_vectors(np.zeros((4, 8), np.float32), np.zeros(4, bool), VectorSpec())


def test_kinds_differ_between_granularities():
    assert VectorSpec(Granularity.VIDEO).kind != VectorSpec().kind


def test_the_settings_flag_selects_the_granularity():
    from rci.core.settings import Settings

    assert VectorSpec.from_settings(Settings()).granularity is Granularity.CLIP
    assert VectorSpec.from_settings(Settings(retrieval_granularity="video")).kind == "video-mean"


def test_each_view_of_a_frame_is_its_own_vector():
    rng = np.random.default_rng(3)
    centre, whole = rng.normal(size=(5, 8)).astype(np.float32), rng.normal(size=(5, 8)).astype(np.float32)
    mask = np.array([True] * 4 + [False])
    vecs = index_vectors(np.concatenate([centre, whole], axis=1), mask, VectorSpec(), views=2)
    assert vecs.shape == (8, 8)  # 4 real frames x 2 views, each view's own width
    np.testing.assert_allclose(vecs[:4], index_vectors(centre, mask, VectorSpec()), rtol=1e-6)
    np.testing.assert_allclose(vecs[4:], index_vectors(whole, mask, VectorSpec()), rtol=1e-6)
    assert query_vectors(np.concatenate([centre, whole], axis=1), mask, VectorSpec(), views=2).shape == (8, 8)
    with pytest.raises(InvalidRecord):
        index_vectors(np.zeros((4, 7), np.float32), np.ones(4, bool), VectorSpec(), views=2)
