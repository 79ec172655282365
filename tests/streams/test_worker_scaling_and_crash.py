"""The worker under the conditions a deployment meets: kill -9 and restart, two processes in one
group, a third-party producer (kcat), the Prometheus endpoint. Real broker, Milvus Lite, media."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rci.services.ports import free_port
from rci.core.settings import Settings
from rci.streams.processes import ChildProcess
from rci.streams.worker import EXIT_INTERRUPTED
from benchmarks.outage import TcpProxy
from tests.streams.worker_harness import (
    encode, produce, published_event, read_outputs, ready_status, wait_for_status, write_media_library,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def kcat_produce(settings: Settings, events: list[dict]) -> None:
    lines = "".join(f"{e['video_id']}\t{json.dumps(e)}\n" for e in events)
    subprocess.run(
        ["kcat", "-b", settings.kafka_bootstrap, "-P", "-t", settings.topic_published, "-K", "\t"],
        input=lines.encode(), check=True, timeout=60,
    )


def kcat_read_scores(settings: Settings) -> list[dict]:
    out = subprocess.run(
        ["kcat", "-b", settings.kafka_bootstrap, "-C", "-t", settings.topic_scores, "-e", "-q", "-f", "%k\t%s\n"],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode()
    records = []
    for line in filter(None, out.splitlines()):
        key, value = line.split("\t", 1)
        record = json.loads(value)
        assert record["video_id"] == key
        records.append(record)
    return records


def test_kill_9_mid_stream_then_restart_scores_every_event_from_kcat(worker_settings: Settings, tmp_path: Path):
    media = write_media_library(worker_settings.media_dir, 8)
    events = [published_event(f"k{i:03d}", media[i % len(media)], i) for i in range(60)]
    kcat_produce(worker_settings, events[:40])

    first = ChildProcess("worker", worker_settings, tmp_path / "worker1.log")
    try:
        partial = read_outputs(worker_settings, expected_total=10, timeout_s=400)
    finally:
        first.kill()  # kill -9 mid-stream: no drain, no final commit
    assert len(partial.scores) >= 10, first.log_tail()

    kcat_produce(worker_settings, events[40:])
    second = ChildProcess("worker", worker_settings, tmp_path / "worker2.log")
    try:
        out = read_outputs(worker_settings, expected_total=len(events) + len(partial.scores), timeout_s=400)
        deadline = time.monotonic() + 400
        while set(out.scored_ids) != {e["video_id"] for e in events} and time.monotonic() < deadline:
            out = read_outputs(worker_settings, expected_total=10**6, timeout_s=10)
    finally:
        assert second.stop() == 0, second.log_tail()

    assert set(out.scored_ids) == {e["video_id"] for e in events}, second.log_tail()
    assert not out.dead_letters
    # at least once: a re-delivered event carries the same values as its first score
    by_id: dict[str, set] = {}
    for s in out.scores:
        by_id.setdefault(s.video_id, set()).add((s.candidate_id, s.score, s.deboost))
    assert all(len(values) == 1 for values in by_id.values()), {k: v for k, v in by_id.items() if len(v) > 1}
    # an independent client reads what the worker wrote
    assert {r["video_id"] for r in kcat_read_scores(worker_settings)} == {e["video_id"] for e in events}


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            name = series.split("{", 1)[0]  # summed over labels
            values[name] = values.get(name, 0.0) + float(value)
    return values


def watch_readiness(ports: list[int], min_s: float, timeout_s: float) -> list[list[int]]:
    """Poll each port's /ready for at least `min_s`, until all answer 200; -> the statuses each answered."""
    seen: list[list[int]] = [[] for _ in ports]
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        for statuses, port in zip(seen, ports, strict=True):
            if (status := ready_status(port)) is not None and status not in statuses[-1:]:
                statuses.append(status)
        if time.monotonic() - start >= min_s and all(s[-1:] == [200] for s in seen):
            break
        time.sleep(0.25)
    return seen


