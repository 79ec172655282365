"""Audio fingerprints that survive re-uploads: Chromaprint sub-fingerprints and their bit agreement.

Chromaprint (the AcoustID fingerprinter, Debian's libchromaprint through pyacoustid's `chromaprint`
module) turns audio into one 32-bit sub-fingerprint every HOP_S (~0.124 s): each bit compares two
regions of a chroma image, so re-encoding, volume and mild noise flip few bits, while unrelated audio
agrees on about half of them. Two recordings of the same sound, aligned, agree on most bits; a trim
or an offset only moves where they align. A speed change (tempo, pitch kept) stretches the timeline and
flips more bits, but aligned at the right rate the copy still agrees well above chance (0.73-0.97 at
0.87-1.5x, measured on music and speech), so the map tries a few rates.

Everything here is numpy on uint32 arrays:
  fingerprint(pcm)             -> uint32 [T]
  best_alignment(a, b)         -> (agreement in [0, 1], offset of b against a in sub-fingerprints)
  second_similarity(a, b, M, N)-> float32 [M, N] per-second agreement map in [-1, 1], offsets and
                                  speed changes (0.67-1.5x) tolerated
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rci.core.errors import RejectCode
from rci.media.errors import MediaRejected

CHROMAPRINT_RATE = 11_025  # chromaprint resamples to this rate internally
HOP_S = 1365 / CHROMAPRINT_RATE  # frame 4096, overlap 2/3: one sub-fingerprint every 1365 samples
BITS = 32
CHANCE = 0.5  # expected agreement of unrelated audio


class FingerprintError(MediaRejected):
    """Chromaprint refused the decoded audio (silence and short audio are not errors: they give few values)."""

    def __init__(self, detail: str) -> None:
        super().__init__(RejectCode.MEDIA_UNDECODABLE, detail)


def fingerprint(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float samples in [-1, 1] -> uint32 [T] sub-fingerprints (empty for audio under ~3 s)."""
    import chromaprint  # pyacoustid's ctypes binding; loads libchromaprint when first used

    samples = (np.clip(np.asarray(pcm, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2")
    printer = chromaprint.Fingerprinter()
    try:
        printer.start(int(sample_rate), 1)
        printer.feed(samples.tobytes())
        encoded = printer.finish()
        values, _algorithm = chromaprint.decode_fingerprint(encoded)
    except chromaprint.FingerprintError as exc:
        raise FingerprintError(f"chromaprint failed on {len(samples)} samples at {sample_rate} Hz") from exc
    return (np.asarray(values, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)


def agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-position share of equal bits of two equally long uint32 arrays, float32 in [0, 1]."""
    return 1.0 - np.bitwise_count(np.bitwise_xor(a, b)).astype(np.float32) / BITS


@dataclass(frozen=True)
class Alignment:
    agreement: float  # mean share of equal bits over the overlap, in [0, 1]; CHANCE for unrelated audio
    offset: int  # b[k] lines up with a[k + offset]
    overlap: int  # sub-fingerprints compared

    @property
    def offset_s(self) -> float:
        return self.offset * HOP_S


def best_alignment(a: np.ndarray, b: np.ndarray, min_overlap_s: float = 2.0) -> Alignment:
    """The offset at which `b` agrees most with `a`, over every offset leaving `min_overlap_s` of overlap.

    Returns agreement CHANCE (and overlap 0) when either side is too short to compare.
    """
    min_overlap = max(1, int(round(min_overlap_s / HOP_S)))
    if len(a) < min_overlap or len(b) < min_overlap:
        return Alignment(CHANCE, 0, 0)
    best = Alignment(-1.0, 0, 0)
    for offset in range(-(len(b) - min_overlap), len(a) - min_overlap + 1):
        lo_a, lo_b = max(0, offset), max(0, -offset)
        n = min(len(a) - lo_a, len(b) - lo_b)
        score = float(agreement(a[lo_a : lo_a + n], b[lo_b : lo_b + n]).mean())
        if score > best.agreement:
            best = Alignment(score, offset, n)
    return best


def _second_of(count: int) -> np.ndarray:
    """[count] the whole second each sub-fingerprint starts in."""
    return np.floor(np.arange(count) * HOP_S).astype(np.int64)


# Playback speeds tried between a query and a candidate (query = candidate played `speed` times faster):
# re-uploads are sped up or slowed down by 0.75-1.5x; neighbouring grid points cover the speeds between.
SPEEDS = (0.67, 0.8, 1.0, 1.25, 1.5)


def second_similarity(
    a: np.ndarray, b: np.ndarray, m: int, n: int, tolerance_s: float = 0.5, speeds: tuple[float, ...] = SPEEDS
) -> np.ndarray:
    """[m, n] float32: how well second i of `a` (the query) matches second j of `b`, in [-1, 1] (0 = chance).

    For each playback speed, b is resampled to a's time base; cell (i, j) then aligns a's
    sub-fingerprints of second i with b's at the offset that puts b's second j there, shifted by up
    to `tolerance_s` either way (trims and offsets rarely fall on whole seconds), and keeps the best
    mean agreement over shifts and speeds, rescaled so that chance is 0 and identical bits are 1.
    Cells without sub-fingerprints on either side stay 0, as do padded rows and columns.
    """
    best = np.full((m, n), -np.inf)
    for speed in speeds:
        best = np.maximum(best, _best_agreement_at_speed(a, b, m, n, tolerance_s, speed))
    return np.where(np.isinf(best), 0.0, np.clip((best - CHANCE) / (1.0 - CHANCE), -1.0, 1.0)).astype(np.float32)


def _best_agreement_at_speed(a: np.ndarray, b: np.ndarray, m: int, n: int, tolerance_s: float, speed: float) -> np.ndarray:
    """[m, n] best mean agreement (-inf: no overlap) with b played `speed` times faster."""
    best = np.full((m, n), -np.inf)
    shift = int(round(tolerance_s / HOP_S))
    a = a[: int(np.ceil(m / HOP_S))]  # only the seconds the map has rows for
    b = b[np.rint(np.arange(int(len(b) / speed)) * speed).astype(np.int64)]  # b in a's time base
    n_here = int(np.ceil(n / speed))  # b's n seconds last n / speed seconds here
    b = b[: int(np.ceil(n_here / HOP_S)) + shift]
    if len(a) == 0 or len(b) == 0:
        return best
    per_diagonal = _second_diagonal_means(a, b)  # [seconds of a, diagonals]: mean agreement, -inf = no overlap
    rows = min(m, per_diagonal.shape[0])
    i, j = np.meshgrid(np.arange(rows), np.arange(n), indexing="ij")
    centre = np.rint((j / speed - i) / HOP_S).astype(np.int64) + len(a)  # diagonal putting b's second j at i
    for step in range(-shift, shift + 1):  # the best diagonal within the tolerance
        column = centre + step
        inside = (column >= 0) & (column < per_diagonal.shape[1])
        values = np.where(inside, per_diagonal[i, np.clip(column, 0, per_diagonal.shape[1] - 1)], -np.inf)
        best[:rows] = np.maximum(best[:rows], values)
    return best


def _second_diagonal_means(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[S, len(a) + len(b) + 1]: mean agreement of a[k] with b[k + d] over the k in each second of a,
    for every diagonal d in [-len(a), len(b)] (column d + len(a)); -inf where no k of that second has a b[k + d]."""
    diagonals = np.arange(-len(a), len(b) + 1)
    idx_b = np.arange(len(a))[:, None] + diagonals[None, :]  # [k, diagonal]
    valid = (idx_b >= 0) & (idx_b < len(b))
    agree = np.where(valid, agreement(a[:, None], b[np.clip(idx_b, 0, len(b) - 1)]), 0.0)
    starts = np.flatnonzero(np.diff(_second_of(len(a)), prepend=-1))  # first k of each second (all seconds occur)
    sums = np.add.reduceat(agree, starts, axis=0)
    counts = np.add.reduceat(valid.astype(np.float32), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)
