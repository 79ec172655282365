"""A tiny MatchLM directory built once per session (seconds on CPU), and video inputs to feed it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rci.inference.matchlm.config import MatchLMConfig
from rci.inference.matchlm.loader import load_matchlm_model
from rci.inference.matchlm.tiny import build_tiny_matchlm


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # 2 shared cores: extra intra-op threads make tiny models slower, not faster
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_matchlm(tmp_path_factory.mktemp("matchlm") / "tiny", MatchLMConfig.tiny(), seed=0)


@pytest.fixture(scope="session")
def tiny(tiny_dir: Path):
    """(model in eval mode, processor) of the saved tiny MatchLM."""
    model, processor, _ = load_matchlm_model(tiny_dir)
    return model.eval(), processor
