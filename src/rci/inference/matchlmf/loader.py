"""MatchLMF checkpoints: one file holding the config (hyper-parameters), the weights and a meta dict.
All of the teacher's file I/O is here, never in the model."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from rci.inference.matchlmf.config import MatchLMFConfig
from rci.inference.matchlmf.model import MatchLMF
from rci.inference.matchlmf.teacher import MatchLMFTeacher

FORMAT = "matchlmf/1"  # the checkpoint's kind and layout version


def matchlmf_version(model: MatchLMF) -> str:
    """matchlmf-<digest of the weights>: names the teacher in its scores and in a distilled student's meta."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"matchlmf-{digest.hexdigest()[:12]}"


def save_matchlmf(path: str | Path, model: MatchLMF, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Weights, config and meta in one file (written atomically); returns the meta."""
    meta = {"format": FORMAT, "model_version": matchlmf_version(model), **(extra or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), "meta": meta}, tmp)
    tmp.replace(path)
    return meta


def load_matchlmf(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[MatchLMF, dict[str, Any]]:
    """The model (eval mode) and meta that save_matchlmf wrote; ValueError for another kind of file."""
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("meta", {}).get("format") != FORMAT:
        raise ValueError(f"{path} is not a MatchLMF checkpoint ({FORMAT})")
    model = MatchLMF(MatchLMFConfig.from_dict(payload["config"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload["meta"]


def load_matchlmf_teacher(path: str | Path, device: torch.device | str = "cpu") -> MatchLMFTeacher:
    """The installed teacher: its meta must name the threshold and the encoder version it was trained on."""
    model, meta = load_matchlmf(path, map_location="cpu")
    missing = [key for key in ("threshold", "encoder_version") if key not in meta]
    if missing:
        raise ValueError(f"{path}: the teacher's meta lacks {missing} (not installed by rci.training.matchlmf)")
    return MatchLMFTeacher(model, meta["model_version"], float(meta["threshold"]), meta["encoder_version"], device)
