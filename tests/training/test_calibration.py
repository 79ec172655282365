"""Calibrating MatchLite's served score with the frame-set evidence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rci.inference.runtime import collate_pairs
from rci.retrieval.similarity import frame_set_similarity
from rci.training.calibration import VOTES, calibrated, choose_vote, fit_calibration, pair_evidence, platt_targets
from rci.training.data import PairDataset, PairExample
from tests.inference.matchlite_fakes import make_features, small_model, trimmed_copy


def test_the_head_votes_as_much_as_one_spread_of_the_similarity_and_the_fit_only_scales_and_shifts():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=400)
    chamfers = np.where(labels == 1, 0.7, 0.3) + rng.normal(scale=0.08, size=400)
    margins = np.where(labels == 1, 4.0, -4.0) + rng.normal(scale=3.0, size=400)
    a, b, c = fit_calibration(margins, chamfers, labels)
    assert a > 0 and b > 0
    assert a * 20.0 == pytest.approx(b * chamfers.std(), rel=1e-6)  # the full margin range = one spread
    limited = np.clip(margins, -20, 20)
    scores = 1 / (1 + np.exp(-(a * limited + b * chamfers + c)))
    assert scores[labels == 1].mean() > 0.8 and scores[labels == 0].mean() < 0.2  # a probability, fitted
    a2, b2, _ = fit_calibration(margins * 100, chamfers, labels, margin_limit=2.0)  # a vote of +-2 logits
    assert a2 * 2.0 == pytest.approx(b2 * chamfers.std(), rel=1e-6)
    with pytest.raises(ValueError, match="both"):
        fit_calibration(margins, chamfers, np.ones(400))


def test_pairs_separated_perfectly_keep_scores_that_rank_rather_than_saturate():
    """Validation pairs a good model separates have no finite best scale; Platt's targets keep the served
    scores inside (0, 1) at rci.scores' 6 decimals, so every pair still has a score of its own."""
    rng = np.random.default_rng(2)
    labels = np.repeat([1, 0], [21, 67])
    chamfers = np.where(labels == 1, 0.8, 0.3) + rng.normal(scale=0.03, size=len(labels))
    margins = np.where(labels == 1, 6.0, -6.0) + rng.normal(scale=1.0, size=len(labels))
    a, b, c = fit_calibration(margins, chamfers, labels, margin_limit=2.0, head_vote=0.5)
    served = np.round(1 / (1 + np.exp(-(a * np.clip(margins, -2, 2) + b * chamfers + c))), 6)
    assert 0.0 < served.min() and served.max() < 1.0
    assert len(np.unique(served)) == len(served)
    assert served[labels == 1].min() > served[labels == 0].max()  # the order is the evidence's
    assert served[labels == 1].mean() == pytest.approx(22 / 23, abs=0.03)  # Platt's target for 21 positives
    np.testing.assert_allclose(platt_targets(labels)[[0, -1]], [22 / 23, 1 / 69])


