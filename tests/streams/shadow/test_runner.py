"""The shadow runner without a broker: sampling, skips, record building, metrics.

The runner's boundaries (catalog lookup, media, teacher, writer) are in-memory fakes here; the
end-to-end test in test_e2e.py runs the real ones.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from rci.media.decoded import DecodedMedia
from rci.media.errors import MediaRejected
from rci.core.errors import RejectCode, TransientError
from rci.core.settings import Settings
from rci.streams.contracts import SCHEMA_DIR, PublishedEvent, ScoreRecord, ShadowRecord
from rci.streams.shadow.logic import agreement, is_sampled
from rci.streams.shadow.loop import ShadowLoop
from rci.streams.shadow.metrics import ShadowMetrics
from rci.streams.shadow.runner import DecodedInputs, ShadowRunner, StoredFeatures
from rci.streams.shadow.service import EXIT_CONFIG, run_shadow
from rci.streams.sink import SinkError

THRESHOLD = 0.5
SHADOW_SCHEMA = json.loads((SCHEMA_DIR / "rci.shadow.schema.json").read_text())


def event(vid: str) -> PublishedEvent:
    return PublishedEvent(schema_version=1, video_id=vid, media_uri=f"file:///media/{vid}.mp4",
                          title=f"title {vid}", sticker_text=f"sticker {vid}", published_at="2026-11-22T10:00:00Z")  # fmt: skip


def score(vid: str, candidate: str | None, value: float, version: str = "matchlite-a") -> ScoreRecord:
    return ScoreRecord(
        video_id=vid, candidate_id=candidate, retrieval_similarity=0.9 if candidate else None, score=value,
        deboost=value >= THRESHOLD, threshold=THRESHOLD, model_version=version, modalities=["visual", "audio"],
        published_at="2026-11-22T10:00:00Z", scored_at="2026-11-22T10:00:01Z", latency_ms=1000.0,
    )  # fmt: skip


def student_score(vid: str) -> float:
    return round((sum(map(ord, vid)) % 97) / 96, 4)


def teacher_score(query_title: str, candidate_title: str) -> float:
    return round((sum(map(ord, query_title + candidate_title)) % 89) / 88, 4)


class DictLookup:
    def __init__(self, events: dict[str, PublishedEvent]) -> None:
        self.known = events
        self.asked: list[set[str]] = []

    async def events(self, video_ids: set[str]) -> dict[str, PublishedEvent]:
        self.asked.append(set(video_ids))
        return {v: self.known[v] for v in video_ids if v in self.known}


class FakeMedia:
    """Tiny decoded media (two real frames, one padding frame); chosen videos fail as undecodable."""

    def __init__(self, rejected: set[str] = frozenset()) -> None:
        self.rejected = rejected
        self.decoded: list[str] = []

    async def decode(self, media_uri: str) -> DecodedMedia:
        video_id = media_uri.rsplit("/", 1)[-1].removesuffix(".mp4")  # the events' file:///media/<id>.mp4
        self.decoded.append(video_id)
        if video_id in self.rejected:
            raise MediaRejected(RejectCode.MEDIA_UNDECODABLE, "broken on purpose")
        frames = np.zeros((3, 8, 8, 3), dtype=np.uint8)
        return DecodedMedia(frames=frames, frame_mask=np.array([True, True, False]), audio=None, log_mel=None,
                            duration_s=2.0)  # fmt: skip


@dataclass
class FakeScore:
    score: float


class FakeTeacher:
    model_version = "matchlm-fake-1"

    def __init__(self) -> None:
        self.pairs_seen = 0

    def score_pairs(self, pairs: Sequence[tuple], batch_size: int = 4) -> list[FakeScore]:
        self.pairs_seen += len(pairs)
        for query, candidate in pairs:
            assert query.frames.shape == (2, 8, 8, 3)  # only the real frames reach the teacher
        return [FakeScore(teacher_score(q.title, c.title)) for q, c in pairs]


class ListWriter:
    def __init__(self, fail: bool = False) -> None:
        self.records: list[ShadowRecord] = []
        self.fail = fail

    async def write(self, records: Sequence[ShadowRecord]) -> None:
        if self.fail:
            raise SinkError("broker did not ack")
        self.records.extend(records)


def runner(rate: float, events: dict[str, PublishedEvent], rejected: set[str] = frozenset(),
           writer: ListWriter | None = None) -> ShadowRunner:  # fmt: skip
    return ShadowRunner(DictLookup(events), DecodedInputs(FakeMedia(rejected)), FakeTeacher(), writer or ListWriter(),
                        ShadowMetrics(), rate)  # fmt: skip


def value(record: ScoreRecord) -> bytes:
    return record.to_json_bytes()


def metric(r: ShadowRunner, name: str, **labels: str) -> float:
    found = r.metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_each_sampled_pair_gets_one_contract_record_with_both_scores():
    ids = [f"v{i}" for i in range(6)]
    events = {v: event(v) for v in ids}
    scores = [score(v, ids[i - 1], student_score(v)) for i, v in enumerate(ids) if i > 0]
    r = runner(1.0, events)

    records = await r.handle([value(s) for s in scores])

    assert [rec.video_id for rec in records] == [s.video_id for s in scores]
    assert r.writer.records == records
    for s, rec in zip(scores, records, strict=True):
        jsonschema.validate(json.loads(rec.to_json_bytes()), SHADOW_SCHEMA)
        expected_teacher = teacher_score(f"title {s.video_id}", f"title {s.candidate_id}")
        assert rec.candidate_id == s.candidate_id
        assert rec.student_score == s.score
        assert rec.teacher_score == expected_teacher
        assert rec.agree == ((s.score >= THRESHOLD) == (expected_teacher >= THRESHOLD))
        assert rec.student_model_version == "matchlite-a"
        assert rec.teacher_model_version == FakeTeacher.model_version
    # each distinct video is decoded once per batch, though most are both a query and a candidate
    assert sorted(r.inputs.media.decoded) == sorted(ids)


async def test_the_sample_is_the_hash_sample_and_pairs_without_candidate_are_skipped():
    ids = [f"video-{i:03d}" for i in range(120)]
    events = {v: event(v) for v in ids}
    scores = [score(v, None if i % 5 == 0 else ids[i - 1], student_score(v)) for i, v in enumerate(ids)]
    r = runner(0.25, events)

    records = await r.handle([value(s) for s in scores])

    sampled = [s for s in scores if is_sampled(s.video_id, 0.25)]
    with_candidate = [s.video_id for s in sampled if s.candidate_id is not None]
    assert 0 < len(with_candidate) < len(scores)
    assert [rec.video_id for rec in records] == with_candidate
    assert metric(r, "rci_shadow_sampled_total") == len(sampled)
    assert metric(r, "rci_shadow_skipped_total", reason="no_candidate") == len(sampled) - len(with_candidate)
    # nothing outside the sample was looked up or decoded
    assert set().union(*r.lookup.asked) == set(with_candidate) | {s.candidate_id for s in sampled if s.candidate_id}


async def test_unknown_videos_rejected_media_and_garbage_are_skipped_and_counted():
    events = {v: event(v) for v in ("a", "b", "c", "d", "e")}
    scores = [
        score("b", "a", 0.9),  # fine
        score("c", "ghost", 0.2),  # candidate never published
        score("d", "e", 0.7),  # candidate's media now undecodable
    ]
    r = runner(1.0, events, rejected={"e"})

    records = await r.handle([value(s) for s in scores] + [b"{not json", None])

    assert [rec.video_id for rec in records] == ["b"]
    assert metric(r, "rci_shadow_skipped_total", reason="unknown_video") == 1
    assert metric(r, "rci_shadow_skipped_total", reason="media_rejected") == 1
    assert metric(r, "rci_shadow_skipped_total", reason="invalid_record") == 2
    assert metric(r, "rci_shadow_pairs_total", agree="true") + metric(r, "rci_shadow_pairs_total", agree="false") == 1


class DictFeatureStore:
    """The worker's feature store: one entry per (video, encoder version) it encoded."""

    def __init__(self, stored: dict[tuple[str, str], object]) -> None:
        self.stored = stored
        self.asked: list[tuple[str, str]] = []

    async def get(self, video_id: str, encoder_version: str, media_uri: str | None = None) -> object | None:
        self.asked.append((video_id, encoder_version))
        return self.stored.get((video_id, encoder_version))


