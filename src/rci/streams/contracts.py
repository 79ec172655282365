"""The four topic contracts of docs/contract.md as pydantic models.

These are public interfaces: outside producers write `video.published`, downstream ranking
reads `rci.scores`. The JSON Schema files in `src/rci/streams/schemas/` are generated from these
models (`python -m rci.streams.contracts`) and a test keeps them in sync.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

from rci.core import rfc3339
from rci.core.errors import RejectCode, RejectedEvent

SCHEMA_DIR = Path(__file__).parent / "schemas"
VIDEO_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
MEDIA_URI_PATTERN = r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+|file:///.+)$"
RFC3339_PATTERN = rfc3339.PATTERN
MODALITIES = ("visual", "audio", "text")


def _parseable_rfc3339(value: str) -> str:
    # The pattern checks the shape; this rejects impossible dates like 2026-02-30, with the same
    # parser every later step uses (rci.core.rfc3339), so an accepted time is readable downstream.
    rfc3339.parse(value)
    return value


def _not_a_boolean(value: object) -> object:
    # JSON `true` is not the integer 1 (the JSON Schema says "type": "integer"), but pydantic's
    # Literal[1] compares by value and True == 1, even in strict mode.
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


VideoId = Annotated[str, StringConstraints(pattern=VIDEO_ID_PATTERN)]
Rfc3339 = Annotated[str, StringConstraints(pattern=RFC3339_PATTERN), AfterValidator(_parseable_rfc3339)]
# allow_inf_nan=False rather than a validator function: it keeps Field(ge/le) rendered as JSON Schema
# minimum/maximum (after an AfterValidator they came out as non-standard `ge`/`le` keys).
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
SchemaVersion = Annotated[Literal[1], BeforeValidator(_not_a_boolean)]
Modality = Literal["visual", "audio", "text"]


class _Contract(BaseModel):
    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class PublishedEvent(_Contract):
    """`video.published`: one video went live. Unknown extra fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    schema_version: SchemaVersion
    video_id: VideoId
    media_uri: Annotated[str, StringConstraints(pattern=MEDIA_URI_PATTERN, max_length=2048)]
    title: Annotated[str, StringConstraints(max_length=1000)]
    sticker_text: Annotated[str, StringConstraints(max_length=1000)] | None = None
    creator_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    duration_s: Annotated[FiniteFloat, Field(ge=0)] | None = Field(None, description="A hint only; the media decides.")
    published_at: Rfc3339

    @property
    def text(self) -> str:
        """Title and sticker text, the text modality's input."""
        return " ".join(part for part in (self.title, self.sticker_text or "") if part)


class Evidence(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    matched_segments: list[tuple[float, float, float, float]] = Field(
        default_factory=list,
        description="[query_start_s, query_end_s, candidate_start_s, candidate_end_s] per matched segment.",
    )


class ScoreRecord(_Contract):
    """`rci.scores`: one record per accepted input event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    video_id: VideoId
    candidate_id: VideoId | None
    retrieval_similarity: FiniteFloat | None
    score: Annotated[FiniteFloat, Field(ge=0.0, le=1.0)]
    deboost: bool
    threshold: FiniteFloat
    model_version: Annotated[str, StringConstraints(min_length=1)]
    modalities: list[Modality]
    evidence: Evidence = Field(default_factory=Evidence)
    published_at: Rfc3339
    scored_at: Rfc3339
    latency_ms: FiniteFloat


class DeadLetterRecord(_Contract):
    """`video.published.dlq`: an input record that cannot be scored, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error: RejectCode
    detail: str
    original: str = Field(description="The original record value, base64.")
    topic: str
    partition: int
    offset: int
    failed_at: Rfc3339

    def original_bytes(self) -> bytes:
        return base64.b64decode(self.original)


class ShadowRecord(_Contract):
    """`rci.shadow`: the teacher's score for a sampled pair, next to the student's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    video_id: VideoId
    candidate_id: VideoId | None
    student_score: Annotated[FiniteFloat, Field(ge=0.0, le=1.0)]
    teacher_score: Annotated[FiniteFloat, Field(ge=0.0, le=1.0)]
    agree: bool
    student_model_version: str
    teacher_model_version: str
    scored_at: Rfc3339


class ReviewVerdict(_Contract):
    """`rci.reviews`: a moderator's verdict on one score, from `rci review`; verdicts become training labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    video_id: VideoId
    candidate_id: VideoId | None
    verdict: Literal["confirm", "overturn"] = Field(
        description="confirm: the score's decision stands; overturn: it was wrong (a deboost of an original, or a "
                    "copy let through).")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    reviewer: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    score: Annotated[FiniteFloat, Field(ge=0.0, le=1.0)]
    deboost: bool = Field(description="The decision the verdict is about.")
    model_version: Annotated[str, StringConstraints(min_length=1)]
    reviewed_at: Rfc3339


CONTRACTS: dict[str, type[_Contract]] = {
    "video.published": PublishedEvent,
    "rci.scores": ScoreRecord,
    "video.published.dlq": DeadLetterRecord,
    "rci.shadow": ShadowRecord,
    "rci.reviews": ReviewVerdict,
}


def parse_published(value: bytes | None, key: bytes | None = None) -> PublishedEvent:
    """Decode and validate one `video.published` record, or raise RejectedEvent with its code."""
    if value is None:
        raise RejectedEvent(RejectCode.INVALID_JSON, "record has no value (tombstone)")
    try:
        payload = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RejectedEvent(RejectCode.INVALID_JSON, f"value is not UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:  # thousands of nested `[` or `{`: beyond what any event needs
        raise RejectedEvent(RejectCode.INVALID_JSON, "value nests JSON arrays or objects too deeply") from exc
    except ValueError as exc:  # an integer of more than 4300 digits (CPython's int parsing limit)
        raise RejectedEvent(RejectCode.INVALID_JSON, f"value holds an unreadable JSON number: {str(exc)[:200]}") from exc
    if not isinstance(payload, dict):
        raise RejectedEvent(RejectCode.INVALID_JSON, f"value is a JSON {type(payload).__name__}, not an object")
    if payload.get("schema_version", 1) != 1 and isinstance(payload.get("schema_version"), int):
        raise RejectedEvent(
            RejectCode.UNSUPPORTED_SCHEMA_VERSION, f"schema_version {payload['schema_version']} is not supported"
        )
    try:
        event = PublishedEvent.model_validate(payload)
    except ValidationError as exc:
        raise RejectedEvent(RejectCode.SCHEMA_VIOLATION, _summarise(exc)) from exc
    if key is not None and key != event.video_id.encode("utf-8"):
        raise RejectedEvent(RejectCode.INVALID_KEY, "record key is not the event's video_id")
    return event


def parse_published_record(value: bytes | None, key: bytes | None) -> PublishedEvent:
    """A record read from `video.published`: the key is required (it carries per-video ordering,
    CONTRACT.md) and must be the event's video_id; otherwise as `parse_published`."""
    if key is None:
        raise RejectedEvent(RejectCode.INVALID_KEY, "record has no key; the key must be the video_id")
    return parse_published(value, key)


def _summarise(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(parts)


def json_schemas() -> dict[str, dict]:
    """JSON Schema per topic, as checked into src/rci/streams/schemas/."""
    return {topic: model.model_json_schema(mode="serialization" if topic != "video.published" else "validation")
            for topic, model in CONTRACTS.items()}


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for topic, schema in json_schemas().items():
        path = directory / f"{topic}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m rci.streams.contracts: regenerate the checked-in schemas
    for p in write_schemas():
        print(p)
