"""A tiny MatchLM directory built once per session (seconds on CPU), and video inputs to feed it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rci.inference.matchlm.config import MatchLMConfig
from rci.inference.matchlm.loader import load_matchlm_model
from rci.inference.matchlm.tiny import build_tiny_matchlm
from tests.torch_threads import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_matchlm(tmp_path_factory.mktemp("matchlm") / "tiny", MatchLMConfig.tiny(), seed=0)


@pytest.fixture(scope="session")
def tiny(tiny_dir: Path):
    """(model in eval mode, processor) of the saved tiny MatchLM."""
    model, processor, _ = load_matchlm_model(tiny_dir)
    return model.eval(), processor
