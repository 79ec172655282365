"""pHash: the 64-bit DCT perceptual hash, in numpy alone (no scipy, no imagehash).

    hashes = phash(frames)            # uint8 [N, H, W, 3] RGB -> uint64 [N]
    similarity(a, b)                  # [len(a), len(b)] 1 - Hamming / 64, in [0, 1]

The classic recipe: luma, area-resized to 32 x 32, a 2-D DCT-II, the 8 x 8 lowest frequencies;
bit k is set when coefficient k exceeds the median of the 63 non-DC ones. Unrelated pictures
agree on about half of the bits, a re-encoded copy on nearly all of them.
"""

from __future__ import annotations

import functools

import numpy as np

SIDE = 32  # the image is reduced to SIDE x SIDE before the DCT
LOW = 8  # the LOW x LOW lowest frequencies make the 64 bits
BITS = LOW * LOW


@functools.cache
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II as an [n, n] matrix: y = C @ x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    c[0] /= np.sqrt(2.0)
    return c


def _area_resize(gray: np.ndarray, side: int) -> np.ndarray:
    """[N, H, W] -> [N, side, side] by averaging the pixels each output cell covers."""
    n, h, w = gray.shape
    if h % side == 0 and w % side == 0:  # whole blocks (224 = 7 x 32): a reshape
        return gray.reshape(n, side, h // side, side, w // side).mean(axis=(2, 4))
    rows = np.minimum((np.arange(h) * side) // h, side - 1)
    cols = np.minimum((np.arange(w) * side) // w, side - 1)
    out = np.zeros((n, side, side), dtype=np.float64)
    np.add.at(out, (slice(None), rows[:, None], cols[None, :]), gray)
    counts = np.bincount(rows, minlength=side)[:, None] * np.bincount(cols, minlength=side)[None, :]
    return out / counts


def phash(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB frames [N, H, W, 3] (or one [H, W, 3]) -> uint64 [N] perceptual hashes."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[1:3]) < SIDE:
        raise ValueError(f"expected RGB frames [N, H>={SIDE}, W>={SIDE}, 3], got {frames.shape}")
    gray = frames[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # [N, H, W]
    small = _area_resize(gray, SIDE)
    c = _dct_matrix(SIDE)
    low = np.einsum("ki,nij,lj->nkl", c, small, c)[:, :LOW, :LOW].reshape(len(frames), BITS)
    median = np.median(low[:, 1:], axis=1, keepdims=True)  # the DC term would dominate the median
    bits = (low > median).astype(np.uint64)
    return (bits << np.arange(BITS, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] differing bits between two uint64 hash arrays."""
    return np.bitwise_count(np.bitwise_xor(a[:, None], b[None, :])).astype(np.int64)


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] 1 - Hamming / 64: 1 for equal hashes, about 0.5 for unrelated pictures."""
    return 1.0 - hamming(a, b) / BITS
