"""Fixtures for the worker's end-to-end tests (the real services come from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rci.inference.model_dir import install_untrained_models
from rci.core.settings import Settings
from tests.streams.worker_harness import MAX_FRAMES


@pytest.fixture(scope="session")
def untrained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small encoders + a random MatchLite, exported: a real serving stack whose scores mean nothing."""
    model_dir = tmp_path_factory.mktemp("models")
    install_untrained_models(model_dir, MAX_FRAMES)
    return model_dir


@pytest.fixture
def worker_settings(rci_settings: Settings, untrained_model_dir: Path) -> Settings:
    return rci_settings.model_copy(
        update={"model_dir": untrained_model_dir, "media_max_frames": MAX_FRAMES, "batch_max_size": 16}
    )


@pytest.fixture
def trained_worker_settings(rci_settings: Settings, trained_model_dir: Path) -> Settings:
    """A worker serving the demo's trained models, at their own frame count (the default)."""
    return rci_settings.model_copy(update={"model_dir": trained_model_dir, "batch_max_size": 16})
