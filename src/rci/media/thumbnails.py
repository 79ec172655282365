"""The frames a moderator sees: one small JPEG contact sheet per video, made from the frames the encoders saw.

The worker already holds every sampled frame (1 fps, 224x224 centre crops, rci.media.decode) when it
encodes a video; halving them and writing one sheet costs ~5 ms for 32 frames and one object per video
(figures in benchmarks/RESULTS.md, "Review page"), where fetching and decoding the media again for a
review would cost the full decode and need the media still there. The review page cuts single frames
out of the sheet (`FrameSheet`).

Layout: frame s (second s) is the tile at row s // COLUMNS, column s % COLUMNS, TILE x TILE pixels;
only real frames are drawn, so a sheet of n frames is min(n, COLUMNS) tiles wide and ceil(n / COLUMNS) high,
and n is written in the JPEG's comment (`frames=<n>`), so the empty tiles of a last row are not served as frames.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

TILE = 112  # half of the 224 px the encoders see: enough to recognise a picture, ~3-5 kB a frame
COLUMNS = 8
QUALITY = 80


def contact_sheet(frames: np.ndarray, mask: np.ndarray) -> bytes | None:
    """frames [M, H, W, 3] uint8 and mask [M] bool (real frames first) -> JPEG bytes; None without frames."""
    count = int(np.asarray(mask, dtype=bool).sum())
    if count == 0:
        return None
    rows = -(-count // COLUMNS)
    sheet = Image.new("RGB", (min(count, COLUMNS) * TILE, rows * TILE))
    for second in range(count):
        sheet.paste(_tile(Image.fromarray(np.ascontiguousarray(frames[second]))),
                    ((second % COLUMNS) * TILE, (second // COLUMNS) * TILE))
    out = io.BytesIO()
    sheet.save(out, format="JPEG", quality=QUALITY, comment=f"frames={count}")
    return out.getvalue()


def _tile(frame: Image.Image) -> Image.Image:
    """A box-filtered reduction (224 -> 112 by 2x2 means: ~4x faster than resampling, and smoother)."""
    factor = max(1, min(frame.size) // TILE)
    small = frame.reduce(factor) if factor > 1 else frame
    return small if small.size == (TILE, TILE) else small.resize((TILE, TILE), Image.Resampling.BILINEAR)


class FrameSheet:
    """A stored sheet, decoded once; `frame(second)` cuts one frame out of it."""

    def __init__(self, sheet: bytes) -> None:
        with Image.open(io.BytesIO(sheet)) as image:
            self.frames = _frame_count(image)
            self._image = image.convert("RGB")  # decoded now: the file object closes here

    def frame(self, second: int) -> bytes | None:
        """The JPEG of second `second`'s frame; None when the sheet has no such frame."""
        if not 0 <= second < self.frames:
            return None
        row, column = divmod(second, COLUMNS)
        left, top = column * TILE, row * TILE
        out = io.BytesIO()
        self._image.crop((left, top, left + TILE, top + TILE)).save(out, format="JPEG", quality=QUALITY)
        return out.getvalue()


def _frame_count(image: Image.Image) -> int:
    """n from the sheet's comment; a sheet without one counts every tile."""
    comment = image.info.get("comment", b"")
    text = comment.decode("ascii", "replace") if isinstance(comment, bytes) else str(comment)
    if text.startswith("frames=") and text[7:].isdigit():
        return int(text[7:])
    return (image.width // TILE) * (image.height // TILE)
