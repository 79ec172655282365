"""Hostile input (media.hostile): every family is refused with its own DLQ code.

* offline: 1,000 hostile records through the same layers the worker uses (contract, allow-list
  fetch, decode), no services;
* end to end (integration, slow): 200 hostile records interleaved with 60 odd-but-valid events
  through a real `rci worker` on the real broker, S3 server and Milvus Lite: each hostile one is
  dead-lettered with its code, every valid one is scored once, the worker never dies.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest

from benchmarks.faults import KNOWN_BUGS, Ledger, OutputReader, judge, produce_all
from media.decode import decode_media
from media.fetch import fetch_media
from media.hostile import HostileCase, MediaLayout, families, hostile_corpus, unusual_valid_records
from media.policy import MediaPolicy
from rci.errors import RejectCode, RejectedEvent
from rci.settings import Settings
from streams.contracts import parse_published
from streams.processes import ChildProcess
from tests.reliability.conftest import local_layout
from tests.streams.worker_harness import MAX_FRAMES


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
    return hostile_corpus(layout, clips[0], count=1000, seed=1), policy, layout


def test_corpus_covers_every_family_with_distinct_records(offline_corpus):
    cases, _, _ = offline_corpus
    counts = families(cases)
    assert len(cases) == 1000 and len(counts) >= 30 and min(counts.values()) >= 20
    assert len({c.identity for c in cases}) == len(cases)  # each dead letter traces back to one case
    assert {c.code for c in cases} == set(RejectCode)  # every DLQ code is provoked


@pytest.mark.slow
def test_every_hostile_record_is_refused_with_its_code_by_the_worker_layers(offline_corpus):
    cases, policy, _ = offline_corpus
    # Known bugs (see test_contract_fuzz, test_known_bugs) are judged in focused failing tests.
    judged = [c for c in cases if c.family not in KNOWN_BUGS and c.key is not None]
    wrong = [(c.family, c.code.value, layer_verdict(c, policy)) for c in judged]
    wrong = [w for w in wrong if w[1] != w[2]]
    assert not wrong, wrong[:10]
    assert len(judged) >= 850


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


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(900)
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
    hostile = hostile_corpus(layout, local_clips[0], count=200, seed=2, exclude=KNOWN_BUGS)
    ledger = Ledger()
    records = [ledger.add_hostile(c) for c in hostile]
    records += [ledger.add_valid(k, v) for k, v in unusual_valid_records(local_clips, 60)]
    random.Random(3).shuffle(records)
    produce_all(settings, records)

    worker = ChildProcess("worker", settings, tmp_path / "worker.log")
    reader = OutputReader(settings)
    try:
        deadline = time.monotonic() + 600
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