@dataclass(frozen=True)
class StoredVideo:
    video_id: str


class FeatureTeacher:
    """A feature-level teacher (as MatchLMFTeacher): it is handed the stored features, never media."""

    model_version = "matchlmf-fake-1"
    inputs = "features"

    def score_pairs(self, pairs: Sequence[tuple], batch_size: int = 16) -> list[FakeScore]:
        assert all(isinstance(v, StoredVideo) for pair in pairs for v in pair)
        return [FakeScore(teacher_score(q.video_id, c.video_id)) for q, c in pairs]


async def test_a_feature_teacher_reads_the_stored_features_of_its_encoders_and_skips_videos_without():
    events = {v: event(v) for v in ("a", "b", "c", "d")}
    store = DictFeatureStore({(v, "enc-1"): StoredVideo(v) for v in ("a", "b", "c")} | {("d", "enc-0"): StoredVideo("d")})
    r = ShadowRunner(DictLookup(events), StoredFeatures(store, "enc-1"), FeatureTeacher(), ListWriter(), ShadowMetrics(), 1.0)

    records = await r.handle([value(score("b", "a", 0.9)), value(score("c", "d", 0.1))])

    assert [(rec.video_id, rec.teacher_score) for rec in records] == [("b", teacher_score("b", "a"))]
    assert records[0].teacher_model_version == "matchlmf-fake-1"
    assert {version for _, version in store.asked} == {"enc-1"}  # only the teacher's encoders' features
    assert metric(r, "rci_shadow_skipped_total", reason="no_features") == 1  # d was encoded by other encoders