def _separable(n: int = 40, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """([2n] margins, [2n] similarities, [2n] labels): n copies and n negatives that both agree on."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([1, 0], n)
    chamfers = np.where(labels == 1, 0.7, 0.2) + rng.normal(scale=0.05, size=2 * n)
    return np.where(labels == 1, 8.0, -8.0), chamfers, labels


def test_the_vote_is_chosen_where_the_two_validation_sets_agree_best():
    """Template negatives (the same picture under another voice-over) are more alike than the edited copies:
    only the head rejects them, so the generated set needs a larger vote than the most cautious."""
    margins, chamfers, labels = _separable()
    templates = chamfers.copy()
    templates[40:48] = 0.95
    choice = choose_vote({"real": (margins, chamfers, labels), "generated": (margins, templates, labels)}, spread=0.25)
    assert len(choice.grid) == len(VOTES) and {"real", "generated", "mean"} <= set(choice.grid[0])
    chosen = next(row for row in choice.grid if (row["margin_limit"], row["head_vote"]) == (choice.margin_limit, choice.head_vote))
    assert chosen["mean"] == max(row["mean"] for row in choice.grid)
    assert choice.average_precisions == {"real": chosen["real"], "generated": chosen["generated"]}
    assert choice.head_vote > VOTES[0][1] and choice.average_precisions["generated"] > choice.grid[0]["generated"]


def test_a_vote_that_buys_nothing_stays_the_most_cautious():
    margins, chamfers, labels = _separable()
    choice = choose_vote({"real": (margins, chamfers, labels), "generated": (margins, chamfers, labels)}, spread=0.25)
    assert (choice.margin_limit, choice.head_vote) == VOTES[0]  # every vote ranks perfectly: a tie
    # real copies the head is sure and wrong about, beside negatives it is unsure of: a larger vote sinks them
    wrong, weak = margins.copy(), chamfers.copy()
    wrong[:10], weak[:10] = -8.0, 0.35
    wrong[40:], weak[40:] = -1.0, 0.2
    choice = choose_vote({"real": (wrong, weak, labels), "generated": (margins, chamfers, labels)}, spread=0.25)
    assert (choice.margin_limit, choice.head_vote) == VOTES[0]
    assert choice.grid[-1]["real"] < choice.grid[0]["real"] == 1.0


def test_a_sure_and_wrong_head_cannot_outvote_the_similarity_once_limited():
    """A hard copy the head calls unrelated with a margin of -15 (seen on real media) still outranks an
    unrelated pair the head also rejects, because the similarity says copy and the head's vote is bounded."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=400)
    chamfers = np.where(labels == 1, 0.8, 0.3) + rng.normal(scale=0.1, size=400)
    margins = np.where(labels == 1, 10.0, -10.0) + rng.normal(scale=2.0, size=400)  # the corpus: a sure head
    a, b, c = fit_calibration(margins, chamfers, labels, margin_limit=2.0)
    logit = lambda m, ch: a * np.clip(m, -2.0, 2.0) + b * ch + c  # noqa: E731
    hard_copy, unrelated = (-15.0, 0.6), (-2.5, 0.35)  # (margin, chamfer)
    assert logit(*hard_copy) > logit(*unrelated)
    assert logit(-15.0, 0.6) == logit(-2.0, 0.6)  # past the limit, surer is not more
    # the most the head can move a score: one spread of the similarity either way
    assert logit(20.0, 0.5) - logit(-20.0, 0.5) == pytest.approx(2 * b * chamfers.std(), rel=1e-6)


def test_calibration_is_served_by_the_model_and_identity_keeps_the_softmax():
    model = small_model(pair_features=False)
    source = make_features("s", 1)
    pairs = [(trimmed_copy(source, 1, 7, seed=2), source), (make_features("o", 3), source)]
    batch = {k: torch.from_numpy(v) for k, v in collate_pairs(pairs).items()}
    with torch.no_grad():
        out = model(batch)
        torch.testing.assert_close(out.score, out.logits.softmax(-1)[:, 1])
        cal = calibrated(model, (0.5, 4.0, -1.0))(batch)
        limited = calibrated(model, (0.5, 4.0, -1.0), margin_limit=2.0)(batch)
    margin = (out.logits[:, 1] - out.logits[:, 0]).clamp(-20, 20)
    dataset = PairDataset([PairExample(q.video_id, c.video_id, 1, "x", "val", {}) for q, c in pairs],
                          {v.video_id: v for pair in pairs for v in pair})
    margins, chamfers = pair_evidence(model, dataset)
    np.testing.assert_allclose(margins, margin.numpy(), atol=1e-4)
    expected = torch.sigmoid(0.5 * margin + 4.0 * torch.from_numpy(chamfers) - 1.0)
    torch.testing.assert_close(cal.score, expected, atol=1e-4, rtol=0)
    assert chamfers[0] > chamfers[1]  # the copy's frames match its source's
    expected = torch.sigmoid(0.5 * margin.clamp(-2, 2) + 4.0 * torch.from_numpy(chamfers) - 1.0)
    torch.testing.assert_close(limited.score, expected, atol=1e-4, rtol=0)


def test_the_relative_similarity_is_served_by_torch_and_onnx_alike(tmp_path):
    """relative_chamfer: the calibration weighs the Chamfer similarity of the background-relative frame
    similarities (as the head's own maps are), lower than the raw one by the frames' background level."""
    from rci.inference.onnx_export import export_onnx, verify_parity

    model = small_model(pair_features=False, background_frames=16, relative_chamfer=True)
    model.set_background(torch.nn.functional.normalize(torch.randn(16, model.config.visual_dim), dim=-1))
    source = make_features("s", 1)
    pairs = [(trimmed_copy(source, 1, 7, seed=2), source), (make_features("o", 3), source)]
    dataset = PairDataset([PairExample(q.video_id, c.video_id, 1, "x", "val", {}) for q, c in pairs],
                          {v.video_id: v for pair in pairs for v in pair})
    _, relative = pair_evidence(model, dataset)
    raw = np.array([frame_set_similarity(q, c) for q, c in pairs], np.float32)
    assert np.all(relative < raw - 1e-3) and relative[0] > relative[1]  # shifted down, the copy still first
    served = calibrated(model, (0.5, 4.0, -1.0), margin_limit=2.0)
    path = export_onnx(served, tmp_path / "m.onnx", meta={"model_version": "v", "threshold": 0.5})
    assert max(verify_parity(served, path, atol=1e-4).values()) <= 1e-4
