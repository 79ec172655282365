"""The evidence a moderator looks at: how similar every second of a video is to every second of its candidate.

Visual: S[i, j] = cosine(query frame i, candidate frame j) over the frame embeddings the worker computed (1 frame a
second). Audio: A[i, j] = agreement of the Chromaprint sub-fingerprints of query second i and candidate second j
at their best alignment (rci.media.fingerprint.second_similarity: 0 is chance, 1 identical bits; offsets and
speed changes tolerated), the map MatchLite reads. A copied segment is a bright diagonal; a trimmed copy's
diagonal starts at its offset into the original. Pure numpy, then one PNG drawn with Pillow (`heatmap_png`).

`aligned_seconds` picks the pairs of seconds whose frames the page shows side by side: points along each
matched segment, the query's second and the candidate's second it was matched to.
"""

from __future__ import annotations

import functools
import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rci.inference.features import VideoFeatures, real_frame_similarity
from rci.media.fingerprint import HOP_S, second_similarity

MAX_AUDIO_SECONDS = 120  # rows and columns of the audio map (its cost grows with their product)
MAP_TITLES = {"visual": "visual similarity per second", "audio": "audio fingerprint agreement per second"}  # the captions


def audio_similarity(query: VideoFeatures, candidate: VideoFeatures) -> np.ndarray:
    """[query seconds, candidate seconds] fingerprint agreement in [-1, 1]; empty when either has no fingerprint."""
    a, b = query.audio_fingerprint, candidate.audio_fingerprint
    m, n = _fingerprint_seconds(a), _fingerprint_seconds(b)
    if m == 0 or n == 0:
        return np.zeros((m, n), np.float32)
    return second_similarity(a, b, m, n)


# visual: the frames' similarities as MatchLite's S^v and retrieval's re-rank take them (best pair of views)
SIMILARITY_MAPS = {"visual": real_frame_similarity, "audio": audio_similarity}


def _fingerprint_seconds(fingerprint: np.ndarray) -> int:
    return min(MAX_AUDIO_SECONDS, math.ceil(len(fingerprint) * HOP_S))


def aligned_seconds(segments: list[list[float]], per_segment: int = 4, limit: int = 8) -> list[tuple[int, int]]:
    """[(query second, candidate second)]: `per_segment` evenly spaced points of each matched segment
    (q0, q1, c0, c1), the candidate's second interpolated along the segment, at most `limit`, no repeats."""
    pairs: list[tuple[int, int]] = []
    for q0, q1, c0, c1 in segments:
        rate = (c1 - c0) / (q1 - q0) if q1 > q0 else 1.0
        for k in range(per_segment):
            t = (q1 - q0) * k / per_segment
            pair = (int(q0 + t), int(c0 + t * rate))
            if pair not in pairs:
                pairs.append(pair)
    return pairs[:limit]


PLOT_W, PLOT_H = 400, 320  # the cells' area of a heat map, in pixels
LEFT, RIGHT, TOP, BOTTOM = 52, 64, 10, 40  # margins: second ticks and the axis names, the colour bar


@functools.cache
def _palette() -> np.ndarray:
    """[256, 3] uint8: matplotlib's "magma" (dark = dissimilar, bright = similar), looked up once."""
    from matplotlib import colormaps

    return (colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def heatmap_png(query_id: str, candidate_id: str, matrix: np.ndarray) -> bytes:
    """The matrix as a heat map: query seconds down, candidate seconds across, brighter = more similar.

    Drawn with Pillow cell by cell (a few ms; a matplotlib figure took ~200 ms, and a page shows two). The
    colour scale runs from min(0, lowest value) to 1, as the bar on the right says.
    """
    shown = matrix if matrix.size else np.zeros((1, 1), np.float32)
    low = min(0.0, float(shown.min()))
    levels = np.clip((shown - low) / (1.0 - low), 0.0, 1.0)
    cells = Image.fromarray(_palette()[(levels * 255).round().astype(np.uint8)])
    canvas = Image.new("RGB", (LEFT + PLOT_W + RIGHT, TOP + PLOT_H + BOTTOM), "white")
    canvas.paste(cells.resize((PLOT_W, PLOT_H), Image.Resampling.NEAREST), (LEFT, TOP))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=12)
    rows, columns = shown.shape
    for second in range(0, columns, _tick_step(columns)):
        draw.text((LEFT + (second + 0.5) * PLOT_W / columns, TOP + PLOT_H + 3), str(second), fill="black", font=font, anchor="mt")
    for second in range(0, rows, _tick_step(rows)):
        draw.text((LEFT - 4, TOP + (second + 0.5) * PLOT_H / rows), str(second), fill="black", font=font, anchor="rm")
    draw.text((LEFT + PLOT_W / 2, TOP + PLOT_H + 22), f"{candidate_id} (s)", fill="black", font=font, anchor="mt")
    name = Image.new("RGB", (PLOT_H, 16), "white")
    ImageDraw.Draw(name).text((PLOT_H / 2, 8), f"{query_id} (s)", fill="black", font=font, anchor="mm")
    canvas.paste(name.rotate(90, expand=True), (4, TOP))
    _colour_bar(canvas, draw, font, low)
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def _tick_step(count: int) -> int:
    """Seconds between labelled ticks: every one up to 10, then 2, 5, 10, 20... (at most ~10 labels)."""
    for step in (1, 2, 5, 10, 20, 50, 100):
        if count <= 10 * step:
            return step
    return 200


def _colour_bar(canvas: Image.Image, draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
                low: float) -> None:  # fmt: skip
    ramp = _palette()[np.linspace(255, 0, PLOT_H).round().astype(np.uint8)]  # top: 1.0
    bar = Image.fromarray(np.repeat(ramp[:, None, :], 12, axis=1))
    left = LEFT + PLOT_W + 10
    canvas.paste(bar, (left, TOP))
    for value, y in ((1.0, TOP), ((1.0 + low) / 2, TOP + PLOT_H / 2), (low, TOP + PLOT_H)):
        draw.text((left + 16, y), f"{value:.1f}", fill="black", font=font, anchor="lm")
