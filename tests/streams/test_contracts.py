"""The topic contracts of CONTRACT.md: field rules, dead-letter codes, and the checked-in JSON Schemas."""

from __future__ import annotations

import base64
import json

import jsonschema
import pytest
from pydantic import ValidationError

from rci.core.errors import RejectCode, RejectedEvent
from rci.streams.contracts import (
    CONTRACTS,
    SCHEMA_DIR,
    DeadLetterRecord,
    PublishedEvent,
    ScoreRecord,
    json_schemas,
    parse_published,
)

VALID_EVENT = {
    "schema_version": 1,
    "video_id": "vid-001",
    "media_uri": "s3://rci-media/videos/vid-001.mp4",
    "title": "a cat on a skateboard",
    "published_at": "2026-11-22T10:00:00Z",
}

VALID_SCORE = {
    "schema_version": 1,
    "video_id": "vid-002",
    "candidate_id": "vid-001",
    "retrieval_similarity": 0.93,
    "score": 0.87,
    "deboost": True,
    "threshold": 0.5,
    "model_version": "matchlite-test",
    "modalities": ["visual", "audio"],
    "evidence": {"matched_segments": [[0.0, 3.0, 1.0, 4.0]]},
    "published_at": "2026-11-22T10:00:00Z",
    "scored_at": "2026-11-22T10:00:04.120Z",
    "latency_ms": 4120.0,
}


def _event(**changes: object) -> dict:
    event = {**VALID_EVENT, **changes}
    return {k: v for k, v in event.items() if v is not _MISSING}


_MISSING = object()


# --- checked-in JSON Schemas -------------------------------------------------------------------------
def test_checked_in_schemas_match_the_models() -> None:
    generated = json_schemas()
    assert set(generated) == set(CONTRACTS)
    for topic, schema in generated.items():
        checked_in = json.loads((SCHEMA_DIR / f"{topic}.schema.json").read_text())
        assert checked_in == schema, f"src/rci/streams/schemas/{topic}.schema.json is stale: run python -m rci.streams.contracts"


@pytest.mark.parametrize("topic", sorted(CONTRACTS))
def test_checked_in_schemas_are_valid_json_schema(topic: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{topic}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)


def test_valid_examples_pass_the_json_schemas() -> None:
    jsonschema.validate(VALID_EVENT, json_schemas()["video.published"])
    jsonschema.validate(VALID_SCORE, json_schemas()["rci.scores"])


@pytest.mark.parametrize(
    "bad",
    [
        _event(video_id="has space"),
        _event(video_id="x" * 129),
        _event(media_uri="http://example.com/v.mp4"),
        _event(title="t" * 1001),
        _event(schema_version=2),
        _event(published_at="yesterday"),
        _event(title=_MISSING),
    ],
    ids=["video_id-space", "video_id-long", "media_uri-http", "title-long", "version-2", "published_at", "no-title"],
)
def test_outside_producers_can_check_events_with_the_json_schema(bad: dict) -> None:
    # A producer that only has the checked-in schema must be told the same as the worker would.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schemas()["video.published"])
    with pytest.raises(RejectedEvent):
        parse_published(json.dumps(bad).encode())


def test_json_schema_carries_numeric_ranges() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**VALID_SCORE, "score": 1.5}, json_schemas()["rci.scores"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_event(duration_s=-1), json_schemas()["video.published"])


# --- video.published field rules ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"video_id": "a"},
        {"video_id": "A-z_0.9:x" * 14 + "ab"},  # exactly 128 chars of every allowed class
        {"media_uri": "file:///srv/media/v.mp4"},
        {"media_uri": "s3://bucket.with-dots/k/e/y.mkv"},
        {"title": ""},
        {"title": "t" * 1000},
        {"title": "多语言 титул 🎬"},
        {"sticker_text": "s" * 1000},
        {"creator_id": "c" * 128},
        {"duration_s": 0},
        {"duration_s": 12.5},
        {"published_at": "2026-11-22T10:00:00.123456+02:00"},
        {"published_at": "2026-11-22t10:00:00z"},
    ],
)
def test_accepted_fields(changes: dict) -> None:
    event = parse_published(json.dumps(_event(**changes)).encode())
    for field, value in changes.items():
        assert getattr(event, field) == value


