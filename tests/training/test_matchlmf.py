"""Training the feature-level teacher (rci.training.matchlmf) and its checkpoints (rci.inference.matchlmf.loader)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rci.inference.matchlmf.loader import load_matchlmf, matchlmf_version, save_matchlmf
from rci.training.data import PairDataset, PairExample
from rci.training.loop import TrainConfig
from rci.training.losses import IGNORE_INDEX
from rci.training.matchlmf import MatchLMFCollate, build_matchlmf, predict_matchlmf, train_matchlmf
from rci.training.metrics import average_precision
from tests.inference.matchlmf.matchlmf_inputs import CONFIG, make_video, noisy_copy


def _pairs(n: int, seed: int) -> PairDataset:
    """n pairs, half reproduced (a noisy copy of the candidate), half unrelated; aux labels partly undefined."""
    features, examples = {}, []
    for i in range(n):
        source = make_video(f"s{seed}-{i}", seed * 10_000 + i, audio_s=3.0)
        query = noisy_copy(source, seed * 10_000 + n + i) if i % 2 == 0 else make_video(f"u{seed}-{i}", seed * 10_000 + 2 * n + i)
        features[source.video_id], features[query.video_id] = source, query
        label = int(i % 2 == 0)
        examples.append(PairExample(query.video_id, source.video_id, label, "synthetic", "train",
                                    {"visual": label, "audio": None, "text": None}))  # fmt: skip
    return PairDataset(examples, features)


def test_the_collate_carries_labels_aux_targets_and_positions_in_order():
    data = _pairs(4, seed=1)
    batch = MatchLMFCollate(CONFIG)([data[2], data[1]])
    assert batch.labels.tolist() == [1, 0]
    assert batch.index.tolist() == [2, 1]
    assert batch.aux_labels["visual"].tolist() == [1, 0]
    assert batch.aux_labels["audio"].tolist() == [IGNORE_INDEX, IGNORE_INDEX]
    assert len(batch) == 2 and batch.inputs.q_visual.shape[0] == 2


def test_training_learns_copies_from_unrelated_pairs_it_never_saw():
    torch.set_num_threads(1)
    train, held_out = _pairs(256, seed=2), _pairs(64, seed=3)
    untrained = predict_matchlmf(build_matchlmf(CONFIG, seed=0), held_out).scores
    model, result = train_matchlmf(CONFIG, train, TrainConfig(epochs=6, batch_size=32, lr=3e-3, seed=0), progress=False)
    scores = predict_matchlmf(model, held_out).scores
    assert result.history[-1].losses["ce_main"] < result.history[0].losses["ce_main"]
    assert average_precision(scores, held_out.labels) > 0.95 > average_precision(untrained, held_out.labels)


def test_a_saved_teacher_loads_with_the_same_scores_and_version(tmp_path):
    model = build_matchlmf(CONFIG, seed=4).eval()
    data = _pairs(6, seed=5)
    meta = save_matchlmf(tmp_path / "teacher.pt", model, {"threshold": 0.5})
    loaded, loaded_meta = load_matchlmf(tmp_path / "teacher.pt")
    assert loaded_meta == meta and meta["threshold"] == 0.5
    assert matchlmf_version(loaded) == meta["model_version"] != matchlmf_version(build_matchlmf(CONFIG, seed=6))
    np.testing.assert_allclose(predict_matchlmf(loaded, data).logits, predict_matchlmf(model, data).logits, atol=1e-6)


def test_another_kind_of_checkpoint_is_refused(tmp_path):
    torch.save({"state_dict": {}, "meta": {"format": "matchlite"}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a MatchLMF checkpoint"):
        load_matchlmf(tmp_path / "other.pt")
