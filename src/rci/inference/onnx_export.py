"""Export MatchLite to ONNX for batched serving with ONNX Runtime.

The graph has the INPUT_NAMES inputs with dynamic batch, frame (M, N) and text-token axes, and
the serving outputs only (aux heads are training-only):
    score [B], logits [B,2], embedding [B,d], visual_similarity [B,M,N].
The model's config, model_version and threshold travel in the ONNX metadata, so a runtime needs
nothing but the .onnx file.

Uses the TorchScript exporter (`dynamo=False`): the dynamo exporter needs `onnxscript`, which
is not a dependency. fp16 graphs are made with ONNX Runtime's float16 converter, keeping fp32
inputs and outputs so callers feed the same arrays either way.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from rci.inference.matchlite import INPUT_NAMES, MatchLite, MatchLiteConfig
from rci.core.errors import ModelError
from rci.core.logs import get_logger

log = get_logger(__name__)

OUTPUT_NAMES = ("score", "logits", "embedding", "visual_similarity")
MIN_OPSET = 17  # LayerNormalization is a single op from 17 on
# ONNX metadata_props keys
META_CONFIG, META_VERSION = "matchlite_config", "model_version"
META_THRESHOLD, META_PRECISION = "threshold", "precision"


class ExportError(ModelError):
    """The exported graph is invalid or disagrees with the torch model."""


class _ServingGraph(nn.Module):
    """Positional tensors in, serving outputs out: the shape torch.onnx wants."""

    def __init__(self, model: MatchLite) -> None:
        super().__init__()
        self.model = model

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(dict(zip(INPUT_NAMES, tensors, strict=True)))
        return out.score, out.logits, out.embedding, out.visual_similarity


def _cpu_fp32_copy(model: MatchLite) -> MatchLite:
    """Export and parity work on a copy: the caller's model keeps its device, dtype and mode."""
    return copy.deepcopy(model).cpu().float().eval()


def _dynamic_axes() -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    for side in ("q", "c"):
        frames, tokens = f"{side}_frames", f"{side}_tokens"
        axes |= {
            f"{side}_visual": {0: "batch", 1: frames},
            f"{side}_visual_mask": {0: "batch", 1: frames},
            f"{side}_audio": {0: "batch"},
            f"{side}_has_audio": {0: "batch"},
            f"{side}_text": {0: "batch", 1: tokens},
            f"{side}_text_mask": {0: "batch", 1: tokens},
        }
    axes |= {
        "audio_map": {0: "batch", 1: "q_frames", 2: "c_frames"},
        "score": {0: "batch"},
        "logits": {0: "batch"},
        "embedding": {0: "batch"},
        "visual_similarity": {0: "batch", 1: "q_frames", 2: "c_frames"},
    }
    return axes


