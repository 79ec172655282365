"""The frames' contact sheet: every real frame kept, in order, cut back out at its second; nothing else served."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from rci.media.thumbnails import COLUMNS, TILE, FrameSheet, contact_sheet


def grey_frames(count: int, padded_to: int = 12) -> tuple[np.ndarray, np.ndarray]:
    frames = np.zeros((padded_to, 224, 224, 3), np.uint8)
    frames[:count] = (20 + 20 * np.arange(count, dtype=np.uint8))[:, None, None, None]
    return frames, np.arange(padded_to) < count


def mean_of(jpeg: bytes) -> float:
    return float(np.asarray(Image.open(io.BytesIO(jpeg))).mean())


def test_every_real_frame_comes_back_at_its_second() -> None:
    frames, mask = grey_frames(10)
    sheet = contact_sheet(frames, mask)
    with Image.open(io.BytesIO(sheet)) as image:
        assert image.size == (COLUMNS * TILE, 2 * TILE)  # 8 + 2 frames: two rows
    frames = FrameSheet(sheet)
    assert frames.frames == 10
    for second in range(10):
        assert abs(mean_of(frames.frame(second)) - (20 + 20 * second)) < 2, second


def test_padding_and_the_empty_tiles_of_the_last_row_are_not_frames() -> None:
    frames, mask = grey_frames(10)
    sheet = FrameSheet(contact_sheet(frames, mask))
    assert sheet.frame(10) is None and sheet.frame(15) is None and sheet.frame(-1) is None
    assert contact_sheet(*grey_frames(0)) is None  # audio only: no sheet


def test_a_sheet_is_small() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(32, 224, 224, 3), dtype=np.uint8)  # noise: JPEG's worst case
    frames[:] = np.repeat(np.repeat(frames[:, ::16, ::16], 16, axis=1), 16, axis=2)  # blocks, like a picture
    sheet = contact_sheet(frames, np.ones(32, bool))
    assert len(sheet) < 32 * 4_000, len(sheet)  # ~1.7 kB a frame measured
