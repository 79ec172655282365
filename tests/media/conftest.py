from __future__ import annotations

from pathlib import Path

import pytest

from rci.media.policy import MediaPolicy
from rci.media.synth import write_test_video


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    return root


@pytest.fixture
def policy(media_root: Path) -> MediaPolicy:
    return MediaPolicy(allowed_prefixes=(media_root.as_uri() + "/",), max_frames=8)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s 64x48 10 fps clip with a 440 Hz tone, shared by a module's read-only tests."""
    return write_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", duration_s=3.0)