async def test_nothing_sampled_touches_no_boundary():
    r = runner(0.0, {"a": event("a"), "b": event("b")})
    assert await r.handle([value(score("b", "a", 0.3))]) == []
    assert r.lookup.asked == [] and r.inputs.media.decoded == [] and r.teacher.pairs_seen == 0


async def test_a_failed_write_is_transient_and_counts_no_pair():
    r = runner(1.0, {"a": event("a"), "b": event("b")}, writer=ListWriter(fail=True))
    with pytest.raises(TransientError):
        await r.handle([value(score("b", "a", 0.3))])
    assert metric(r, "rci_shadow_pairs_total", agree="true") + metric(r, "rci_shadow_pairs_total", agree="false") == 0


async def test_metrics_aggregate_agreement_gap_and_histograms_from_the_records():
    ids = [f"clip{i:02d}" for i in range(30)]
    events = {v: event(v) for v in ids}
    scores = [score(v, ids[i - 1], student_score(v), version="matchlite-a" if i % 2 else "matchlite-b")
              for i, v in enumerate(ids) if i > 0]  # fmt: skip
    r = runner(1.0, events)

    records = await r.handle([value(s) for s in scores[:10]])
    records += await r.handle([value(s) for s in scores[10:]])

    for version in ("matchlite-a", "matchlite-b"):
        mine = [rec for rec in records if rec.student_model_version == version]
        agree = [agreement(rec.student_score, rec.teacher_score, THRESHOLD) for rec in mine]
        assert [rec.agree for rec in mine] == agree
        gap = sum(abs(rec.student_score - rec.teacher_score) for rec in mine) / len(mine)
        assert metric(r, "rci_shadow_agreement_rate", student_model_version=version) == pytest.approx(sum(agree) / len(mine))
        assert metric(r, "rci_shadow_mean_abs_gap", student_model_version=version) == pytest.approx(gap)
    assert metric(r, "rci_shadow_pairs_total", agree="true") == sum(rec.agree for rec in records)
    assert metric(r, "rci_shadow_pairs_total", agree="false") == sum(not rec.agree for rec in records)
    for model, field in (("student", "student_score"), ("teacher", "teacher_score")):
        values = [getattr(rec, field) for rec in records]
        assert metric(r, "rci_shadow_score_count", model=model) == len(values)
        assert metric(r, "rci_shadow_score_sum", model=model) == pytest.approx(sum(values))
        below_half = sum(v <= 0.5 for v in values)
        assert metric(r, "rci_shadow_score_bucket", model=model, le="0.5") == below_half
    assert metric(r, "rci_shadow_abs_gap_count") == len(records)


