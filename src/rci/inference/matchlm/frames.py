"""Frames for MatchLM: dynamic allocation of a frame budget across the pair (appendix A.2).

The two videos of a pair share one budget of frames (the LM's context is the limit). Dynamic
allocation splits it in proportion to the videos' lengths, guaranteeing the shorter one a minimum
(or all its frames, when it has fewer), so a 5 s clip facing a 10 min source is not reduced to one
frame. Within each video frames are sampled uniformly. Static allocation (the ablation baseline)
gives each video half of the budget whatever the lengths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Allocation = Literal["dynamic", "static"]


def allocate_frames(
    durations: tuple[float, float],
    available: tuple[int, int],
    budget: int,
    min_frames: int,
    mode: Allocation = "dynamic",
) -> tuple[int, int]:
    """-> (frames for video 1, frames for video 2).

    durations: lengths in seconds (what the split is proportional to).
    available: frames each video actually has (decoded at 1 fps, possibly capped); never exceeded.
    Guarantees: n_i <= available_i, n_1 + n_2 <= budget, and when both videos have more frames
    than fit, the budget is used in full and the shorter video gets at least min(min_frames, budget).
    """
    if budget < 0 or min_frames < 0 or min(available) < 0:
        raise ValueError(f"negative budget {budget}, min_frames {min_frames} or available {available}")
    a1, a2 = available
    if mode == "static":
        half = budget // 2
        return min(a1, half), min(a2, budget - half)
    if a1 + a2 <= budget:
        return a1, a2  # everything fits
    d1, d2 = (max(float(d), 0.0) for d in durations)
    share1 = 0.5 if d1 + d2 == 0 else d1 / (d1 + d2)
    short = 0 if d1 <= d2 else 1
    want = [round(budget * share1), budget - round(budget * share1)]
    # the shorter video: at least its minimum, at most what it has
    want[short] = min(available[short], max(want[short], min(min_frames, budget)))
    # the longer video: the rest, at most what it has; anything it cannot use goes back
    long = 1 - short
    want[long] = min(available[long], budget - want[short])
    want[short] = min(available[short], budget - want[long])
    return want[0], want[1]


def uniform_indices(available: int, count: int) -> np.ndarray:
    """[count] sorted frame indices spread evenly over `available` frames (bin centres)."""
    if count > available:
        raise ValueError(f"cannot pick {count} of {available} frames")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    return np.floor((np.arange(count) + 0.5) * available / count).astype(np.int64)


@dataclass(frozen=True)
class ImageSpec:
    """How the vision tower wants its pixels (SigLIP: 384 px, mean = std = 0.5)."""

    size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)


def frames_to_pixels(frames: np.ndarray, spec: ImageSpec) -> torch.Tensor:
    """uint8 [T,H,W,3] RGB -> float32 [T,3,size,size], resized (bilinear, antialiased) and normalised."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        return torch.zeros(0, 3, spec.size, spec.size)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0  # [T,3,H,W]
    if x.shape[-2:] != (spec.size, spec.size):
        x = F.interpolate(x, size=(spec.size, spec.size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (x - mean) / std


def tokens_per_frame(image_size: int, patch_size: int) -> int:
    """LM tokens one video frame becomes: LLaVA-OneVision 2x2-pools the patch grid (27x27 -> 14x14)."""
    grid = image_size // patch_size
    return math.ceil(grid / 2) ** 2
