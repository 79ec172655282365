"""How similar two videos look: the frame-set similarity retrieval re-ranks its shortlist with.

The index (rci.retrieval.milvus) is approximate and per vector: it finds the few earlier videos
that own a frame close to one of the query's frames. Which of them is *the* source is decided
here, on the videos' full frame sets: the symmetric Chamfer similarity, the mean over each
video's real frames of its best cosine in the other video, averaged over both directions. It is
video copy detection's standard frame-set similarity (with SSCD frame descriptors alone it is a
strong copy detector, benchmarks/RESULTS.md "Generalisation"), and unlike the best single frame
pair it is not won by one shared stock frame or a black fade.
"""

from __future__ import annotations

import numpy as np

from rci.inference.features import VideoFeatures, real_frame_similarity


def chamfer(similarity: np.ndarray) -> float:
    """[A, B] frame-to-frame similarities -> symmetric Chamfer similarity (-1.0 when a side is empty)."""
    sim = np.asarray(similarity, dtype=np.float32)
    if sim.ndim != 2 or sim.shape[0] == 0 or sim.shape[1] == 0:
        return -1.0
    return float(0.5 * (sim.max(axis=1).mean() + sim.max(axis=0).mean()))


def frame_set_similarity(query: VideoFeatures, candidate: VideoFeatures) -> float:
    """Symmetric Chamfer similarity of two videos' real frames, each pair on its best pair of views
    (rci.inference.features.real_frame_similarity; -1.0 without frames)."""
    return chamfer(real_frame_similarity(query, candidate))
