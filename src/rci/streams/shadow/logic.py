"""Pure logic of the shadow consumer (CONTRACT.md `rci.shadow`): which pairs, agreement, aggregates.

The Kafka wiring lives elsewhere; everything here is deterministic and I/O free.

Sampling is by a keyed hash of `video_id`, not by chance and not by Python's `hash()` (salted
per process): every process, every restart and every replica picks the same videos, so a
re-delivered record is sampled again (at-least-once stays idempotent) and a sample at 1% is a
subset of the sample at 10%.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rci.streams.contracts import ScoreRecord, ShadowRecord

if TYPE_CHECKING:  # the teacher's types, without importing torch into the consumer's module
    from rci.inference.features import VideoFeatures
    from rci.inference.matchlm.processor import VideoInput
    from rci.inference.matchlm.teacher import TeacherScore

_HASH_SPACE = 2**64
HISTOGRAM_BINS = 10  # score histograms: equal-width bins over [0, 1]


def sample_point(video_id: str) -> float:
    """Where `video_id` falls in [0, 1): the first 8 bytes of its SHA-256, scaled."""
    digest = hashlib.sha256(video_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPACE


def is_sampled(video_id: str, rate: float) -> bool:
    """True for the fraction `rate` of video ids, the same ones in every process and run."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"sample rate must be in [0, 1], got {rate}")
    return sample_point(video_id) < rate


def agreement(student_score: float, teacher_score: float, threshold: float) -> bool:
    """Both models take the same deboost decision at the operating threshold (`score >= threshold`)."""
    return (_checked(student_score) >= threshold) == (_checked(teacher_score) >= threshold)


def shadow_record(
    scored: ScoreRecord, teacher_score: float, teacher_model_version: str, scored_at: str
) -> ShadowRecord:
    """The `rci.shadow` record of one scored pair; agreement at the student's own threshold."""
    return ShadowRecord(
        video_id=scored.video_id,
        candidate_id=scored.candidate_id,
        student_score=scored.score,
        teacher_score=teacher_score,
        agree=agreement(scored.score, teacher_score, scored.threshold),
        student_model_version=scored.model_version,
        teacher_model_version=teacher_model_version,
        scored_at=scored_at,
    )


class TeacherScorer(Protocol):
    """What the shadow consumer needs from a teacher: MatchLMTeacher scores pairs of decoded media
    (VideoInput), MatchLMFTeacher pairs of the worker's stored features (VideoFeatures)."""

    model_version: str
    inputs: str  # "media" or "features": what the runner must hand it (rci.streams.shadow.runner.PairInputs)

    def score_pairs(self, pairs: Sequence[tuple[VideoInput, VideoInput]] | Sequence[tuple[VideoFeatures, VideoFeatures]],
                    batch_size: int = 4) -> list[TeacherScore]: ...  # fmt: skip


@dataclass(frozen=True)
class ShadowSnapshot:
    """Aggregates over every pair seen so far (what the metrics endpoint exports)."""

    pairs: int
    agreement_rate: float  # NaN before the first pair
    mean_abs_gap: float  # mean |student - teacher|, NaN before the first pair
    student_deboosts: int
    teacher_deboosts: int
    student_histogram: tuple[int, ...]  # counts per bin, HISTOGRAM_BINS equal bins over [0, 1]
    teacher_histogram: tuple[int, ...]


class ShadowAggregate:
    """Running agreement rate, mean absolute score gap and score histograms of the sampled pairs."""

    def __init__(self, threshold: float, bins: int = HISTOGRAM_BINS) -> None:
        if bins < 1:
            raise ValueError("need at least one histogram bin")
        self.threshold = threshold
        self.bins = bins
        self._pairs = 0
        self._agreed = 0
        self._gap_sum = 0.0
        self._student_deboosts = 0
        self._teacher_deboosts = 0
        self._student_hist = [0] * bins
        self._teacher_hist = [0] * bins

    def add(self, student_score: float, teacher_score: float) -> bool:
        """Count one pair; -> whether the two models agreed on it."""
        agree = agreement(student_score, teacher_score, self.threshold)
        self._pairs += 1
        self._agreed += agree
        self._gap_sum += abs(student_score - teacher_score)
        self._student_deboosts += student_score >= self.threshold
        self._teacher_deboosts += teacher_score >= self.threshold
        self._student_hist[self._bin(student_score)] += 1
        self._teacher_hist[self._bin(teacher_score)] += 1
        return agree

    def snapshot(self) -> ShadowSnapshot:
        n = self._pairs
        return ShadowSnapshot(
            pairs=n,
            agreement_rate=self._agreed / n if n else math.nan,
            mean_abs_gap=self._gap_sum / n if n else math.nan,
            student_deboosts=self._student_deboosts,
            teacher_deboosts=self._teacher_deboosts,
            student_histogram=tuple(self._student_hist),
            teacher_histogram=tuple(self._teacher_hist),
        )

    def bin_edges(self) -> tuple[float, ...]:
        return tuple(i / self.bins for i in range(self.bins + 1))

    def _bin(self, score: float) -> int:
        return min(int(score * self.bins), self.bins - 1)  # a score of exactly 1.0 goes in the top bin


def _checked(score: float) -> float:
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise ValueError(f"scores must be finite and in [0, 1], got {score}")
    return float(score)
