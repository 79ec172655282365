"""Fuzzing the `video.published` contract: `parse_published` either accepts a record or raises
`RejectedEvent` with a code; any other exception would crash the worker on that record forever
(it is re-delivered after every restart: a poison pill).

An accepted event must also survive the pipeline's own pure steps on it (timestamps in
milliseconds for retrieval and the in-batch candidate search, the text modality, the JSON
round trip), or it turns into a poison pill one stage later.

About 1,300 generated records per run (see `EXAMPLES`), plus the explicit `@example`s.
"""

from __future__ import annotations

import json
import re

import pytest

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rci.core.errors import RejectCode, RejectedEvent
from rci.retrieval.store import to_epoch_ms
from rci.streams.contracts import VIDEO_ID_PATTERN, PublishedEvent, parse_published
from rci.streams.pipeline import published_ms

EXAMPLES = 330  # per test below; 4 tests
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

VALID = {
    "schema_version": 1,
    "video_id": "vid-1",
    "media_uri": "file:///srv/media/a.mp4",
    "title": "a clip",
    "published_at": "2026-11-22T10:00:00Z",
}


def verdict(value: bytes | None, key: bytes | None) -> PublishedEvent | RejectCode:
    """The contract's answer, checked for the invariants every answer must keep."""
    try:
        event = parse_published(value, key)
    except RejectedEvent as rejection:
        assert isinstance(rejection.code, RejectCode)
        return rejection.code
    assert re.fullmatch(VIDEO_ID_PATTERN.strip("^$"), event.video_id)
    assert key is None or key == event.video_id.encode()
    # what the pipeline does with every accepted event, before any I/O
    assert published_ms(event) == to_epoch_ms(event.published_at)
    assert isinstance(event.text, str)
    assert parse_published(event.to_json_bytes(), key) == event
    return event


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40)
)
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
keys = st.one_of(st.none(), st.binary(max_size=20), st.just(b"vid-1"))

# Values that are close to valid: realistic shapes for every field, including the edge cases.
field_values = {
    "schema_version": st.one_of(st.integers(-3, 3), st.just(True), st.just(1.0), st.just("1")),
    "video_id": st.one_of(st.from_regex(r"[A-Za-z0-9._:-]{1,130}", fullmatch=True), st.text(max_size=20)),
    "media_uri": st.one_of(
        st.from_regex(r"(file|s3|http|FILE)://[a-z/.%0-9-]{0,30}", fullmatch=True),
        st.builds(lambda tail: "file:///srv/media/" + tail, st.text(max_size=30)),
    ),
    "title": st.text(max_size=1005),
    "sticker_text": st.one_of(st.none(), st.text(max_size=1005)),
    "creator_id": st.one_of(st.none(), st.text(max_size=130)),
    "duration_s": st.one_of(st.none(), st.floats(), st.integers(), st.text(max_size=5)),
    "published_at": st.one_of(
        st.from_regex(
            r"\d{4}-[01]\d-[0-3]\d[Tt ][0-2]\d:[0-6]\d:[0-6]\d(\.\d{1,9})?([Zz]|[+-][0-2]\d:[0-5]\d)", fullmatch=True
        ),
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        st.text(max_size=30),
    ),
}


@st.composite
def mutated_events(draw: st.DrawFn) -> dict:
    """A valid event with some fields replaced by near-valid values, some dropped, some added."""
    event = dict(VALID)
    for name in draw(st.lists(st.sampled_from(sorted(field_values)), max_size=4, unique=True)):
        event[name] = draw(field_values[name])
    for name in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=2, unique=True)):
        event.pop(name, None)
    event.update(draw(st.dictionaries(st.text(max_size=8), json_value, max_size=2)))
    return event


@FUZZ
@given(value=st.one_of(st.none(), st.binary(max_size=300)), key=keys)
@example(value=b"[" * 100_000 + b"]" * 100_000, key=None)  # nesting bomb: RecursionError in json
@example(value=b'{"schema_version": ' + b"9" * 5000 + b"}", key=None)  # int bomb: ValueError in json
@example(value=b'{"video_id": "a", "x": ' + b"{" * 50_000 + b"}" * 50_000 + b"}", key=b"a")
def test_any_bytes_are_accepted_or_rejected_with_a_code(value: bytes | None, key: bytes | None):
    verdict(value, key)


@FUZZ
@given(payload=json_value, key=keys)
def test_any_json_value_is_accepted_or_rejected_with_a_code(payload: object, key: bytes | None):
    verdict(json.dumps(payload).encode(), key)


@FUZZ
@given(event=mutated_events(), key=keys, ascii_only=st.booleans())
@example(event={**VALID, "published_at": "2026-11-22T10:00:00z"}, key=None, ascii_only=True)
@example(event={**VALID, "published_at": "2026-11-22t10:00:00Z"}, key=None, ascii_only=True)
@example(event={**VALID, "title": "\ud800"}, key=None, ascii_only=True)  # lone surrogate
@example(event={**VALID, "video_id": "vid-1\n"}, key=b"vid-1\n", ascii_only=True)
def test_near_valid_events_are_accepted_or_rejected_with_a_code(event: dict, key: bytes | None, ascii_only: bool):
    verdict(json.dumps(event, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"), key)


@FUZZ
@given(event=mutated_events(), encoding=st.sampled_from(["utf-16", "latin-1", "cp1252", "utf-32"]))
def test_events_in_other_encodings_are_accepted_or_rejected_with_a_code(event: dict, encoding: str):
    raw = json.dumps(event, ensure_ascii=False)
    answer = verdict(raw.encode(encoding, "replace"), None)
    if encoding.startswith("utf-"):  # the byte-order mark is never valid UTF-8
        assert answer == RejectCode.INVALID_JSON


def test_the_valid_reference_event_is_accepted():
    assert isinstance(verdict(json.dumps(VALID).encode(), b"vid-1"), PublishedEvent)


def test_boolean_schema_version_is_rejected_as_the_published_json_schema_does():
    """JSON `true` is not the integer 1: src/rci/streams/schemas/video.published.schema.json refuses it,
    so the worker must too (pydantic's Literal[1] alone lets True through: True == 1)."""
    import jsonschema

    from rci.streams.contracts import json_schemas

    payload = {**VALID, "schema_version": True}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(payload, json_schemas()["video.published"])
    assert verdict(json.dumps(payload).encode(), b"vid-1") == RejectCode.SCHEMA_VIOLATION
