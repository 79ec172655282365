"""Calibrating MatchLite's served score with the frame-set evidence, after training.

The head learns from a small generated corpus; the symmetric Chamfer similarity of SSCD frame
descriptors (rci.retrieval.similarity) is a copy detector in its own right that carries to any media.
The head's margin, limited to +-margin_limit, is a vote worth at most `head_vote` standard deviations of
the similarity on validation pairs (never trained on); the limit and the vote are chosen on two
validation sets that pull opposite ways (`choose_vote`), and a scale and a bias fitted on the real one
make the sum a probability (`fit_calibration`):

    score = sigmoid(a * clamp(margin, +-margin_limit) + b * chamfer + c),   margin = logit_1 - logit_0

and the result is written into the model (MatchLiteConfig.calibration, margin_limit, relative_chamfer), so the ONNX
graph, the torch runtime and every evaluation serve the same calibrated score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from rci.inference.matchlite import MatchLite
from rci.training.data import PairDataset
from rci.training.evaluate import predict, matchlite_forward
from rci.training.metrics import average_precision

# what fit_calibration does, stamped with the models it calibrates: a change retrains them
METHOD = "bounded-vote/platt-targets"


def pair_evidence(model: MatchLite, dataset: PairDataset) -> tuple[np.ndarray, np.ndarray]:
    """-> ([N] head margins of `model` as trained, unclamped; [N] the frame-set Chamfer similarities its
    calibration weighs: raw, or relative to the background with MatchLiteConfig.relative_chamfer).

    Both come from the model itself: calibration (1, 0, 0) serves the margin, (0, 1, 0) the similarity."""
    margins = predict(matchlite_forward(calibrated(model, (1.0, 0.0, 0.0), margin_limit=1e9)), dataset).logits[:, 1]
    chamfers = predict(matchlite_forward(calibrated(model, (0.0, 1.0, 0.0))), dataset).logits[:, 1]
    return margins.astype(np.float32), chamfers.astype(np.float32)


# (margin_limit, head_vote) pairs choose_vote picks from, most cautious first (it wins ties): the head's
# margin limited to +-limit logits, worth `vote` spreads of the frame-set similarity at most
VOTES: tuple[tuple[float, float], ...] = ((2.0, 0.5), (2.0, 1.0), (4.0, 1.0), (4.0, 2.0), (8.0, 2.0), (8.0, 3.0))


@dataclass(frozen=True)
class VoteChoice:
    margin_limit: float
    head_vote: float
    average_precisions: dict[str, float]  # each validation set's pair AP at the chosen vote
    grid: list[dict]  # every candidate: margin_limit, head_vote, each set's AP, their mean


def spread_of(chamfers: np.ndarray) -> float:
    """The similarity's spread on the pairs the calibration is fitted on: the unit of the head's vote."""
    return max(float(np.asarray(chamfers, np.float64).std()), 1e-6)


def vote_units(margin_limit: float, head_vote: float, spread: float) -> tuple[float, float]:
    """(weight of the clamped margin, weight of the similarity) in the ranking: the full margin range is
    worth `head_vote` spreads of the similarity."""
    return head_vote / margin_limit, 1.0 / spread


def ranking(margins: np.ndarray, chamfers: np.ndarray, margin_limit: float, unit: tuple[float, float]) -> np.ndarray:
    """[N] the served score before its scale and bias: unit[0] * clamp(margin) + unit[1] * chamfer."""
    clipped = np.clip(np.asarray(margins, np.float64), -margin_limit, margin_limit)
    return clipped * unit[0] + np.asarray(chamfers, np.float64) * unit[1]


def choose_vote(evidence: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], spread: float,
                votes: Sequence[tuple[float, float]] = VOTES) -> VoteChoice:
    """The (margin_limit, head_vote) whose ranking has the best mean pair AP over the validation sets.

    `evidence`: set name -> ([N] margins, [N] similarities, [N] labels), pair_evidence of one model on
    each set; `spread`: the unit of the vote (spread_of the pairs fit_calibration is given). The sets
    can pull opposite ways, which is why there are two: where the head errs on real media (as one trained
    on a generated corpus alone does), a small vote is safest; on videos whose pictures are a template
    (the same still under another voice-over or caption) or heavily cropped, only the head knows, so a
    small vote ranks them by a similarity that says the opposite. Ties go to the earlier, more cautious
    candidate.
    """
    grid = []
    for limit, vote in votes:
        unit = vote_units(limit, vote, spread)
        aps = {name: float(average_precision(ranking(m, c, limit, unit), np.asarray(y)))
               for name, (m, c, y) in evidence.items()}  # fmt: skip
        grid.append({"margin_limit": limit, "head_vote": vote, **aps, "mean": float(np.mean(list(aps.values())))})
    best = max(range(len(grid)), key=lambda i: (round(grid[i]["mean"], 9), -i))
    chosen = grid[best]
    return VoteChoice(chosen["margin_limit"], chosen["head_vote"], {k: chosen[k] for k in evidence}, grid)


def fit_calibration(margins: np.ndarray, chamfers: np.ndarray, labels: Sequence[int], *,
                    margin_limit: float = 20.0, head_vote: float = 1.0, steps: int = 200) -> tuple[float, float, float]:
    """(a, b, c) for sigmoid(a * clamp(margin, +-margin_limit) + b * chamfer + c).

    The ranking is a fixed-weight sum, head_vote * clamp(margin) / margin_limit + chamfer / std(chamfer):
    the head's vote, in [-head_vote, head_vote], beside the similarity in units of its spread (an
    "improper linear model": weights
    fitted on generated media do not carry to real uploads, where a head that is perfect on its own
    corpus's pairs is still fooled, while fixed weights are robust); only an overall scale and a bias,
    which change no ranking, are fitted on the labelled pairs. Margins are clamped as the model clamps
    them (a saturated head says "sure", not "sure by 300").

    The targets are Platt's (1999), (P + 1) / (P + 2) for the P positives and 1 / (N + 2) for the N
    negatives, not 1 and 0: validation pairs a good model separates perfectly have no finite
    maximum-likelihood scale, and a scale grown without bound serves scores that saturate to exactly
    0 and 1 (rci.scores rounds to 6 decimals), tying a plain copy with the negatives next to it and
    leaving nothing to rank, review or re-threshold by.
    """
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        raise ValueError("calibration needs both positive and negative pairs")
    y = torch.tensor(platt_targets(labels))
    unit = vote_units(margin_limit, head_vote, spread_of(chamfers))
    evidence = torch.tensor(ranking(margins, chamfers, margin_limit, unit))  # [N]
    scale = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # softplus(scale) > 0: order kept
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([scale, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        logit = torch.nn.functional.softplus(scale) * evidence + bias
        value = torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
        value.backward()
        return value

    optimiser.step(loss)
    s = float(torch.nn.functional.softplus(scale).item())
    return s * float(unit[0]), s * float(unit[1]), float(bias.item())


def platt_targets(labels: np.ndarray) -> np.ndarray:
    """[N] 0/1 labels -> Platt's smoothed targets: (P + 1) / (P + 2) for positives, 1 / (N + 2) for negatives."""
    positives = int((labels == 1).sum())
    negatives = len(labels) - positives
    return np.where(labels == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2)).astype(np.float64)


def calibrated(model: MatchLite, calibration: tuple[float, float, float],
               margin_limit: float | None = None) -> MatchLite:
    """A copy of `model` (same weights, eval mode) serving `calibration` (and `margin_limit`, if given)."""
    limit = model.config.margin_limit if margin_limit is None else float(margin_limit)
    out = MatchLite(replace(model.config, calibration=tuple(float(v) for v in calibration), margin_limit=limit))
    out.load_state_dict(model.state_dict())
    return out.to(next(model.parameters()).device).eval()
