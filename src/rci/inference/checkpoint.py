"""MatchLite checkpoints: weights, the config they were built with, and serving metadata in one file.

Layout (a plain dict, loadable with `torch.load(weights_only=True)`, so no pickled code):
    {"format": 1, "kind": "matchlite", "config": MatchLiteConfig.to_dict(),
     "state_dict": ..., "meta": {"model_version": str, "threshold": float, ...caller extras}}
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from rci.inference.matchlite import MatchLite, MatchLiteConfig
from rci.core.errors import ModelError
from rci.core.logs import get_logger

log = get_logger(__name__)

FORMAT_VERSION = 1
DEFAULT_THRESHOLD = 0.5  # operating point until one is chosen on validation data


def weights_digest(model: MatchLite) -> str:
    """Short content hash of the weights and the config: a default model_version that changes when either
    does (the config carries the served score's calibration and limits: new ones serve other scores)."""
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def save_checkpoint(path: str | Path, model: MatchLite, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write model + config + meta to `path`; returns the meta written.

    `extra` is stored as meta; `model_version` defaults to "matchlite-<weights digest>" and
    `threshold` to DEFAULT_THRESHOLD when the caller gives none.
    """
    meta = dict(extra or {})
    meta.setdefault("model_version", f"matchlite-{weights_digest(model)}")
    meta["threshold"] = float(meta.get("threshold", DEFAULT_THRESHOLD))
    payload = {
        "format": FORMAT_VERSION,
        "kind": "matchlite",
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a reader never sees a half-written checkpoint
    log.info("checkpoint saved", path=str(path), model_version=meta["model_version"])
    return meta


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[MatchLite, dict[str, Any]]:
    """-> (model in eval mode, meta). Raises ModelError when the file is missing or inconsistent."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as exc:
        raise ModelError(f"cannot read MatchLite checkpoint {path}: {exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.load of a file that is no checkpoint raises anything (KeyError, UnpicklingError, RuntimeError...)
        raise ModelError(
            f"{path} is not a MatchLite checkpoint (a .pt written by rci train or rci distill): torch.load "
            f"could not read it ({type(exc).__name__})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("kind") != "matchlite":
        raise ModelError(f"{path} is not a MatchLite checkpoint (a .pt written by rci train or rci distill)")
    if payload.get("format") != FORMAT_VERSION:
        raise ModelError(f"{path}: checkpoint format {payload.get('format')} unsupported (expected {FORMAT_VERSION})")
    try:
        config = MatchLiteConfig.from_dict(payload["config"])
        model = MatchLite(config)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: weights do not match their config: {exc}") from exc
    return model.eval(), dict(payload["meta"])
