"""Prometheus metrics of the shadow consumer (its own process, so its own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rci.streams.contracts import ScoreRecord, ShadowRecord
from rci.streams.metrics import ProcessMetrics
from rci.streams.shadow.logic import HISTOGRAM_BINS, ShadowAggregate


class ShadowMetrics(ProcessMetrics):
    """Agreement over any time window is `rate(rci_shadow_pairs_total{agree="true"}) /
    rate(rci_shadow_pairs_total)`; the gauges hold the running values since the process started.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        score_buckets = tuple(i / HISTOGRAM_BINS for i in range(1, HISTOGRAM_BINS + 1))
        self.scores_in = Counter("rci_shadow_scores_in", "rci.scores records consumed", registry=r)
        self.sampled = Counter("rci_shadow_sampled", "score records chosen by the sample", registry=r)
        self.skipped = Counter("rci_shadow_skipped", "sampled records not re-scored", ["reason"], registry=r)
        self.pairs = Counter("rci_shadow_pairs", "pairs scored by the teacher", ["agree"], registry=r)
        self.retries = Counter("rci_shadow_transient_retries", "batches retried after a transient error", registry=r)
        self.score = Histogram("rci_shadow_score", "scores of the sampled pairs", ["model"], buckets=score_buckets,
                               registry=r)  # fmt: skip
        self.abs_gap = Histogram("rci_shadow_abs_gap", "|student - teacher| per pair",
                                 buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0), registry=r)  # fmt: skip
        self.agreement_rate = Gauge("rci_shadow_agreement_rate", "share of pairs with the same deboost decision",
                                    ["student_model_version"], registry=r)  # fmt: skip
        self.mean_abs_gap = Gauge("rci_shadow_mean_abs_gap", "mean |student - teacher| score gap",
                                  ["student_model_version"], registry=r)  # fmt: skip
        self.stage_seconds = Histogram("rci_shadow_stage_seconds", "time per stage per batch", ["stage"],
                                       buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=r)  # fmt: skip
        self._readiness("rci_shadow_ready")
        self._aggregates: dict[str, ShadowAggregate] = {}

    def observe(self, scored: ScoreRecord, record: ShadowRecord) -> None:
        """Count one shadow record; the running aggregates are per student model version."""
        self.pairs.labels(str(record.agree).lower()).inc()
        self.score.labels("student").observe(record.student_score)
        self.score.labels("teacher").observe(record.teacher_score)
        self.abs_gap.observe(abs(record.student_score - record.teacher_score))
        version = record.student_model_version
        aggregate = self._aggregates.get(version)
        if aggregate is None or aggregate.threshold != scored.threshold:  # a new operating point starts afresh
            aggregate = self._aggregates[version] = ShadowAggregate(scored.threshold)
        aggregate.add(record.student_score, record.teacher_score)
        snapshot = aggregate.snapshot()
        self.agreement_rate.labels(version).set(snapshot.agreement_rate)
        self.mean_abs_gap.labels(version).set(snapshot.mean_abs_gap)
