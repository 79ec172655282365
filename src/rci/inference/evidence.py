"""Which segments match: temporal alignment on MatchLite's visual similarity map.

A copied segment shows up in S^v[i,j] (query frame i vs candidate frame j, 1 fps) as a run of
high cells along a diagonal j = i + offset: the offset is where the trim starts. We
  1. threshold the valid cells,
  2. find runs along each diagonal, tolerating short gaps (a dropped or re-encoded frame),
  3. merge runs on neighbouring diagonals that overlap in time (frame sampling jitter),
  4. keep the strongest segment for each stretch of query time (suppress overlaps),
and report [query_start_s, query_end_s, candidate_start_s, candidate_end_s] per segment,
frame i covering [i / fps, (i + 1) / fps).
Speed changes (slopes other than 1) are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EvidenceParams:
    threshold: float = 0.75  # cosine above which two frames count as the same content
    min_frames: int = 2  # shortest segment reported
    max_gap: int = 1  # missing frames tolerated inside a run
    diagonal_slack: int = 1  # runs this many diagonals apart may be one segment
    max_overlap: float = 0.5  # of the shorter query interval, above which the weaker segment is dropped
    fps: float = 1.0


@dataclass
class _Segment:
    """Inclusive frame ranges on the query (i) and candidate (j) axes."""

    i0: int
    i1: int
    j0: int
    j1: int
    d_min: int  # diagonals covered (offset j - i)
    d_max: int
    hits: int
    strength: float  # summed similarity of the hit cells

    @property
    def length(self) -> int:
        return self.i1 - self.i0 + 1


def matched_segments(
    similarity: np.ndarray,
    query_mask: np.ndarray,
    candidate_mask: np.ndarray,
    params: EvidenceParams = EvidenceParams(),
    query_duration_s: float | None = None,
    candidate_duration_s: float | None = None,
) -> list[list[float]]:
    """similarity [M,N], query_mask [M] bool, candidate_mask [N] bool -> [[qs, qe, cs, ce], ...] by qs."""
    sim = np.asarray(similarity, dtype=np.float32)
    valid = np.asarray(query_mask, bool)[:, None] & np.asarray(candidate_mask, bool)[None, :]
    hits = valid & np.isfinite(sim) & (sim >= params.threshold)  # [M,N]
    runs = _diagonal_runs(hits, sim, params)
    segments = _suppress_overlaps(_merge_runs(runs, params), params)
    return [_to_seconds(s, params.fps, query_duration_s, candidate_duration_s) for s in segments]


def _diagonal_runs(hits: np.ndarray, sim: np.ndarray, params: EvidenceParams) -> list[_Segment]:
    m, n = hits.shape
    runs: list[_Segment] = []
    for d in range(-(m - 1), n):
        diag = np.diagonal(hits, offset=d)  # hits[i, i + d] for i from max(0, -d)
        idx = np.flatnonzero(diag)
        if len(idx) == 0:
            continue
        start_i = max(0, -d)
        values = np.diagonal(sim, offset=d)
        # split the hit positions where the gap between consecutive hits is too large
        breaks = np.flatnonzero(np.diff(idx) > params.max_gap + 1) + 1
        for group in np.split(idx, breaks):
            if len(group) < params.min_frames:
                continue
            i0, i1 = start_i + int(group[0]), start_i + int(group[-1])
            runs.append(_Segment(i0, i1, i0 + d, i1 + d, d, d, len(group), float(values[group].sum())))
    return runs


def _mergeable(a: _Segment, b: _Segment, params: EvidenceParams) -> bool:
    near_diagonal = b.d_min - a.d_max <= params.diagonal_slack and a.d_min - b.d_max <= params.diagonal_slack
    touching = b.i0 <= a.i1 + params.max_gap + 1 and a.i0 <= b.i1 + params.max_gap + 1
    return near_diagonal and touching


def _merge_runs(runs: list[_Segment], params: EvidenceParams) -> list[_Segment]:
    segments: list[_Segment] = []
    for run in sorted(runs, key=lambda r: (r.i0, r.d_min)):
        merged = True
        while merged:  # a run may bridge two segments; keep absorbing until nothing changes
            merged = False
            for k, seg in enumerate(segments):
                if _mergeable(seg, run, params):
                    run = _union(segments.pop(k), run)
                    merged = True
                    break
        segments.append(run)
    return segments


def _union(a: _Segment, b: _Segment) -> _Segment:
    return _Segment(
        min(a.i0, b.i0), max(a.i1, b.i1), min(a.j0, b.j0), max(a.j1, b.j1),
        min(a.d_min, b.d_min), max(a.d_max, b.d_max), a.hits + b.hits, a.strength + b.strength,
    )  # fmt: skip


def _suppress_overlaps(segments: list[_Segment], params: EvidenceParams) -> list[_Segment]:
    kept: list[_Segment] = []
    for seg in sorted(segments, key=lambda s: (s.hits, s.strength), reverse=True):
        if all(_query_overlap(seg, other) <= params.max_overlap for other in kept):
            kept.append(seg)
    return sorted(kept, key=lambda s: (s.i0, s.j0))


def _query_overlap(a: _Segment, b: _Segment) -> float:
    inter = min(a.i1, b.i1) - max(a.i0, b.i0) + 1
    return max(inter, 0) / min(a.length, b.length)


def _to_seconds(seg: _Segment, fps: float, q_dur: float | None, c_dur: float | None) -> list[float]:
    qs, qe = seg.i0 / fps, (seg.i1 + 1) / fps
    cs, ce = seg.j0 / fps, (seg.j1 + 1) / fps
    if q_dur is not None and q_dur > 0:
        qe = min(qe, q_dur)
    if c_dur is not None and c_dur > 0:
        ce = min(ce, c_dur)
    return [float(qs), float(qe), float(cs), float(ce)]
