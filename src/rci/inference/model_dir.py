"""The model directory (RCI_MODEL_DIR): one layout that training writes and serving reads.

    <model_dir>/encoders/{visual,audio,text}/   frozen encoders (rci.inference.encoders.bundle)
    <model_dir>/matchlite/model.pt              MatchLite checkpoint (config + weights + meta)
    <model_dir>/matchlite/model.onnx            its ONNX export, what the worker serves
    <model_dir>/matchlm/                        the teacher, for the shadow consumer

`meta` (in the checkpoint and the ONNX metadata) carries `model_version` and the operating
`threshold` chosen on validation data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rci.inference.checkpoint import save_checkpoint
from rci.inference.encoders.bundle import EncoderBundle, build_default_encoders
from rci.inference.matchlite import MatchLite, MatchLiteConfig
from rci.inference.onnx_export import export_and_verify

MATCHLITE_CHECKPOINT = Path("matchlite/model.pt")
MATCHLITE_ONNX = Path("matchlite/model.onnx")
MATCHLM_DIR = Path("matchlm")
MATCHLMF_CHECKPOINT = Path("matchlmf/model.pt")  # the feature-level teacher (rci.inference.matchlmf)


def matchlite_checkpoint(model_dir: Path) -> Path:
    return model_dir / MATCHLITE_CHECKPOINT


def matchlite_onnx(model_dir: Path) -> Path:
    return model_dir / MATCHLITE_ONNX


def matchlm_dir(model_dir: Path) -> Path:
    return model_dir / MATCHLM_DIR


def matchlmf_checkpoint(model_dir: Path) -> Path:
    return model_dir / MATCHLMF_CHECKPOINT


@dataclass(frozen=True)
class PublishedMatchLite:
    meta: dict  # as saved in the checkpoint and the ONNX metadata: model_version, threshold, ...
    onnx_max_abs_diff: float  # worst |ONNX Runtime - torch| over the serving outputs (within the gate's 1e-4)


def publish_matchlite(model_dir: Path, model: MatchLite, meta: dict) -> PublishedMatchLite:
    """Install a MatchLite for serving: checkpoint plus its ONNX export, which passes the same gate as
    `rci export` (onnx.checker, parity with torch) before the worker can load it."""
    meta = save_checkpoint(matchlite_checkpoint(model_dir), model, meta)
    diffs = export_and_verify(model, matchlite_onnx(model_dir), meta=meta)
    return PublishedMatchLite(meta, max(diffs.values()))


def install_untrained_models(model_dir: Path, max_frames: int, seed: int = 0, threshold: float = 0.5) -> dict:
    """Small encoders and a randomly initialised MatchLite: a serving stack for tests and smoke runs.

    Scores from it are finite and deterministic but meaningless; `rci demo` trains instead.
    """
    encoders: EncoderBundle = build_default_encoders(model_dir, "small", seed=seed)
    spec = encoders.feature_spec(max_frames)
    config = MatchLiteConfig.small(**spec.widths())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MatchLite(config).eval()
    return publish_matchlite(model_dir, model, {"threshold": threshold, "model_version": f"matchlite-untrained-{seed}"}).meta
