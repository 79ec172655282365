"""Records as the topics carry them, for the review page's tests."""

from __future__ import annotations

from rci.streams.contracts import DeadLetterRecord, PublishedEvent, ScoreRecord, ShadowRecord


def score(video_id: str, value: float, candidate_id: str | None = "orig", threshold: float = 0.5, **extra: object) -> ScoreRecord:
    fields = dict(
        video_id=video_id, candidate_id=candidate_id, retrieval_similarity=0.9, score=value, deboost=value >= threshold,
        threshold=threshold, model_version="matchlite-test+enc.e1", modalities=["visual", "audio", "text"],
        evidence={"matched_segments": [[2.0, 6.0, 0.0, 4.0]]}, published_at="2026-12-01T10:00:00Z",
        scored_at="2026-12-01T10:00:01Z", latency_ms=900.0,
    )  # fmt: skip
    return ScoreRecord(**(fields | extra))


def event(video_id: str, title: str = "a title", duration_s: float | None = 8.0, **extra: object) -> PublishedEvent:
    return PublishedEvent(schema_version=1, video_id=video_id, media_uri=f"s3://media/{video_id}.mp4", title=title,
                          duration_s=duration_s, published_at="2026-12-01T10:00:00Z", **extra)  # fmt: skip


def shadow(of: ScoreRecord, teacher: float, agree: bool) -> ShadowRecord:
    return ShadowRecord(video_id=of.video_id, candidate_id=of.candidate_id, student_score=of.score, teacher_score=teacher,
                        agree=agree, student_model_version=of.model_version, teacher_model_version="matchlm-test",
                        scored_at="2026-12-01T10:00:05Z")  # fmt: skip


def dead_letter(offset: int) -> DeadLetterRecord:
    return DeadLetterRecord(error="invalid_json", detail="value is not UTF-8 JSON", original="bm90IGpzb24=",
                            topic="video.published", partition=0, offset=offset, failed_at="2026-12-01T10:00:02Z")  # fmt: skip
