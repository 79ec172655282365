"""The installed feature-level teacher: scores in the order asked, whatever the batch size; its checkpoint
must say what it was trained on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.inference.matchlmf.matchlmf_inputs import CONFIG, make_video, noisy_copy

from rci.inference.matchlmf.loader import load_matchlmf_teacher, save_matchlmf
from rci.inference.matchlmf.model import MatchLMF


def _model() -> MatchLMF:
    torch.manual_seed(0)
    return MatchLMF(CONFIG).eval()


def test_scores_come_back_in_the_order_of_the_pairs_whatever_the_batch_size(tmp_path):
    save_matchlmf(tmp_path / "t.pt", _model(), {"threshold": 0.4, "encoder_version": "enc-7"})
    teacher = load_matchlmf_teacher(tmp_path / "t.pt")
    assert (teacher.threshold, teacher.encoder_version, teacher.inputs) == (0.4, "enc-7", "features")
    videos = [make_video(f"v{i}", i, frames=2 + i % 3, audio_s=float(i % 2) * 3) for i in range(5)]
    pairs = [(noisy_copy(v, 100 + i), v) for i, v in enumerate(videos)] + [(videos[0], videos[1])]
    one_by_one = teacher.score_pairs(pairs, batch_size=1)
    batched = teacher.score_pairs(pairs, batch_size=4)
    np.testing.assert_allclose([s.score for s in batched], [s.score for s in one_by_one], atol=1e-5)
    assert all(s.logits.shape == (2,) and s.embedding.shape == (CONFIG.embedding_dim,) for s in batched)
    assert len({round(s.score, 6) for s in batched}) > 1  # the pairs really differ


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_teacher_on_cuda_scores_as_on_the_cpu(tmp_path):
    save_matchlmf(tmp_path / "t.pt", _model(), {"threshold": 0.4, "encoder_version": "enc-7"})
    videos = [make_video(f"v{i}", i, frames=2 + i % 3, audio_s=float(i % 2) * 3) for i in range(5)]
    pairs = [(noisy_copy(v, 100 + i), v) for i, v in enumerate(videos)] + [(videos[0], videos[1])]
    cpu = load_matchlmf_teacher(tmp_path / "t.pt").score_pairs(pairs)
    cuda = load_matchlmf_teacher(tmp_path / "t.pt", device="cuda").score_pairs(pairs)
    np.testing.assert_allclose([s.score for s in cuda], [s.score for s in cpu], atol=1e-4)
    np.testing.assert_allclose(np.stack([s.embedding for s in cuda]), np.stack([s.embedding for s in cpu]), atol=1e-3)


def test_a_checkpoint_without_threshold_or_encoder_version_is_not_a_servable_teacher(tmp_path):
    save_matchlmf(tmp_path / "t.pt", _model(), {"threshold": 0.4})
    with pytest.raises(ValueError, match="encoder_version"):
        load_matchlmf_teacher(tmp_path / "t.pt")
