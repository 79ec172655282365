"""The encoder interfaces, one per modality, and what every frozen encoder shares.

Callers (the feature extractor, the worker, benchmarks) depend on the Protocols below, never on
a concrete model class: a Swin visual encoder and a future ONNX one are interchangeable.
Every encoder is frozen (eval mode, no parameter wants a gradient, runs under
`torch.inference_mode`), batches its input, and carries a `version` that identifies its
architecture *and* weights; that string goes into the feature-cache key and `model_version`.

Determinism: the same call on the same device gives bit-identical outputs. Grouping inputs into
different batches (another `batch_size`, or other videos encoded alongside) may change the last
bits (float summation order in the kernels), never more than float32 rounding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, fields, is_dataclass
from functools import cached_property
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch
from torch import nn

from rci.core.errors import ConfigError, ModelError, RCIError

C = TypeVar("C")

DevicePref = Literal["auto", "cpu", "cuda"]
Modality = Literal["visual", "audio", "text"]


class EncoderInputError(RCIError, ValueError):
    """An encoder was given an array of the wrong shape or dtype (a caller bug, not bad media)."""


def pick_device(pref: DevicePref | str = "auto") -> torch.device:
    """`auto` = CUDA when present else CPU; asking for `cuda` on a machine without one is a config error."""
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("RCI_DEVICE=cuda but no CUDA device is available")
        return torch.device("cuda")
    raise ConfigError(f"device must be auto, cpu or cuda, not {pref!r}")


@runtime_checkable
class Encoder(Protocol):
    """What every frozen encoder exposes, whatever its modality."""

    modality: ClassVar[Modality]

    @property
    def version(self) -> str:
        """Architecture + weights identity, e.g. `visual:swin32x113@112-3a9f0c12b4d1`."""
        ...

    @property
    def output_dim(self) -> int:
        """Width of one output vector (per frame, per clip or per token)."""
        ...

    @property
    def device(self) -> torch.device: ...


@runtime_checkable
class VisualEncoder(Encoder, Protocol):
    """`views` descriptors per frame, side by side in output_dim (1: the centre square; 2: it and the whole
    frame, `encode_wholes`, see rci.inference.encoders.copy_detection)."""

    @property
    def views(self) -> int: ...

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB frames [N, 224, 224, 3] -> float32 [N, output_dim // views], each row L2-normalised."""
        ...

    def encode_wholes(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB whole frames [N, h, w, 3] -> float32 [N, output_dim // views] (only when views == 2)."""
        ...


@runtime_checkable
class AudioEncoder(Encoder, Protocol):
    def encode_log_mel(self, log_mel: np.ndarray) -> np.ndarray:
        """float32 Whisper log-mel [B, 80, 3000] -> float32 [B, output_dim] (one vector per clip)."""
        ...


@runtime_checkable
class TextEncoder(Encoder, Protocol):
    @property
    def max_tokens(self) -> int: ...

    def encode_texts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """B strings -> (float32 [B, max_tokens, output_dim] token embeddings, bool [B, max_tokens] mask).

        Padding rows are zero; an empty (or all-whitespace) string gives an all-False mask.
        """
        ...


# ----------------------------------------------------------------------------------------------
# shared by the concrete encoders


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode (no dropout, no drop-path, no layer-drop) and no parameter asks for a gradient."""
    module.eval()
    module.requires_grad_(False)
    return module


def weights_digest(module: nn.Module, config: Any, extra: bytes = b"") -> str:
    """12 hex chars of sha256 over the config and every tensor in the state dict (sorted by name).

    Two encoders with the same digest compute the same function, so the digest is what makes
    cached features reusable and what changes when weights are retrained.
    """
    h = hashlib.sha256()
    cfg = asdict(config) if is_dataclass(config) else config
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(extra)
    return h.hexdigest()[:12]


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild a config dataclass from its JSON form (JSON lists back to tuples)."""
    unknown = set(data) - {f.name for f in fields(cls)}  # type: ignore[arg-type]
    if unknown:
        raise ModelError(f"{cls.__name__}: unknown fields {sorted(unknown)} (saved by a newer version?)")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def resize_square_uint8(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N,H,W,3] -> uint8 [N,size,size,3], bilinear and antialiased (unchanged when already that size)."""
    if len(frames) == 0 or frames.shape[1:3] == (size, size):
        return np.ascontiguousarray(frames)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def batches(n: int, batch_size: int) -> Iterator[slice]:
    """Slices covering range(n) in chunks of at most batch_size."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


class FrozenEncoder:
    """Common runtime of the concrete encoders: frozen module on a device, batch size, version.

    Subclasses set `modality` and add their `encode_*` method; `config` is the module's dataclass
    and has a short `tag` naming the architecture. The module itself is a plain `nn.Module` that
    stays trainable outside this wrapper (src/rci/training/sscd.py trains one).
    """

    modality: ClassVar[Modality]

    def __init__(self, module: nn.Module, config: Any, device: DevicePref | str = "auto", batch_size: int = 32):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.config = config
        self.batch_size = batch_size
        self._device = pick_device(device)
        self.module = freeze(module).to(self._device)

    @property
    def device(self) -> torch.device:
        return self._device

    @cached_property
    def version(self) -> str:
        return f"{self.modality}:{self.config.tag}-{weights_digest(self.module, self.config, self._digest_extra())}"

    def _digest_extra(self) -> bytes:
        """Anything besides weights and config that changes outputs (the text tokenizer)."""
        return b""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(version={self.version!r}, device={self.device})"
