"""Building the default encoder directories: a kept visual directory must be the kind asked for."""

from __future__ import annotations

import pytest

from rci.core.errors import ModelError
from rci.inference.encoders.bundle import build_default_encoders, encoders_dir
from rci.inference.encoders.copy_detection import CopyDetectionEncoder
from rci.inference.encoders.visual import SwinVisualEncoder


def test_a_kept_visual_directory_of_another_kind_is_refused_not_served(tmp_path):
    swin = build_default_encoders(tmp_path, "small", device="cpu", visual="swin")
    assert isinstance(swin.visual, SwinVisualEncoder)
    # asking the same model dir for SSCD must not quietly serve the Swin it already holds
    with pytest.raises(ModelError, match="remove that directory"):
        build_default_encoders(tmp_path, "small", device="cpu", visual="sscd")
    assert isinstance(build_default_encoders(tmp_path, "small", device="cpu", visual="swin").visual, SwinVisualEncoder)

    (encoders_dir(tmp_path) / "visual" / "encoder.json").unlink()  # removed as the message says: rebuilt as asked
    sscd = build_default_encoders(tmp_path, "small", device="cpu", visual="sscd")
    assert isinstance(sscd.visual, CopyDetectionEncoder)
    with pytest.raises(ModelError, match="sscd-distilled"):
        build_default_encoders(tmp_path, "small", device="cpu", visual="sscd-distilled")
