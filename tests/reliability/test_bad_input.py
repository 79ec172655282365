"""Hostile input (rci.media.hostile): every family is refused with its own DLQ code.

* broker-free (slow): 1,000 hostile records interleaved with 40 odd-but-valid events through the
  worker's own batch code (`BatchRunner.handle`: contract, allow-listed fetch, decode, frozen
  encoders, feature cache, retrieval on Milvus Lite, MatchLite, the outcome sink) with its real
  parts; only the Kafka producer under the sink records instead of sending. Any exception out of
  `handle` is what makes the real worker exit, so none may escape;
* end to end (integration, slow): 70 hostile records (two per family) interleaved with 20 valid
  ones through a real `rci worker` on the real broker, S3 server and Milvus Lite: each hostile one
  is dead-lettered with its code, every valid one is scored once, the worker never dies.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest

from benchmarks.faults import Ledger, OutputReader, judge, produce_all
from rci.media.decode import decode_media
from rci.media.fetch import fetch_media
from rci.media.hostile import HostileCase, MediaLayout, families, hostile_corpus, unusual_valid_records, write_clips
from rci.media.policy import MediaPolicy
from rci.core.errors import RejectCode, RejectedEvent
from rci.core.settings import Settings
from rci.streams.components import open_serving_parts
from rci.streams.contracts import DeadLetterRecord, ScoreRecord, parse_published
from rci.streams.kafka import DLQ_MAX_MESSAGE_BYTES
from rci.streams.metrics import WorkerMetrics
from rci.streams.pipeline import InputRecord, ScoringPipeline
from rci.streams.processes import ChildProcess
from rci.streams.sink import OutcomeSink
from rci.streams.worker import BatchRunner
from tests.reliability.conftest import local_layout
from tests.streams.worker_harness import MAX_FRAMES

OFFLINE_HOSTILE = 1000
# internal_error is no input's fault: a record gets it only when its processing keeps raising something
# unexpected (tests/streams/test_worker.py, test_isolation.py); no hostile input may provoke it
EVENT_CODES = set(RejectCode) - {RejectCode.INTERNAL_ERROR}
OFFLINE_VALID = 40


def layer_verdict(case: HostileCase, policy: MediaPolicy) -> RejectCode | None:
    """What contract + fetch + decode say about one record (None: accepted)."""
    try:
        event = parse_published(case.value, case.key)
        source = asyncio.run(fetch_media(event.media_uri, policy))
        decode_media(source, policy)
    except RejectedEvent as rejection:
        return rejection.code
    return None


@pytest.fixture(scope="module")
def offline_corpus(
    tmp_path_factory: pytest.TempPathFactory, clips: list[Path]
) -> tuple[list[HostileCase], MediaPolicy, MediaLayout]:
    root = tmp_path_factory.mktemp("hostile")
    layout = MediaLayout(root / "media", root / "outside", max_bytes=4 * 1024 * 1024)
    policy = MediaPolicy(allowed_prefixes=(layout.media_dir.as_uri() + "/",), max_bytes=layout.max_bytes, max_frames=MAX_FRAMES)
    return hostile_corpus(layout, clips[0], count=OFFLINE_HOSTILE, seed=1), policy, layout


def test_corpus_covers_every_family_with_distinct_records(offline_corpus):
    cases, _, _ = offline_corpus
    counts = families(cases)
    assert len(cases) == OFFLINE_HOSTILE and len(counts) >= 30 and min(counts.values()) >= 20
    assert len({c.identity for c in cases}) == len(cases)  # each dead letter traces back to one case
    assert {c.code for c in cases} == EVENT_CODES  # every code of the event's fault is provoked


class RecordingProducer:
    """Stands in for confluent_kafka.Producer under the sink: keeps what would have been sent."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: object) -> None:
        self.records.append((topic, key, value))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_thousand_hostile_records_among_valid_ones_through_the_workers_batch_code(
    offline_corpus, untrained_model_dir: Path, tmp_path: Path
):
    cases, policy, layout = offline_corpus
    settings = Settings(
        data_dir=tmp_path / "rci", model_dir=untrained_model_dir, media_max_frames=MAX_FRAMES,
        media_max_bytes=layout.max_bytes, media_allowed_prefixes=policy.allowed_prefixes,
        milvus_uri=str(tmp_path / "milvus.db"), metrics_port=0, batch_max_size=16,
    )  # fmt: skip
    valid_clips = write_clips(layout.media_dir / "valid", 4)
    ledger = Ledger()
    records = [ledger.add_hostile(c) for c in cases]
    records += [ledger.add_valid(k, v) for k, v in unusual_valid_records(valid_clips, OFFLINE_VALID)]
    random.Random(5).shuffle(records)

    parts = await open_serving_parts(settings)
    metrics = WorkerMetrics()
    producer = RecordingProducer()
    sink = OutcomeSink(producer, "scores", "dlq", max_record_bytes=DLQ_MAX_MESSAGE_BYTES)
    runner = BatchRunner(ScoringPipeline(parts.features, parts.index, parts.scorer, parts.model, metrics), sink, metrics)
    try:
        for start in range(0, len(records), settings.batch_max_size):
            batch = [
                InputRecord(key, value, "video.published", 0, offset, int(time.time() * 1000))
                for offset, (key, value) in enumerate(records[start : start + settings.batch_max_size], start)
            ]
            outcomes = await runner.handle(batch)  # an exception here is the real worker exiting
            assert len(outcomes) == len(batch)
    finally:
        await parts.aclose()

    scores = [ScoreRecord.model_validate_json(v) for t, _, v in producer.records if t == "scores"]
    dead = [(k, DeadLetterRecord.model_validate_json(v)) for t, k, v in producer.records if t == "dlq"]
    verdict = judge(ledger, scores, dead)
    assert verdict.ok, (verdict.summary(), verdict.hostile_wrong_code[:10], verdict.lost[:10], verdict.valid_on_dlq[:10])
    assert (verdict.hostile, verdict.valid, verdict.duplicates) == (OFFLINE_HOSTILE, OFFLINE_VALID, 0)
    assert set(verdict.codes) == {c.value for c in EVENT_CODES}


