"""The feature-level teacher as the shadow consumer and distillation use it: pairs of VideoFeatures in,
TeacherScores out (the interface MatchLMTeacher offers for decoded media)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rci.inference.features import VideoFeatures
from rci.inference.matchlm.teacher import TeacherScore
from rci.inference.matchlmf.batch import build_batch
from rci.inference.matchlmf.model import MatchLMF


class MatchLMFTeacher:
    """A frozen MatchLMF on one device, in eval mode. It reads the features the worker stored under
    `encoder_version` (the encoders it was trained on), not the media."""

    inputs = "features"  # what the shadow consumer must hand it (MatchLMTeacher: "media")

    def __init__(self, model: MatchLMF, model_version: str, threshold: float, encoder_version: str,
                 device: torch.device | str = "cpu") -> None:  # fmt: skip
        self.model = model.to(device).eval()
        self.model_version = model_version
        self.threshold = threshold
        self.encoder_version = encoder_version
        self.device = torch.device(device)

    @torch.inference_mode()
    def score_pairs(self, pairs: Sequence[tuple[VideoFeatures, VideoFeatures]], batch_size: int = 16) -> list[TeacherScore]:
        """Scores in the order of `pairs`, `batch_size` pairs per forward pass."""
        results: list[TeacherScore] = []
        for start in range(0, len(pairs), batch_size):
            out = self.model(build_batch(pairs[start : start + batch_size], self.model.config).to(self.device))
            scores, logits, embedding = out.score.float().cpu().numpy(), out.logits.float().cpu().numpy(), out.embedding.float().cpu().numpy()
            results += [TeacherScore(float(s), lg, e) for s, lg, e in zip(scores, logits, embedding, strict=True)]
        return results
