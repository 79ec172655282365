"""Fixtures of the reliability tests: untrained serving models, worker settings on the session's
real services, a hostile media layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from rci.inference.model_dir import install_untrained_models
from rci.media.hostile import MediaLayout, write_clips
from rci.core.settings import Settings
from tests.streams.worker_harness import MAX_FRAMES

MEDIA_MAX_BYTES = 4 * 1024 * 1024  # small, so the sparse over-limit file stays cheap


@pytest.fixture(scope="session")
def untrained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("models")
    install_untrained_models(model_dir, MAX_FRAMES)
    return model_dir


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six distinct 2 s clips (video + audio), written once per session."""
    return write_clips(tmp_path_factory.mktemp("clips"), 6)


@pytest.fixture
def worker_settings(rci_settings: Settings, untrained_model_dir: Path) -> Settings:
    return rci_settings.model_copy(
        update={
            "model_dir": untrained_model_dir,
            "media_max_frames": MAX_FRAMES,
            "media_max_bytes": MEDIA_MAX_BYTES,
            "batch_max_size": 16,
            "log_format": "json",
        }
    )


def local_layout(settings: Settings, tmp_path: Path, s3_allowed: str | None = None) -> MediaLayout:
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    return MediaLayout(settings.media_dir, tmp_path / "outside", settings.media_max_bytes, s3_allowed)
