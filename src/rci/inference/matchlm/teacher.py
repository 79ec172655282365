"""The teacher as the shadow consumer and distillation use it: pairs of VideoInput in, scores out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rci.inference.matchlm.model import MatchLM
from rci.inference.matchlm.processor import MatchLMProcessor, VideoInput


@dataclass(frozen=True)
class TeacherScore:
    score: float  # P(query reproduces candidate), in [0, 1]
    logits: np.ndarray  # [2] main-task logits (Normal, Reproduced)
    embedding: np.ndarray  # [E] pair representation z_t


class MatchLMTeacher:
    """A frozen MatchLM with its processor, on one device, scoring in eval mode."""

    inputs = "media"  # what the shadow consumer must hand it: decoded media (MatchLMFTeacher: "features")

    def __init__(
        self,
        model: MatchLM,
        processor: MatchLMProcessor,
        model_version: str,
        threshold: float,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
    ) -> None:
        self.model = model.to(device=device, dtype=dtype).eval()
        self.processor = processor
        self.model_version = model_version
        self.threshold = threshold
        self.device = torch.device(device)
        self.dtype = dtype

    @torch.inference_mode()
    def score_pairs(self, pairs: Sequence[tuple[VideoInput, VideoInput]], batch_size: int = 4) -> list[TeacherScore]:
        """Scores in the order of `pairs`, `batch_size` pairs per forward pass."""
        results: list[TeacherScore] = []
        for start in range(0, len(pairs), batch_size):
            batch = self.processor(pairs[start : start + batch_size]).to(self.device, self.dtype)
            out = self.model(batch)
            scores = out.score.cpu().numpy()
            logits = out.logits.float().cpu().numpy()
            embedding = out.embedding.float().cpu().numpy()
            results += [TeacherScore(float(s), lg, e) for s, lg, e in zip(scores, logits, embedding)]
        return results

    def score_pair(self, query: VideoInput, candidate: VideoInput) -> TeacherScore:
        return self.score_pairs([(query, candidate)])[0]