def test_fifo_in_the_media_folder_is_refused_without_being_opened(offline_corpus):
    """A FIFO opened for reading blocks until a writer comes: refusing it must not open it."""
    corpus, policy, layout = offline_corpus
    cases = [c for c in corpus if c.family == "allow.special_file"]
    fifo = layout.hostile_dir / "fifo.mp4"
    assert fifo.exists() and cases
    for case in cases:
        assert layer_verdict(case, policy) == RejectCode.MEDIA_NOT_ALLOWED
    with pytest.raises(OSError):  # ENXIO: nobody has the FIFO open for reading
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


# --- end to end -------------------------------------------------------------------------------------

E2E_HOSTILE = 70  # two of every family: the worker's code paths, not volume (the 1,000 run above)
E2E_VALID = 20  # every quirk of unusual_valid_records twice


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_hostile_records_interleaved_with_valid_ones_through_a_real_worker(
    worker_settings: Settings, s3_server, clips: list[Path], tmp_path: Path
):
    media_bucket = f"rci-media-{worker_settings.s3_bucket.rsplit('-', 1)[-1]}"
    s3_server.create_bucket(media_bucket)
    s3_prefix = f"s3://{media_bucket}/uploads/"
    settings = worker_settings.model_copy(
        update={"media_allowed_prefixes": (worker_settings.media_dir.as_uri() + "/", s3_prefix)}
    )
    layout = local_layout(settings, tmp_path, s3_allowed=s3_prefix)
    local_clips = [Path(settings.media_dir / c.name) for c in clips]
    for src, dst in zip(clips, local_clips, strict=True):
        dst.write_bytes(src.read_bytes())
    hostile = hostile_corpus(layout, local_clips[0], count=E2E_HOSTILE, seed=2)
    ledger = Ledger()
    records = [ledger.add_hostile(c) for c in hostile]
    records += [ledger.add_valid(k, v) for k, v in unusual_valid_records(local_clips, E2E_VALID)]
    random.Random(3).shuffle(records)
    produce_all(settings, records)

    worker = ChildProcess("worker", settings, tmp_path / "worker.log")
    reader = OutputReader(settings)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and worker.alive() and not reader.done(ledger):
            reader.poll(1.0)
        reader.poll(3.0)  # anything beyond the expected outputs shows up here
        alive = worker.alive()
    finally:
        code = worker.stop()
        reader.close()
    verdict = judge(ledger, reader.scores, reader.dead)
    assert alive, f"worker died (exit {code}):\n{worker.log_tail()}"
    assert verdict.ok, (verdict.summary(), verdict.hostile_wrong_code[:10], verdict.lost[:10], worker.log_tail())
    assert verdict.duplicates == 0  # a steady run scores each event once
    assert len(verdict.codes) >= 9, verdict.codes