def test_two_workers_in_one_group_score_every_event_once(worker_settings: Settings, milvus_server, tmp_path: Path):
    # one Milvus for the group, as `rci services up` runs it: an embedded Milvus Lite path is locked
    # by the first process that opens it
    worker_settings = worker_settings.model_copy(update={"milvus_uri": milvus_server.uri})
    media = write_media_library(worker_settings.media_dir, 8)
    events = [published_event(f"s{i:03d}", media[i % len(media)], i) for i in range(80)]
    ports = [free_port(), free_port()]
    workers = [
        ChildProcess("worker", worker_settings.model_copy(update={"metrics_port": port}), tmp_path / f"w{i}.log")
        for i, port in enumerate(ports)
    ]
    try:
        # let both join the group before the load arrives, so both get partitions (20 s at least); meanwhile
        # /ready answers 503 while a worker opens its models and clients, 200 once it serves
        readiness = watch_readiness(ports, min_s=20, timeout_s=300)
        assert readiness == [[503, 200], [503, 200]], (readiness, [w.log_tail() for w in workers])
        produce(worker_settings, [encode(e) for e in events])
        out = read_outputs(worker_settings, expected_total=len(events), timeout_s=500)
        deadline = time.monotonic() + 30  # a record can be read a moment before its worker counts it
        while True:
            metrics = [scrape(port) for port in ports]
            if sum(m.get("rci_scores_out_total", 0.0) for m in metrics) >= len(events) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0], [w.log_tail() for w in workers]
    assert sorted(out.scored_ids) == sorted(e["video_id"] for e in events)
    assert max(out.scored_ids.values()) == 1
    scored_per_worker = [m.get("rci_scores_out_total", 0.0) for m in metrics]
    assert sum(scored_per_worker) == len(events)
    assert all(n > 0 for n in scored_per_worker), f"one worker got no partitions: {scored_per_worker}"
    assert all(m.get("rci_stage_seconds_count", 0) > 0 for m in metrics)
    assert all(m.get("rci_worker_ready") == 1 for m in metrics)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_the_batch_in_flight_and_a_restart_scores_the_rest(
    worker_settings: Settings, tmp_path: Path, signum: signal.Signals
) -> None:
    """Small batches, so faust has always read records ahead of the batch in flight: nothing acknowledges
    those, and faust's own stop used to wait for them forever (a SIGINT'd worker hung until killed)."""
    media = write_media_library(worker_settings.media_dir, 8)
    events = [published_event(f"t{i:03d}", media[i % len(media)], i) for i in range(48)]
    produce(worker_settings, [encode(e) for e in events])
    settings = worker_settings.model_copy(update={"batch_max_size": 2})

    first = ChildProcess("worker", settings, tmp_path / "first.log")
    try:
        partial = read_outputs(settings, expected_total=8, timeout_s=400)  # the next batch is now in flight
    finally:
        stopped_at = time.monotonic()
        code = first.stop(timeout_s=90, signum=signum)
    assert code == 0, first.log_tail()
    assert time.monotonic() - stopped_at < 60, "the drain should take one batch, not the drain timeout"

    second = ChildProcess("worker", settings, tmp_path / "second.log")
    try:
        out = read_outputs(settings, expected_total=len(events), timeout_s=400)
        deadline = time.monotonic() + 60
        while set(out.scored_ids) != {e["video_id"] for e in events} and time.monotonic() < deadline:
            out = read_outputs(settings, expected_total=10**6, timeout_s=10)
    finally:
        assert second.stop() == 0, second.log_tail()
    assert set(out.scored_ids) == {e["video_id"] for e in events}
    # a clean stop commits what it wrote: nothing is scored twice
    assert max(out.scored_ids.values()) == 1, second.log_tail()


def test_a_batch_unfinished_at_the_drain_timeout_is_left_for_the_next_worker(worker_settings: Settings,
                                                                              tmp_path: Path):
    """Issue 15, item 3: faust acks the batch it handed out when its agent is cancelled, so a stop with
    a batch still retrying an outage used to commit records that were never scored. Now the worker
    exits 75 without acknowledging them, on SIGTERM and on SIGINT alike, and the next worker scores them."""
    upstream = urlsplit(worker_settings.s3_endpoint_url)
    proxy = TcpProxy(upstream.hostname, upstream.port).start()  # the feature cache's store, cut at will
    settings = worker_settings.model_copy(update={"object_store": "s3", "s3_endpoint_url": f"http://{proxy.address}",
                                                  "worker_drain_timeout_s": 3.0, "batch_max_size": 1})
    media = write_media_library(settings.media_dir, 3)
    produce(settings, [encode(published_event("first", media[0], 0))])
    try:
        for attempt, signum in enumerate((signal.SIGTERM, signal.SIGINT)):
            port = free_port()
            worker = ChildProcess("worker", settings.model_copy(update={"metrics_port": port}),
                                  tmp_path / f"worker{attempt}.log")
            try:  # scores what the last one left (the start-up check needs the store), then gets stuck
                assert len(read_outputs(settings, expected_total=1 + attempt, timeout_s=300).scored_ids) == 1 + attempt
                assert ready_status(port) == 200
                proxy.cut()
                produce(settings, [encode(published_event(f"stuck{attempt}", media[1 + attempt], 1 + attempt))])
                wait_for_line(worker, "transient failure, retrying")
                assert wait_for_status(port, 503) == 503, "alive but stuck retrying: not ready"
            finally:
                stopped_at = time.monotonic()
                code = worker.stop(timeout_s=60, signum=signum)
            assert code == EXIT_INTERRUPTED, worker.log_tail()
            assert time.monotonic() - stopped_at < 3.0 + 20, "the drain is bounded by its timeout"
            assert "exiting without acknowledging it" in worker.log_path.read_text()
            proxy.restore()
        last = ChildProcess("worker", settings, tmp_path / "last.log")
        try:
            out = read_outputs(settings, expected_total=3, timeout_s=300)
        finally:
            assert last.stop() == 0, last.log_tail()
        assert out.scored_ids == {"first": 1, "stuck0": 1, "stuck1": 1}, last.log_tail()
    finally:
        proxy.stop()


def wait_for_line(worker: ChildProcess, line: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while line not in worker.log_path.read_text(errors="replace"):
        assert worker.alive() and time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.2)
