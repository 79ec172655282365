"""One way to open an ONNX Runtime session: CUDA execution provider when asked for and present, else CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import onnxruntime as ort
import torch

from rci.core.errors import ConfigError, ModelError

Device = Literal["auto", "cpu", "cuda"]


def resolve_device(device: Device | str) -> Literal["cpu", "cuda"]:
    """`auto` = CUDA when torch sees a device; asking for `cuda` without one is a configuration error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("RCI_DEVICE=cuda but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, not {device!r}")
    return device  # type: ignore[return-value]


def open_session(
    model: str | Path | bytes, device: Device | str = "auto", intra_op_threads: int = 0, inter_op_threads: int = 0
) -> ort.InferenceSession:
    """An InferenceSession with full graph optimisation; threads 0 = ONNX Runtime's default."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    if resolve_device(device) == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        name = "<bytes>" if isinstance(model, bytes) else str(model)
        raise ModelError(f"cannot load ONNX model {name}: {exc}") from exc


def session_device(session: ort.InferenceSession) -> Literal["cpu", "cuda"]:
    """Where the session really runs (CUDA may be asked for and missing from the installed runtime)."""
    return "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
