"""Frozen feature encoders (DESIGN.md "Features"): visual Swin, audio Whisper, text MiniLM.

Interfaces live in `base` (one Protocol per modality), implementations in `visual`, `audio`,
`text`; `checkpoint` is the on-disk layout, `bundle` groups the three under a model directory and
`extract` turns decoded media into `VideoFeatures`.
"""

from rci.inference.encoders.base import (
    AudioEncoder,
    Encoder,
    EncoderInputError,
    TextEncoder,
    VisualEncoder,
    pick_device,
)
from rci.inference.encoders.bundle import EncoderBundle, build_default_encoders, encoders_dir
from rci.inference.encoders.checkpoint import is_encoder_dir, load_encoder, save_encoder
from rci.inference.encoders.extract import EncoderInput, FeatureExtractor

__all__ = [
    "AudioEncoder",
    "Encoder",
    "EncoderBundle",
    "EncoderInput",
    "EncoderInputError",
    "FeatureExtractor",
    "TextEncoder",
    "VisualEncoder",
    "build_default_encoders",
    "encoders_dir",
    "is_encoder_dir",
    "load_encoder",
    "pick_device",
    "save_encoder",
]
