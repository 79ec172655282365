from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from rci.media.synth import synthetic_picture, write_test_video


def test_same_arguments_give_the_same_file(tmp_path: Path) -> None:
    a = write_test_video(tmp_path / "a.mp4", duration_s=1.0, seed=3)
    b = write_test_video(tmp_path / "b.mp4", duration_s=1.0, seed=3)
    assert a.read_bytes() == b.read_bytes()


def test_seeds_and_seconds_change_the_picture() -> None:
    assert not np.array_equal(synthetic_picture(0, 64, 48, seed=1), synthetic_picture(0, 64, 48, seed=2))
    assert not np.array_equal(synthetic_picture(0, 64, 48, seed=1), synthetic_picture(1, 64, 48, seed=1))


def test_written_file_has_the_requested_tracks(tmp_path: Path) -> None:
    path = write_test_video(tmp_path / "v.mp4", duration_s=2.0, width=32, height=16, fps=5, with_audio=False)
    with av.open(str(path)) as container:
        assert [s.type for s in container.streams] == ["video"]
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (32, 16)
        assert container.duration / 1e6 == pytest.approx(2.0, abs=0.01)


def test_refuses_a_file_without_tracks_or_odd_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_test_video(tmp_path / "x.mp4", with_audio=False, with_video=False)
    with pytest.raises(ValueError):
        write_test_video(tmp_path / "x.mp4", width=33)
