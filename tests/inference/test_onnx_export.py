"""ONNX export: checker, fp32 parity with torch, dynamic axes, metadata, fp16, the `rci export` CLI."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import structlog
import torch
from typer.testing import CliRunner

from rci.inference.matchlite import INPUT_NAMES, MatchLite, MatchLiteConfig
from rci.inference.onnx_export import (
    OUTPUT_NAMES,
    ExportError,
    example_inputs,
    export_onnx,
    onnx_parity,
    read_metadata,
    verify_parity,
)
from tests.inference.matchlite_fakes import small_checkpoint, small_model
from rci.cli.main import app


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = small_model(seed=5)
    meta = {"model_version": "v1", "threshold": 0.3}
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "m.onnx", meta=meta)
    return model, path


def test_export_passes_full_checker_and_fp32_parity(exported):
    model, path = exported
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    diffs = verify_parity(model, path, atol=1e-4)
    assert set(diffs) == set(OUTPUT_NAMES) and max(diffs.values()) <= 1e-4


@pytest.mark.parametrize("batch,frames,tokens", [(1, (1, 1), (1, 1)), (4, (11, 3), (64, 2)), (2, (32, 32), (9, 9))])
def test_dynamic_batch_frame_and_token_axes(exported, batch, frames, tokens):
    model, path = exported
    inputs = example_inputs(model.config, batch=batch, frames=frames, tokens=tokens, seed=batch)
    diffs = onnx_parity(model, path, inputs)
    assert max(diffs.values()) <= 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    used = {i.name for i in session.get_inputs()}  # inputs the configuration does not read are pruned
    got = session.run(["visual_similarity"], {k: v for k, v in inputs.items() if k in used})[0]
    assert got.shape == (batch, *frames)


def test_graph_declares_symbolic_axes_and_serving_outputs_only(exported):
    _, path = exported
    graph = onnx.load(str(path)).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims["q_visual"] == ["batch", "q_frames", 128]
    assert dims["c_text_mask"] == ["batch", "c_tokens"]
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)  # no aux heads


def test_metadata_carries_config_version_and_threshold(exported):
    model, path = exported
    config, meta = read_metadata(path)
    assert config == model.config
    assert meta == {"model_version": "v1", "threshold": 0.3, "precision": "fp32"}


def test_visual_only_ablation_exports_with_pruned_inputs(tmp_path):
    model = small_model(use_audio=False, use_text=False)
    path = export_onnx(model, tmp_path / "v.onnx")
    names = [i.name for i in onnx.load(str(path)).graph.input]
    assert set(names) < set(INPUT_NAMES) and "q_visual" in names and "q_audio" not in names
    verify_parity(model, path)


def test_fp16_export_checks_and_roughly_agrees(tmp_path):
    model = small_model(seed=5)
    path = export_onnx(model, tmp_path / "m16.onnx", fp16=True)
    graph = onnx.load(str(path))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O kept
    assert read_metadata(path)[1]["precision"] == "fp16"
    diffs = onnx_parity(model, path)
    assert diffs["score"] < 1e-2 and all(np.isfinite(list(diffs.values())))


@pytest.mark.slow
def test_paper_config_exports_with_parity(tmp_path):
    model = MatchLite(MatchLiteConfig.paper()).eval()
    verify_parity(model, export_onnx(model, tmp_path / "paper.onnx"))


def test_export_leaves_the_callers_model_alone(tmp_path):
    model = small_model().train()
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training


def test_parity_failure_raises(exported, tmp_path):
    _, path = exported
    other = small_model(seed=6)  # different weights than the exported graph
    with pytest.raises(ExportError, match="differs from torch"):
        verify_parity(other, path)


def test_opset_below_17_is_refused(tmp_path):
    with pytest.raises(ExportError, match="opset"):
        export_onnx(small_model(), tmp_path / "m.onnx", opset=13)


@pytest.fixture
def cli():
    """CliRunner; the CLI configures logging onto the runner's stderr, which closes: reset it after."""
    yield CliRunner()
    structlog.reset_defaults()


def test_cli_export_writes_a_verified_model(tmp_path, cli):
    checkpoint = small_checkpoint(tmp_path / "m.pt", seed=2)
    out = tmp_path / "out" / "m.onnx"
    result = cli.invoke(app, ["export", "--checkpoint", str(checkpoint), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "model_version=test-small" in result.output
    config, meta = read_metadata(out)
    assert meta["threshold"] == 0.6 and config.resnet_layers == (1, 1, 1, 1)


def test_cli_export_reports_a_bad_checkpoint(tmp_path, cli):
    bad = tmp_path / "bad.pt"
    torch.save({"nope": 1}, bad)
    result = cli.invoke(app, ["export", "--checkpoint", str(bad), "--out", str(tmp_path / "x.onnx")])
    assert result.exit_code == 1
    assert not (tmp_path / "x.onnx").exists()
