"""MatchLite checkpoints: config and meta travel with the weights; bad files fail with ModelError."""

from __future__ import annotations

import torch

import pytest

from rci.inference.checkpoint import DEFAULT_THRESHOLD, load_checkpoint, save_checkpoint
from rci.inference.runtime import collate_pairs
from tests.inference.matchlite_fakes import make_features, small_model
from rci.core.errors import ModelError


def test_round_trip_restores_config_weights_and_meta(tmp_path):
    model = small_model(seed=3, use_text=False, aux_heads=("visual",))
    with torch.no_grad():  # non-default BatchNorm statistics must survive too
        model.trunk.stem_bn.running_mean.uniform_(-1, 1)
    meta = save_checkpoint(tmp_path / "m.pt", model, {"model_version": "v7", "threshold": 0.42, "epoch": 3})
    loaded, loaded_meta = load_checkpoint(tmp_path / "m.pt")
    assert loaded.config == model.config
    assert loaded_meta == meta == {"model_version": "v7", "threshold": 0.42, "epoch": 3}
    assert not loaded.training
    batch = {k: torch.from_numpy(v) for k, v in collate_pairs([(make_features("q", 1), make_features("c", 2))]).items()}
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).logits, model(batch).logits, atol=0, rtol=0)


def test_defaults_for_version_and_threshold(tmp_path):
    a = save_checkpoint(tmp_path / "a.pt", small_model(seed=1))
    b = save_checkpoint(tmp_path / "b.pt", small_model(seed=2))
    assert a["threshold"] == DEFAULT_THRESHOLD
    assert a["model_version"].startswith("matchlite-") and a["model_version"] != b["model_version"]


def test_the_default_version_changes_with_the_calibration_the_same_weights_serve(tmp_path):
    from rci.training.calibration import calibrated

    model = small_model(seed=1)
    a = save_checkpoint(tmp_path / "a.pt", model)
    b = save_checkpoint(tmp_path / "b.pt", calibrated(model, (0.5, 4.0, -1.0), margin_limit=2.0))
    c = save_checkpoint(tmp_path / "c.pt", calibrated(model, (0.5, 4.0, -1.0), margin_limit=2.0))
    assert a["model_version"] != b["model_version"] == c["model_version"]


def test_missing_and_foreign_files_raise_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        load_checkpoint(tmp_path / "absent.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not a MatchLite checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_config_weight_mismatch_raises_model_error(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, small_model())
    payload = torch.load(path, weights_only=True)
    payload["config"]["fusion_channels"] = 12
    torch.save(payload, path)
    with pytest.raises(ModelError, match="do not match"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a checkpoint at all\n", b"\x80\x04\x95garbage", b"PK\x03\x04 truncated zip", "module"],
    ids=["empty", "text", "pickle-garbage", "truncated-zip", "pickled-module"],
)
def test_any_file_that_is_no_checkpoint_raises_model_error(tmp_path, content):
    path = tmp_path / "model.pt"
    if content == "module":
        torch.save(torch.nn.Linear(2, 2), path)  # a pickled module: refused by weights_only, not a crash
    else:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=r"model\.pt is not a MatchLite checkpoint .*torch\.load could not read it"):
        load_checkpoint(path)