@pytest.mark.parametrize(
    "changes",
    [
        {"video_id": ""},
        {"video_id": "x" * 129},
        {"video_id": "a/b"},
        {"video_id": "é"},
        {"video_id": 42},
        {"media_uri": "https://cdn.example.com/v.mp4"},
        {"media_uri": "file://relative/v.mp4"},
        {"media_uri": "s3://UPPER/v.mp4"},
        {"media_uri": "s3://bucket/"},
        {"title": "t" * 1001},
        {"title": None},
        {"sticker_text": "s" * 1001},
        {"creator_id": "c" * 129},
        {"duration_s": -1},
        {"duration_s": "3"},
        {"published_at": "2026-02-30T10:00:00Z"},
        {"published_at": "2026-11-22 10:00"},
        {"published_at": 1732269600},
        {"schema_version": "1"},
        {"video_id": _MISSING},
        {"media_uri": _MISSING},
        {"published_at": _MISSING},
        {"schema_version": _MISSING},
    ],
)
def test_rejected_fields_are_schema_violations(changes: dict) -> None:
    with pytest.raises(RejectedEvent) as caught:
        parse_published(json.dumps(_event(**changes)).encode())
    assert caught.value.code is RejectCode.SCHEMA_VIOLATION


def test_non_finite_duration_is_rejected() -> None:
    with pytest.raises(ValidationError):
        PublishedEvent.model_validate(_event(duration_s=float("nan")))


def test_unknown_extra_fields_are_ignored() -> None:
    event = parse_published(json.dumps(_event(tags=["cats"], nested={"a": 1})).encode())
    assert event.video_id == "vid-001"
    assert "tags" not in event.model_dump() and "nested" not in json.loads(event.to_json_bytes())


def test_text_modality_joins_title_and_sticker() -> None:
    assert PublishedEvent.model_validate(_event(sticker_text="SALE")).text == "a cat on a skateboard SALE"
    assert PublishedEvent.model_validate(_event(title="")).text == ""


# --- dead-letter codes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "key", "code"),
    [
        (None, None, RejectCode.INVALID_JSON),
        (b"not json", None, RejectCode.INVALID_JSON),
        (b"\xff\xfe", None, RejectCode.INVALID_JSON),
        (b"[1, 2]", None, RejectCode.INVALID_JSON),
        (b'"a string"', None, RejectCode.INVALID_JSON),
        (json.dumps(_event(schema_version=2)).encode(), None, RejectCode.UNSUPPORTED_SCHEMA_VERSION),
        (json.dumps(_event(video_id="a b")).encode(), None, RejectCode.SCHEMA_VIOLATION),
        (json.dumps(VALID_EVENT).encode(), b"some-other-id", RejectCode.INVALID_KEY),
    ],
    ids=["tombstone", "not-json", "not-utf8", "array", "string", "version", "schema", "key"],
)
def test_parse_published_reject_codes(value: bytes | None, key: bytes | None, code: RejectCode) -> None:
    with pytest.raises(RejectedEvent) as caught:
        parse_published(value, key)
    assert caught.value.code is code
    assert caught.value.detail


def test_matching_key_is_accepted() -> None:
    assert parse_published(json.dumps(VALID_EVENT).encode(), b"vid-001").video_id == "vid-001"


def test_dead_letter_record_round_trips_the_original_bytes() -> None:
    original = b"\x00 not json \xff"
    record = DeadLetterRecord(
        error=RejectCode.INVALID_JSON,
        detail="value is not UTF-8 JSON",
        original=base64.b64encode(original).decode(),
        topic="video.published",
        partition=3,
        offset=17,
        failed_at="2026-11-22T10:00:01Z",
    )
    value = json.loads(record.to_json_bytes())
    assert value["error"] == "invalid_json"
    assert DeadLetterRecord.model_validate_json(record.to_json_bytes()).original_bytes() == original
    jsonschema.validate(value, json_schemas()["video.published.dlq"])


def test_dead_letter_error_must_be_a_known_code() -> None:
    with pytest.raises(ValidationError):
        DeadLetterRecord(error="oops", detail="", original="", topic="t", partition=0, offset=0,
                         failed_at="2026-11-22T10:00:01Z")  # fmt: skip


# --- rci.scores ----------------------------------------------------------------------------------------
def test_score_record_round_trips() -> None:
    record = ScoreRecord.model_validate(VALID_SCORE)
    assert json.loads(record.to_json_bytes()) == VALID_SCORE


@pytest.mark.parametrize(
    "changes",
    [{"score": 1.5}, {"score": -0.1}, {"modalities": ["smell"]}, {"extra_field": 1}, {"model_version": ""},
     {"latency_ms": float("inf")}],  # fmt: skip
)
def test_score_record_rules(changes: dict) -> None:
    with pytest.raises(ValidationError):
        ScoreRecord.model_validate({**VALID_SCORE, **changes})


def test_no_candidate_is_null_not_missing() -> None:
    record = ScoreRecord.model_validate({**VALID_SCORE, "candidate_id": None, "retrieval_similarity": None, "score": 0.0})
    value = json.loads(record.to_json_bytes())
    assert value["candidate_id"] is None and value["retrieval_similarity"] is None
