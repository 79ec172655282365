"""The evidence a moderator looks at: the visual similarity of every query frame to every candidate frame.

S[i, j] = cosine(query frame i, candidate frame j) over the frame embeddings the worker computed (1 frame a
second, rci.inference.evidence). A copied segment is a bright diagonal; a trimmed copy's diagonal starts at
its offset into the original. Pure numpy, then one PNG with matplotlib (no display).
"""

from __future__ import annotations

import io

import numpy as np

from rci.inference.features import VideoFeatures


def visual_similarity(query: VideoFeatures, candidate: VideoFeatures) -> np.ndarray:
    """[real query frames, real candidate frames] cosine similarities; empty when either has no frames."""
    q = _unit(query.visual[query.visual_mask])
    c = _unit(candidate.visual[candidate.visual_mask])
    return q @ c.T if len(q) and len(c) else np.zeros((len(q), len(c)), np.float32)


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


def heatmap_png(query_id: str, candidate_id: str, matrix: np.ndarray) -> bytes:
    """The matrix as a heat map: query seconds down, candidate seconds across, brighter = more similar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.0), dpi=100)
    try:
        shown = matrix if matrix.size else np.zeros((1, 1))
        image = ax.imshow(shown, cmap="magma", vmin=min(0.0, float(shown.min())), vmax=1.0, aspect="auto",
                          interpolation="nearest", origin="upper")  # fmt: skip
        ax.set(xlabel=f"{candidate_id} (s)", ylabel=f"{query_id} (s)", title="visual similarity per second")
        fig.colorbar(image, ax=ax, fraction=0.046)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()
    finally:
        plt.close(fig)