def example_inputs(
    config: MatchLiteConfig,
    batch: int = 2,
    frames: tuple[int, int] = (5, 7),
    tokens: tuple[int, int] = (6, 4),
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random batch with padding and a missing modality, in INPUT_NAMES order.

    Distinct sizes per axis so the exporter cannot mistake one dynamic axis for another.
    """
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for side, m, length in (("q", frames[0], tokens[0]), ("c", frames[1], tokens[1])):
        visual_mask = np.ones((batch, m), bool)
        visual_mask[0, max(1, m - 2) :] = False  # padded frames (keeping at least one real)
        text_mask = np.ones((batch, length), bool)
        text_mask[-1, :] = False  # one video without text
        visual = rng.normal(size=(batch, m, config.visual_dim)).astype(np.float32) * visual_mask[..., None]
        text = rng.normal(size=(batch, length, config.text_dim)).astype(np.float32) * text_mask[..., None]
        arrays |= {
            f"{side}_visual": visual,
            f"{side}_visual_mask": visual_mask,
            f"{side}_audio": rng.normal(size=(batch, config.audio_dim)).astype(np.float32),
            f"{side}_has_audio": np.arange(batch) % 2 == 0,  # every other video without audio
            f"{side}_text": text,
            f"{side}_text_mask": text_mask,
        }
    grid = arrays["q_visual_mask"][:, :, None] & arrays["c_visual_mask"][:, None, :]
    both_audio = (arrays["q_has_audio"] & arrays["c_has_audio"])[:, None, None]
    arrays["audio_map"] = (rng.uniform(-1, 1, size=grid.shape) * grid * both_audio).astype(np.float32)
    return {name: arrays[name] for name in INPUT_NAMES}


def export_onnx(
    model: MatchLite,
    path: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    opset: int = MIN_OPSET,
    fp16: bool = False,
) -> Path:
    """Export `model` (traced on a CPU fp32 eval copy) to `path`; checks the graph; returns the path.

    meta: model_version / threshold to embed (as returned by load_checkpoint).
    fp16: convert weights and compute to float16 (for the CUDA execution provider); inputs and
    outputs stay float32.
    """
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} < {MIN_OPSET}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _cpu_fp32_copy(model)
    inputs = tuple(torch.from_numpy(a) for a in example_inputs(model.config).values())
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            _ServingGraph(model),
            inputs,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=_dynamic_axes(),
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    graph = onnx.load(str(path))
    if fp16:
        graph = _to_fp16(graph)
    _set_metadata(graph, model.config, meta or {}, "fp16" if fp16 else "fp32")
    onnx.save(graph, str(path))
    check_onnx(path)
    log.info("onnx exported", path=str(path), opset=opset, precision="fp16" if fp16 else "fp32")
    return path


def _to_fp16(graph: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    graph = convert_float_to_float16(graph, keep_io_types=True)
    # the converter appends the fp32->fp16 input casts at the end of the node list
    OnnxModel(graph).topological_sort(is_deterministic=True)
    return graph


def _set_metadata(graph: onnx.ModelProto, config: MatchLiteConfig, meta: dict[str, Any], precision: str) -> None:
    values = {
        META_CONFIG: json.dumps(config.to_dict()),
        META_VERSION: str(meta.get("model_version", "unversioned")),
        META_THRESHOLD: repr(float(meta.get("threshold", 0.5))),
        META_PRECISION: precision,
    }
    del graph.metadata_props[:]
    for key, value in values.items():
        graph.metadata_props.add(key=key, value=value)


def check_onnx(path: str | Path) -> None:
    """onnx.checker with full shape inference; raises ExportError."""
    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{path}: invalid ONNX graph: {exc}") from exc


def read_metadata(path_or_session: str | Path | ort.InferenceSession) -> tuple[MatchLiteConfig, dict[str, Any]]:
    """(config, {"model_version", "threshold", "precision"}) embedded by export_onnx."""
    if isinstance(path_or_session, ort.InferenceSession):
        props = path_or_session.get_modelmeta().custom_metadata_map
    else:
        props = {p.key: p.value for p in onnx.load(str(path_or_session), load_external_data=False).metadata_props}
    if META_CONFIG not in props:
        raise ModelError("ONNX file has no MatchLite metadata: export it with `rci export`")
    config = MatchLiteConfig.from_dict(json.loads(props[META_CONFIG]))
    meta = {
        "model_version": props.get(META_VERSION, "unversioned"),
        "threshold": float(props.get(META_THRESHOLD, 0.5)),
        "precision": props.get(META_PRECISION, "fp32"),
    }
    return config, meta


def onnx_parity(model: MatchLite, path: str | Path, inputs: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Max |torch - onnxruntime(CPU)| per output on `inputs` (default: example_inputs)."""
    model = _cpu_fp32_copy(model)
    if inputs is None:  # sizes unlike the ones traced at export, to exercise the dynamic axes
        inputs = example_inputs(model.config, batch=3, frames=(6, 9), tokens=(5, 8), seed=1)
    with torch.no_grad():
        expected = _ServingGraph(model)(*(torch.from_numpy(inputs[n]) for n in INPUT_NAMES))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    got = session.run(list(OUTPUT_NAMES), {k: v for k, v in inputs.items() if k in wanted})
    return {
        name: float(np.abs(e.numpy() - g).max()) for name, e, g in zip(OUTPUT_NAMES, expected, got, strict=True)
    }


def verify_parity(model: MatchLite, path: str | Path, atol: float = 1e-4) -> dict[str, float]:
    """Raise ExportError unless every output matches torch within `atol`; returns the differences."""
    diffs = onnx_parity(model, path)
    worst = max(diffs.values())
    if not np.isfinite(worst) or worst > atol:
        raise ExportError(f"{path}: ONNX Runtime differs from torch by {worst:.3g} > {atol:g}: {diffs}")
    return diffs


def export_and_verify(
    model: MatchLite,
    path: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    opset: int = MIN_OPSET,
    fp16: bool = False,
) -> dict[str, float]:
    """The gate every served export passes: export, onnx.checker, then ONNX Runtime against torch.

    fp32 must match torch within 1e-4 (ExportError otherwise); fp16 differences are returned, not
    enforced (half precision drifts). Returns max |onnx - torch| per output.
    """
    export_onnx(model, path, meta=meta, opset=opset, fp16=fp16)
    return onnx_parity(model, path) if fp16 else verify_parity(model, path)
