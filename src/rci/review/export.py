"""`rci reviews export`: moderators' verdicts from `rci.reviews` as labelled pairs for training.

A verdict is about a decision: confirming a deboost or overturning a kept score says the pair is a
reproduction (label 1); confirming a kept score or overturning a deboost says it is not (label 0). The
latest verdict on a pair wins (the topic is keyed by video_id, so one video's verdicts keep their order).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.streams.contracts import ReviewVerdict
from rci.streams.kafka import make_consumer
from rci.streams.reindex import TopicReplay

log = get_logger(__name__)


def labelled_pairs(verdicts: Iterable[ReviewVerdict]) -> list[dict[str, object]]:
    """One row per (video, candidate) reviewed, from its latest verdict; verdicts without a candidate pair nothing."""
    latest: dict[tuple[str, str], ReviewVerdict] = {}
    for verdict in verdicts:
        if verdict.candidate_id is not None:
            latest[(verdict.video_id, verdict.candidate_id)] = verdict
    return [
        {"query_id": v.video_id, "candidate_id": v.candidate_id,
         "label": int(v.deboost if v.verdict == "confirm" else not v.deboost),
         "verdict": v.verdict, "reason": v.reason, "reviewer": v.reviewer, "score": v.score,
         "model_version": v.model_version, "reviewed_at": v.reviewed_at}
        for v in latest.values()
    ]  # fmt: skip


def read_verdicts(settings: Settings) -> tuple[list[ReviewVerdict], int]:
    """Every verdict on the topic now (up to its end at start), and how many records broke the contract."""
    consumer = make_consumer(settings, f"rci-reviews-export-{uuid.uuid4().hex[:12]}")
    verdicts, invalid = [], 0
    try:
        for batch in TopicReplay(consumer, settings.topic_reviews).batches(500):
            for message in batch:
                try:
                    verdicts.append(ReviewVerdict.model_validate_json(message.value() or b""))
                except ValidationError:
                    invalid += 1
    finally:
        consumer.close()
    return verdicts, invalid


def export_pairs(settings: Settings, out: Path) -> dict[str, int]:
    """Write the labelled pairs as JSON lines to `out`; -> counts for the command's summary."""
    verdicts, invalid = read_verdicts(settings)
    rows = labelled_pairs(verdicts)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return {"verdicts": len(verdicts), "pairs": len(rows), "reproductions": sum(r["label"] for r in rows),
            "invalid": invalid}  # fmt: skip
