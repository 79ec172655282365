"""publish_matchlite: what the demo and `rci report` install passes the same ONNX gate as `rci export`."""

from __future__ import annotations

from pathlib import Path

import pytest

from rci.inference import onnx_export
from rci.inference.checkpoint import load_checkpoint
from rci.inference.model_dir import matchlite_checkpoint, matchlite_onnx, publish_matchlite
from rci.inference.onnx_export import ExportError, read_metadata
from tests.inference.matchlite_fakes import small_model


def test_publish_installs_the_checkpoint_and_an_onnx_export_that_matches_torch(tmp_path: Path) -> None:
    published = publish_matchlite(tmp_path, small_model(seed=3), {"model_version": "v1", "threshold": 0.4})

    assert published.meta["model_version"] == "v1"
    assert 0.0 <= published.onnx_max_abs_diff <= 1e-4
    assert load_checkpoint(matchlite_checkpoint(tmp_path))[1]["threshold"] == 0.4
    assert read_metadata(matchlite_onnx(tmp_path))[1]["model_version"] == "v1"


def test_publish_refuses_an_export_that_disagrees_with_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_export, "onnx_parity", lambda model, path: {"score": 0.5})  # as a broken export would
    with pytest.raises(ExportError, match="differs from torch"):
        publish_matchlite(tmp_path, small_model(seed=3), {"model_version": "v1", "threshold": 0.4})