def test_a_new_threshold_for_the_same_student_starts_a_fresh_aggregate():
    metrics = ShadowMetrics()
    first = score("b", "a", 0.6)
    metrics.observe(first, ShadowRecord(video_id="b", candidate_id="a", student_score=0.6, teacher_score=0.4,
                                        agree=False, student_model_version="matchlite-a",
                                        teacher_model_version="t", scored_at="2026-11-22T10:00:02Z"))  # fmt: skip
    moved = first.model_copy(update={"threshold": 0.3})
    metrics.observe(moved, ShadowRecord(video_id="b", candidate_id="a", student_score=0.6, teacher_score=0.4,
                                        agree=True, student_model_version="matchlite-a",
                                        teacher_model_version="t", scored_at="2026-11-22T10:00:03Z"))  # fmt: skip
    rate = metrics.registry.get_sample_value("rci_shadow_agreement_rate", {"student_model_version": "matchlite-a"})
    assert rate == 1.0 and not math.isnan(rate)



# --- the consumer loop: commits follow acknowledged writes ------------------------------------------


class FakeMessage:
    def __init__(self, partition: int, offset: int, payload: bytes) -> None:
        self._partition, self._offset, self._payload = partition, offset, payload

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "rci.scores"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._payload


class FakeConsumer:
    """Hands out the given batches, then asks the loop to stop; records commits in `journal`."""

    def __init__(self, batches: list[list[FakeMessage]], journal: list, stop: asyncio.Event,
                 loop: asyncio.AbstractEventLoop) -> None:  # fmt: skip
        self.batches, self.journal, self.stop, self.loop = list(batches), journal, stop, loop
        self.closed = False

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if self.batches:
            return self.batches.pop(0)
        self.loop.call_soon_threadsafe(self.stop.set)
        return []

    def commit(self, offsets: list, asynchronous: bool) -> None:
        assert asynchronous is False
        self.journal.append(("commit", sorted((tp.partition, tp.offset) for tp in offsets)))

    def close(self) -> None:
        self.closed = True


class JournalWriter(ListWriter):
    def __init__(self, journal: list, failures: int = 0) -> None:
        super().__init__()
        self.journal, self.failures = journal, failures

    async def write(self, records: Sequence[ShadowRecord]) -> None:
        if self.failures:
            self.failures -= 1
            raise SinkError("not acknowledged")
        self.journal.append(("write", [r.video_id for r in records]))


def scored_messages() -> tuple[dict[str, PublishedEvent], list[list[FakeMessage]]]:
    events = {v: event(v) for v in ("a", "b", "c", "d")}
    first = [FakeMessage(0, 10, value(score("b", "a", 0.7))), FakeMessage(1, 4, value(score("c", None, 0.0))),
             FakeMessage(0, 11, value(score("d", "c", 0.1)))]  # fmt: skip
    second = [FakeMessage(1, 5, value(score("c", "b", 0.2)))]
    return events, [first, second]


async def run_loop(r: ShadowRunner, batches: list[list[FakeMessage]], journal: list) -> FakeConsumer:
    stop = asyncio.Event()
    consumer = FakeConsumer(batches, journal, stop, asyncio.get_running_loop())
    loop = ShadowLoop(consumer, r, batch_size=8)
    try:
        await loop.run(stop)
    finally:
        await loop.aclose()
    return consumer


async def test_the_loop_commits_each_batch_after_its_records_were_acknowledged():
    journal: list = []
    events, batches = scored_messages()
    r = runner(1.0, events, writer=JournalWriter(journal, failures=1))  # the first write is retried

    consumer = await run_loop(r, batches, journal)

    assert journal == [
        ("write", ["b", "d"]), ("commit", [(0, 12), (1, 5)]),
        ("write", ["c"]), ("commit", [(1, 6)]),
    ]  # fmt: skip
    assert consumer.closed
    assert metric(r, "rci_shadow_transient_retries_total") == 1
    assert metric(r, "rci_shadow_scores_in_total") == 4


async def test_an_unexpected_error_stops_the_loop_without_committing():
    journal: list = []
    events, batches = scored_messages()

    class BrokenTeacher(FakeTeacher):
        def score_pairs(self, pairs: Sequence[tuple], batch_size: int = 4) -> list[FakeScore]:
            raise RuntimeError("a bug")

    r = ShadowRunner(DictLookup(events), DecodedInputs(FakeMedia()), BrokenTeacher(), JournalWriter(journal), ShadowMetrics(), 1.0)
    with pytest.raises(RuntimeError, match="a bug"):
        await run_loop(r, batches, journal)
    assert journal == []


def test_without_a_teacher_the_process_exits_with_a_config_error(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, model_dir=tmp_path / "no-models", metrics_port=0)
    assert run_shadow(settings) == EXIT_CONFIG
