"""The whole streaming pipeline on this machine: events/s and end-to-end latency at several offered
loads, next to the throughput of the slowest stage measured alone in the same run.

    python -m benchmarks.bench_pipeline                  # defaults: about 10 minutes on 2 cores
    python -m benchmarks.bench_pipeline --loads 1 --stage-batches 1 --library 4 --max-events 8 \\
        --no-burst --no-record --json /tmp/pipeline.json  # a smoke run (the test does this)

One run, one stack, nothing faked:

1. Set-up: the local services `rci services up` runs (Apache Kafka from jars, the S3 server holding
   the feature cache, Milvus Lite served over gRPC), on free ports, stopped at the end; the default
   encoders (SSCD on two views of each frame, Chromaprint, the small audio net, MiniLM) and a random
   MatchLite exported to ONNX (cost does not depend on its weights);
   a library of short synthetic videos with audio (`rci.media.synth`). Every event is a new video
   (its own `video_id`, a later `published_at`) whose media is one of the library's clips, so
   features are computed for every event (feature-cache miss, then a put) and retrieval always
   finds an earlier candidate (the library is published and indexed first), so MatchLite runs
   for every event.
2. Stages alone: in this process, with the worker's own code (`ScoringPipeline` + `OutcomeSink` +
   index upsert, i.e. `BatchRunner.handle`) on batches of `--batch-size` records built in memory
   (no Kafka consumer, no faust). Stages run one after another, so each stage's time is its cost
   alone: parse, features (fetch + decode + encode + feature cache; each video's Milvus search and
   its candidates' feature reads start as soon as its features are ready, so they overlap the
   batch's later decodes and count here), retrieval (what those searches had left when the last
   features were ready, then the in-batch candidates and the re-rank), matchlite (ONNX Runtime behind the micro-batcher),
   write (produce to Kafka and wait for the acks), index (Milvus upsert). A stage's throughput
   is events / seconds spent in it; the slowest one bounds any pipeline built from these stages.
   `in-process sequential` is events / the whole batch's time: what one process running the
   stages one after another (as the worker does) can reach without any streaming layer.
3. The worker: one `rci worker` child process (faust consumer group, the same settings). The
   library is published first (warm-up, not measured). Then, per offered load (multiples of the
   slowest stage's throughput, evenly spaced events, then an unthrottled burst of every event at
   once), events are produced with their Kafka timestamp set to the produce time, and a consumer
   in this process reads `rci.scores` as the scores arrive. Loads run one after another; each
   waits until every one of its events is scored.

Figures per load:
* achieved events/s: events scored / (last score read - first event produced).
* end-to-end latency (the headline): produce time of the event -> time its score record is read
  from `rci.scores` by a downstream consumer (same clock, same machine): publish to score visible.
* worker latency: the score records' own `latency_ms` (input's Kafka timestamp, i.e. the produce
  time, -> score computed in the worker, before it is written to Kafka).
* mean batch size and in-worker stage ms per event: from the worker's Prometheus endpoint.
* worker CPU ms per event: the worker process's CPU time (/proc, all threads) over the load, per
  event; less sensitive than rates to other processes sharing the machine.
* cores busy: the share of all the machine's cores busy (/proc/stat) from the first event produced to
  the last score read, whoever used them (worker, broker, Milvus, S3 server).
* where the cores went: cores each group of processes kept busy on average over each run, the stages
  alone included (`CpuSnapshot`: the worker, this harness, the services it started, the rest), so
  capacity / in-process sequential splits into (worker's cores / the stages' cores) x (the stages'
  CPU per event / the worker's): cores the worker did not get, and CPU the streaming layer added.
Before the loads, SINGLE_EVENTS events are sent one at a time on the idle worker: their median e2e
is the single-event service time, and e2e p99 at 0.5x is reported as a multiple of it.
Capacity is the burst's achieved events/s (the largest offered load when `--no-burst`); the
ratio capacity / slowest stage shows what the streaming layer and the sequential stages cost.

The figures are printed, appended to benchmarks/RESULTS.md and written as JSON (`--json`,
default benchmarks/results/pipeline.json; `capacity.events_per_s` is what load tests read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psutil
from confluent_kafka import KafkaError
from prometheus_client.parser import text_string_to_metric_families
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.record import command_line, machine_description, markdown_table, publish
from rci.media.synth import write_test_video
from rci.services.ports import free_port
from rci.services.stack import LocalStack
from rci.core import rfc3339
from rci.core.settings import Settings
from rci.streams.contracts import ScoreRecord
from rci.streams.kafka import ensure_topics, make_consumer, make_producer, produce_with_backpressure
from rci.streams.pipeline import InputRecord
from rci.streams.processes import ChildProcess

DEFAULT_JSON = Path(__file__).parent / "results" / "pipeline.json"
STAGES = ("parse", "features", "retrieval", "matchlite", "write", "index")
EPOCH = datetime(2026, 11, 22, tzinfo=UTC)  # published_at of the first event; one second per event after


# --- events -----------------------------------------------------------------------------------------


def write_library(media_dir: Path, count: int, seconds: float, width: int, height: int) -> list[Path]:
    """`count` distinct short clips with audio (H.264 + AAC) under the allowed media prefix."""
    media_dir.mkdir(parents=True, exist_ok=True)
    return [
        write_test_video(media_dir / f"clip{i:03d}.mp4", duration_s=seconds, width=width, height=height,
                         seed=1000 + i, tone_hz=220 + 37 * i)  # fmt: skip
        for i in range(count)
    ]


class EventFactory:
    """Contract-valid `video.published` events: unique ids, strictly increasing `published_at`,
    media cycling through the library (so every event's source clip is already indexed)."""

    def __init__(self, library: list[Path]) -> None:
        self.library = library
        self.count = 0

    def make(self, prefix: str, n: int) -> list[tuple[str, bytes]]:
        events = []
        for i in range(n):
            vid = f"{prefix}-{i:05d}"
            payload = {
                "schema_version": 1,
                "video_id": vid,
                "media_uri": self.library[self.count % len(self.library)].as_uri(),
                "title": f"benchmark clip {vid}",
                "sticker_text": "pipeline benchmark",
                "published_at": rfc3339.format(EPOCH + timedelta(seconds=self.count)),
            }
            self.count += 1
            events.append((vid, json.dumps(payload).encode()))
        return events


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of all cores since boot, in clock ticks (/proc/stat's first line:
    user nice system idle iowait irq softirq steal; guest time is already inside user)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def busy_fraction(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of all cores' time spent busy between two machine_cpu_jiffies() readings."""
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 3) if total > 0 else math.nan


CPU_GROUPS = ("worker", "harness", "services", "other")


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds (user + system, all threads) each live process has used, with its group, at `at`."""

    at: float
    used: dict[int, tuple[str, float]]  # pid -> (group, CPU seconds)

    @classmethod
    def take(cls, worker_pid: int | None = None) -> CpuSnapshot:
        """Groups: the worker process (and its children); this process, the harness (the producer, the score
        reader, and the stages when they run in-process); the services it started (every other descendant:
        the Kafka broker, the S3 server, Milvus); every other process on the machine."""
        me = psutil.Process()
        worker = _tree(worker_pid) if worker_pid else set()
        services = {c.pid for c in me.children(recursive=True)} - worker
        used: dict[int, tuple[str, float]] = {}
        for proc in psutil.process_iter():
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            pid = proc.pid
            group = ("worker" if pid in worker else "harness" if pid == me.pid
                     else "services" if pid in services else "other")  # fmt: skip
            used[pid] = (group, times.user + times.system)
        return cls(time.monotonic(), used)

    def cores_since(self, before: CpuSnapshot) -> dict[str, float]:
        """Cores each group kept busy on average since `before` (a process born in between counts whole;
        one that ended in between is lost: short-lived ones only)."""
        wall = max(self.at - before.at, 1e-9)
        cores = dict.fromkeys(CPU_GROUPS, 0.0)
        for pid, (group, cpu) in self.used.items():
            cores[group] += cpu - before.used.get(pid, (group, 0.0))[1]
        return {g: round(c / wall, 3) for g, c in cores.items()}


def _tree(pid: int) -> set[int]:
    try:
        proc = psutil.Process(pid)
        return {pid} | {c.pid for c in proc.children(recursive=True)}
    except psutil.Error:
        return set()


def batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- 1. stages alone -------------------------------------------------------------------------------


@dataclass
class StageFigure:
    stage: str
    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.inf

    def row(self, batch: int) -> dict[str, object]:
        return {"stage": self.stage, "events": self.events, "seconds": round(self.seconds, 4),
                "ms_per_batch": round(1000 * self.seconds * batch / self.events, 2),
                "events_per_s": round(self.events_per_s, 3)}  # fmt: skip


@dataclass
class StageRun:
    stages: list[StageFigure]
    wall_s: float  # the timed batches, all stages
    cpu_s: float  # CPU time of this process (all threads) over the same batches
    cores: dict[str, float]  # CpuSnapshot groups over the same batches (the stages run in the harness)


async def _measure_stages(settings: Settings, warmup: list[list], timed: list[list]) -> StageRun:
    """Run the worker's BatchRunner in-process; -> per-stage figures over `timed`, wall and CPU seconds."""
    from rci.streams.components import open_serving_parts
    from rci.streams.metrics import WorkerMetrics
    from rci.streams.pipeline import ScoringPipeline
    from rci.streams.sink import OutcomeSink
    from rci.streams.worker import BatchRunner

    metrics = WorkerMetrics()
    parts = await open_serving_parts(settings)
    producer = make_producer(settings)
    runner = BatchRunner(
        ScoringPipeline(parts.features, parts.index, parts.scorer, parts.model, metrics),
        OutcomeSink(producer, settings.topic_scores, settings.topic_dlq),
        metrics,
    )
    offsets = iter(range(10**9))

    async def run(batch: list[tuple[str, bytes]]) -> None:
        now_ms = int(time.time() * 1000)
        records = [InputRecord(vid.encode(), value, settings.topic_published, 0, next(offsets), now_ms)
                   for vid, value in batch]  # fmt: skip
        outcomes = await runner.handle(records)
        rejected = [o.dead_letter for o in outcomes if o.score is None]
        if rejected:
            raise RuntimeError(f"stage run dead-lettered benchmark events: {rejected[:2]}")

    def spent() -> dict[str, float]:
        return {s: metrics.registry.get_sample_value("rci_stage_seconds_sum", {"stage": s}) or 0.0 for s in STAGES}

    try:
        for batch in warmup:  # the library: warms the models, fills the index
            await run(batch)
        before, cpu, processes = spent(), time.process_time(), CpuSnapshot.take()
        start = time.perf_counter()
        for batch in timed:
            await run(batch)
        wall = time.perf_counter() - start
        after, cpu, cores = spent(), time.process_time() - cpu, CpuSnapshot.take().cores_since(processes)
    finally:
        await parts.aclose()
    events = sum(len(b) for b in timed)
    return StageRun([StageFigure(s, events, after[s] - before[s]) for s in STAGES], wall, cpu, cores)


def measure_stages(settings: Settings, warmup: list[list], timed: list[list]) -> StageRun:
    """Stages alone on their own topics and Milvus collection (the worker's stay untouched)."""
    suffix = uuid.uuid4().hex[:6]
    own = settings.model_copy(update={
        "topic_published": f"bench.stages.in.{suffix}", "topic_scores": f"bench.stages.scores.{suffix}",
        "topic_dlq": f"bench.stages.dlq.{suffix}", "milvus_collection": f"bench_stages_{suffix}",
    })  # fmt: skip
    ensure_topics(own, topics=(own.topic_scores, own.topic_dlq))
    return asyncio.run(_measure_stages(own, warmup, timed))


# --- 2. the worker under load ---------------------------------------------------------------------


class ScoreCollector(threading.Thread):
    """Reads rci.scores (and the DLQ) from the start; notes when each score arrived."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True, name="score-collector")
        self.settings = settings
        self.arrivals: dict[str, list[tuple[float, float]]] = {}  # video_id -> [(read at, latency_ms)]
        self.dead_letters = 0
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        consumer = make_consumer(self.settings, f"bench-pipeline-{uuid.uuid4().hex[:8]}",
                                 **{"fetch.wait.max.ms": 10})  # fmt: skip
        consumer.subscribe([self.settings.topic_scores, self.settings.topic_dlq])
        try:
            while not self._halt.is_set():
                for msg in consumer.consume(500, timeout=0.05):
                    now = time.time()
                    if msg.error():
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            self.errors.append(str(msg.error()))
                        continue
                    if msg.topic() == self.settings.topic_dlq:
                        self.dead_letters += 1
                        continue
                    score = ScoreRecord.model_validate_json(msg.value())
                    with self._lock:
                        self.arrivals.setdefault(score.video_id, []).append((now, score.latency_ms))
        finally:
            consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def scored(self, ids: list[str]) -> int:
        with self._lock:
            return sum(1 for vid in ids if vid in self.arrivals)

    def first_arrivals(self, ids: list[str]) -> dict[str, tuple[float, float, int]]:
        """video_id -> (first read at, its latency_ms, records seen) for the ids scored so far."""
        with self._lock:
            return {v: (*self.arrivals[v][0], len(self.arrivals[v])) for v in ids if v in self.arrivals}


def offer(settings: Settings, events: list[tuple[str, bytes]], rate: float | None) -> dict[str, float]:
    """Produce `events` evenly spaced at `rate`/s (None: all at once); -> video_id -> produce time.
    Each record's Kafka timestamp is set to its produce time, so the worker's latency_ms starts there."""
    producer = make_producer(settings)
    produced: dict[str, float] = {}
    start = time.monotonic()
    for i, (vid, value) in enumerate(events):
        if rate:
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
        now = time.time()
        produce_with_backpressure(producer, settings.topic_published, value, vid.encode(), timestamp_ms=int(now * 1000))
        producer.poll(0)
        produced[vid] = now
    if producer.flush(60):
        raise RuntimeError("benchmark events not acknowledged by the broker")
    return produced


def scrape(port: int) -> dict[str, float]:
    """The worker's stage seconds (sum) and batch-size histogram, flattened to name -> value."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    flat: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "rci_stage_seconds_sum":
                flat[f"stage:{sample.labels['stage']}"] = sample.value
            elif sample.name in ("rci_batch_size_sum", "rci_batch_size_count"):
                flat[sample.name] = sample.value
    return flat


@dataclass
class LoadFigure:
    load: str
    offered_events_per_s: float | None  # None: unthrottled burst
    events: int
    scored: int
    duplicates: int
    achieved_events_per_s: float
    e2e_p50_ms: float
    e2e_p99_ms: float
    e2e_max_ms: float
    worker_latency_p50_ms: float
    worker_latency_p99_ms: float
    mean_batch_size: float
    worker_cpu_ms_per_event: float
    load_average_1m: float
    machine_busy: float  # share of all cores busy from the first event produced to the last score read
    cores_by_process: dict[str, float] = field(default_factory=dict)  # CpuSnapshot groups, same span
    worker_stage_ms_per_event: dict[str, float] = field(default_factory=dict)


SINGLE_EVENTS = 3  # events sent one at a time, each after the last is scored


class WorkerDied(RuntimeError):
    pass


def wait_scored(collector: ScoreCollector, ids: list[str], worker: ChildProcess, timeout_s: float,
                progress: Progress | None = None, task: object = None) -> bool:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = collector.scored(ids)
        if progress is not None:
            progress.update(task, completed=done)
        if done == len(ids):
            return True
        if not worker.alive():
            raise WorkerDied(f"the worker exited ({worker.popen.returncode}):\n{worker.log_tail()}")
        time.sleep(0.1)
    return False


def run_load(label: str, rate: float | None, events: list[tuple[str, bytes]], settings: Settings,
             collector: ScoreCollector, worker: ChildProcess, metrics_port: int, timeout_s: float,
             progress: Progress) -> LoadFigure:  # fmt: skip
    ids = [vid for vid, _ in events]
    before, cpu, machine = scrape(metrics_port), process_cpu_s(worker.pid), machine_cpu_jiffies()
    processes = CpuSnapshot.take(worker.pid)
    task = progress.add_task(f"load {label}", total=len(ids))
    produced = offer(settings, events, rate)
    wait_scored(collector, ids, worker, timeout_s, progress, task)
    busy = busy_fraction(machine, machine_cpu_jiffies())
    cores = CpuSnapshot.take(worker.pid).cores_since(processes)
    time.sleep(0.5)  # a re-delivered duplicate, if any, would show up now
    after, cpu = scrape(metrics_port), process_cpu_s(worker.pid) - cpu
    got = collector.first_arrivals(ids)
    e2e = np.array([1000 * (got[v][0] - produced[v]) for v in got])
    worker_ms = np.array([got[v][1] for v in got])
    span = max(a for a, _, _ in got.values()) - min(produced.values()) if got else math.inf
    batches_seen = after.get("rci_batch_size_count", 0) - before.get("rci_batch_size_count", 0)
    batch_events = after.get("rci_batch_size_sum", 0) - before.get("rci_batch_size_sum", 0)
    per_event = {s: round(1000 * (after.get(f"stage:{s}", 0) - before.get(f"stage:{s}", 0)) / max(1, len(got)), 2)
                 for s in STAGES}  # fmt: skip

    def pct(values: np.ndarray, q: float) -> float:
        return round(float(np.percentile(values, q)), 1) if len(values) else math.nan

    return LoadFigure(
        load=label,
        offered_events_per_s=round(rate, 3) if rate else None,
        events=len(ids),
        scored=len(got),
        duplicates=sum(n - 1 for _, _, n in got.values()),
        achieved_events_per_s=round(len(got) / span, 3) if got else 0.0,
        e2e_p50_ms=pct(e2e, 50),
        e2e_p99_ms=pct(e2e, 99),
        e2e_max_ms=round(float(e2e.max()), 1) if len(e2e) else math.nan,
        worker_latency_p50_ms=pct(worker_ms, 50),
        worker_latency_p99_ms=pct(worker_ms, 99),
        mean_batch_size=round(batch_events / batches_seen, 2) if batches_seen else math.nan,
        worker_cpu_ms_per_event=round(1000 * cpu / max(1, len(got)), 1),
        load_average_1m=round(os.getloadavg()[0], 1),
        machine_busy=busy,
        cores_by_process=cores,
        worker_stage_ms_per_event=per_event,
    )


# --- the run ----------------------------------------------------------------------------------------


@dataclass
class Options:
    batch_size: int = 16
    max_frames: int = 8
    clip_seconds: float = 4.0
    clip_width: int = 96
    clip_height: int = 64
    library: int = 16
    stage_batches: int = 4
    loads: tuple[float, ...] = (0.5, 1.0, 2.0)
    burst: bool = True
    load_seconds: float = 40.0
    min_events: int = 16
    max_events: int = 160
    partitions: int = 6
    runtime: str = "onnx"
    load_timeout_s: float = 300.0


def events_for(rate: float, opts: Options) -> int:
    return int(min(opts.max_events, max(opts.min_events, round(rate * opts.load_seconds))))


def run_benchmark(opts: Options, workdir: Path, progress: Progress) -> dict[str, object]:
    from rci.inference.model_dir import install_untrained_models

    base = Settings(data_dir=workdir / "rci", topic_partitions=opts.partitions, metrics_port=0)
    t0 = time.monotonic()
    stack = LocalStack(workdir / "rci", base, partitions=opts.partitions).start()
    try:
        setup = progress.add_task("set-up: models, media", total=None)
        model_dir = workdir / "models"
        install_untrained_models(model_dir, opts.max_frames)
        metrics_port = free_port()
        settings = stack.settings(
            model_dir=model_dir, media_max_frames=opts.max_frames, batch_max_size=opts.batch_size,
            runtime=opts.runtime, metrics_port=metrics_port, log_format="json",
        )  # fmt: skip
        library = write_library(settings.media_dir, opts.library, opts.clip_seconds, opts.clip_width, opts.clip_height)
        factory = EventFactory(library)
        progress.update(setup, total=1, completed=1)
        setup_s = time.monotonic() - t0

        task = progress.add_task("stages alone (in-process)", total=None)
        warm = factory.make("stage-lib", opts.library)
        timed = factory.make("stage", opts.stage_batches * opts.batch_size)
        run = measure_stages(settings, batches(warm, opts.batch_size), batches(timed, opts.batch_size))
        stages_load = os.getloadavg()[0]
        progress.update(task, total=1, completed=1)
        stages = run.stages
        slowest = min((s for s in stages if s.stage != "parse"), key=lambda s: s.events_per_s)
        sequential = len(timed) / run.wall_s

        collector = ScoreCollector(settings)
        collector.start()
        worker = ChildProcess("worker", settings, workdir / "worker.log")
        try:
            lib_events = factory.make("lib", opts.library)
            warm_task = progress.add_task("worker warm-up (library)", total=len(lib_events))
            offer(settings, lib_events, None)
            if not wait_scored(collector, [v for v, _ in lib_events], worker, opts.load_timeout_s, progress, warm_task):
                raise RuntimeError(f"warm-up not scored in {opts.load_timeout_s} s:\n{worker.log_tail()}")
            # the service time of one event on an idle worker: what latency under load is compared with
            singles = [run_load("single event", None, factory.make(f"single{i}", 1), settings, collector, worker,
                                metrics_port, opts.load_timeout_s, progress) for i in range(SINGLE_EVENTS)]
            single_e2e_ms = float(np.median([f.e2e_p50_ms for f in singles]))
            loads: list[LoadFigure] = []
            plan = [(f"{m:g}x slowest stage", m * slowest.events_per_s) for m in opts.loads]
            if opts.burst:
                plan.append(("burst (unthrottled)", None))
            for i, (label, rate) in enumerate(plan):
                n = events_for(rate if rate else 2 * max(r or 0 for _, r in plan), opts)
                events = factory.make(f"load{i}", n)
                loads.append(run_load(label, rate, events, settings, collector, worker, metrics_port,
                                      opts.load_timeout_s, progress))  # fmt: skip
        finally:
            code = worker.stop()
            collector.stop()
        if code not in (0, None):
            raise WorkerDied(f"the worker exited with {code}:\n{worker.log_tail()}")
    finally:
        stack.stop()

    capacity_from = loads[-1] if opts.burst else max(loads, key=lambda f: f.achieved_events_per_s)
    capacity = capacity_from.achieved_events_per_s
    half = next((f for multiple, f in zip(opts.loads, loads) if multiple == 0.5), None)  # loads follow the plan
    return {
        "benchmark": "pipeline",
        "options": asdict(opts),
        "setup_s": round(setup_s, 1),
        "stages": [s.row(opts.batch_size) for s in stages],
        "slowest_stage": {"stage": slowest.stage, "events_per_s": round(slowest.events_per_s, 3)},
        "in_process_sequential_events_per_s": round(sequential, 3),
        "in_process_cpu_ms_per_event": round(1000 * run.cpu_s / len(timed), 1),
        "stages_load_average_1m": round(stages_load, 1),
        "stages_cores_by_process": run.cores,
        "loads": [asdict(f) for f in loads],
        "single_event_e2e_ms": round(single_e2e_ms, 1),
        "p99_at_half_load_over_single_event": round(half.e2e_p99_ms / single_e2e_ms, 2) if half else None,
        "capacity": {
            "events_per_s": capacity,
            "measured_by": capacity_from.load,
            "ratio_to_slowest_stage": round(capacity / slowest.events_per_s, 3),
            "ratio_to_in_process_sequential": round(capacity / sequential, 3),
            "e2e_p50_ms": capacity_from.e2e_p50_ms,
            "e2e_p99_ms": capacity_from.e2e_p99_ms,
        },
        "dead_letters": collector.dead_letters,
        "consumer_errors": collector.errors[:5],
        "latency_definitions": {
            "e2e": "event produced (Kafka timestamp set to it) -> its rci.scores record read by a consumer",
            "worker_latency": "rci.scores latency_ms: input Kafka timestamp -> score computed in the worker",
        },
    }


# --- report -------------------------------------------------------------------------------------------


def report(result: dict[str, object]) -> str:
    opts = result["options"]
    batch = opts["batch_size"]
    stage_rows = [[s["stage"], s["events"], s["ms_per_batch"], s["events_per_s"]] for s in result["stages"]]
    stage_rows.append(["in-process sequential (all stages)", result["stages"][0]["events"],
                       round(1000 * batch / result["in_process_sequential_events_per_s"], 2),
                       result["in_process_sequential_events_per_s"]])  # fmt: skip
    load_rows = [
        [f["load"], "-" if f["offered_events_per_s"] is None else f["offered_events_per_s"],
         f"{f['scored']}/{f['events']}",
         f["achieved_events_per_s"], f["e2e_p50_ms"], f["e2e_p99_ms"], f["worker_latency_p50_ms"],
         f["worker_latency_p99_ms"], f["mean_batch_size"], f["worker_cpu_ms_per_event"], f["load_average_1m"],
         f.get("machine_busy", "-")]
        for f in result["loads"]
    ]  # fmt: skip
    stage_cols = [s for s in STAGES if s != "parse"]
    in_worker = [[f["load"], *[f["worker_stage_ms_per_event"][s] for s in stage_cols]] for f in result["loads"]]
    cores_rows = [[label, *[cores.get(g, "-") for g in CPU_GROUPS], round(sum(cores.values()), 2)]
                  for label, cores in [("stages alone (in-process, in the harness)", result.get("stages_cores_by_process")),
                                       *[(f["load"], f.get("cores_by_process")) for f in result["loads"]]]
                  if cores]  # fmt: skip
    cap, slow = result["capacity"], result["slowest_stage"]
    summary = (
        f"**Pipeline capacity {cap['events_per_s']:.3g} events/s** ({cap['measured_by']}); slowest stage alone: "
        f"{slow['stage']} at {slow['events_per_s']:.3g} events/s; **ratio capacity / slowest stage = "
        f"{cap['ratio_to_slowest_stage']:.2f}** (capacity / in-process sequential = "
        f"{cap['ratio_to_in_process_sequential']:.2f})."
    )
    if result.get("single_event_e2e_ms") is not None:
        ratio = result.get("p99_at_half_load_over_single_event")
        summary += (f" One event alone on the idle worker: {result['single_event_e2e_ms']:.0f} ms e2e (median of "
                    f"{SINGLE_EVENTS})" + (f"; e2e p99 at 0.5x = {ratio:g}x that." if ratio is not None else "."))
    setup = (
        f"One `rci worker` process (faust), batch size {batch}, {opts['partitions']} partitions, the default "
        f"encoders (SSCD, Chromaprint, MiniLM), MatchLite small untrained via {opts['runtime']}, features cached on "
        "the S3 server, Milvus Lite served over gRPC. "
        f"Every event is a new video: {opts['clip_seconds']:g} s {opts['clip_width']}x{opts['clip_height']} clips with "
        f"audio, up to {opts['max_frames']} frames at 1 fps; a library of {opts['library']} clips is indexed first, so "
        "retrieval finds a candidate and MatchLite runs for every event. Stages alone: the worker's code in-process "
        f"on {opts['stage_batches']} batches of {batch} (after a warm-up), stages one after another. "
        "Latency: **e2e** = event produced -> its score read from `rci.scores` by a consumer; **worker** = the score's "
        "`latency_ms` (input Kafka timestamp = produce time -> score computed). Achieved events/s = scored / (last "
        "score read - first event produced). Worker CPU ms / event: CPU time of the worker process (all threads) "
        "during the load per event scored, to compare with the in-process CPU per event (both exclude the services: "
        "broker, S3 server, Milvus). "
        f"Dead letters: {result['dead_letters']}. Load average (1 min) before / after: {result['load_before']:.1f} / "
        f"{result['load_after']:.1f} on {os.cpu_count()} cores shared with other processes: "
        "treat rates as lower bounds."
    )
    return "\n\n".join([
        summary,
        "Stages alone (in-process, same batch size; "
        f"{result['in_process_cpu_ms_per_event']} CPU ms per event over all stages, "
        f"load average {result['stages_load_average_1m']}):\n\n"
        + markdown_table(["stage", "events", "ms / batch", "events/s"], stage_rows),
        "The worker under load:\n\n" + markdown_table(
            ["offered load", "offered events/s", "scored", "achieved events/s", "e2e p50 ms", "e2e p99 ms",
             "worker p50 ms", "worker p99 ms", "mean batch", "worker CPU ms / event", "load avg", "cores busy"], load_rows),
        "Inside the worker (Prometheus `rci_stage_seconds`), ms per event:\n\n"
        + markdown_table(["offered load", *stage_cols], in_worker),
        *([f"Where the {os.cpu_count()} cores went, cores busy on average over each run (worker: the `rci worker` "
           "process; harness: this benchmark's process, its producer and score reader, and the stages when they run "
           "in-process; services: the Kafka broker, the S3 server and Milvus it started; other: the rest of the "
           "machine):\n\n" + markdown_table(["run", *CPU_GROUPS, "all"], cores_rows)] if cores_rows else []),
        setup,
    ])  # fmt: skip


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Options]:
    d = Options()
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_pipeline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="worker micro-batch and stage batch size")
    p.add_argument("--max-frames", type=int, default=d.max_frames, help="frames kept per video (1 fps)")
    p.add_argument("--clip-seconds", type=float, default=d.clip_seconds, help="duration of each library clip")
    p.add_argument("--clip-size", default=f"{d.clip_width}x{d.clip_height}", help="WIDTHxHEIGHT of the clips (even)")
    p.add_argument("--library", type=int, default=d.library, help="distinct clips, indexed before measuring")
    p.add_argument("--stage-batches", type=int, default=d.stage_batches, help="timed batches for the stages alone")
    p.add_argument("--loads", default=",".join(f"{m:g}" for m in d.loads),
                   help="offered loads as multiples of the slowest stage's events/s, comma list")
    p.add_argument("--no-burst", action="store_true", help="skip the unthrottled burst")
    p.add_argument("--load-seconds", type=float, default=d.load_seconds,
                   help="events per load = rate x this (burst: 2 x the largest rate), clamped to --min/--max-events")
    p.add_argument("--min-events", type=int, default=d.min_events)
    p.add_argument("--max-events", type=int, default=d.max_events)
    p.add_argument("--partitions", type=int, default=d.partitions, help="partitions of the topics")
    p.add_argument("--runtime", choices=("onnx", "torch"), default=d.runtime, help="MatchLite runtime")
    p.add_argument("--load-timeout-s", type=float, default=d.load_timeout_s, help="give up on a load after this")
    p.add_argument("--workdir", type=Path, default=None, help="keep the stack's files here (default: temp, removed)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the figures as JSON")
    p.add_argument("--no-record", action="store_true", help="print only, do not append to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    try:
        width, height = (int(x) for x in args.clip_size.lower().split("x"))
        loads = tuple(float(m) for m in args.loads.split(",") if m.strip())
    except ValueError:
        p.error("--clip-size is WIDTHxHEIGHT, --loads a comma list of numbers")
    if not loads and args.no_burst:
        p.error("nothing to offer: give --loads or drop --no-burst")
    if any(m <= 0 for m in loads) or min(args.batch_size, args.library, args.stage_batches, args.min_events) < 1:
        p.error("loads, --batch-size, --library, --stage-batches and --min-events must be positive")
    opts = Options(
        batch_size=args.batch_size, max_frames=args.max_frames, clip_seconds=args.clip_seconds, clip_width=width,
        clip_height=height, library=args.library, stage_batches=args.stage_batches, loads=loads,
        burst=not args.no_burst, load_seconds=args.load_seconds, min_events=args.min_events,
        max_events=max(args.min_events, args.max_events), partitions=args.partitions, runtime=args.runtime,
        load_timeout_s=args.load_timeout_s,
    )  # fmt: skip
    return args, opts


def main(argv: list[str] | None = None) -> dict[str, object]:
    args, opts = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with tempfile.TemporaryDirectory(prefix="rci-bench-pipeline-") as tmp, Progress(*columns) as progress:
        workdir = args.workdir or Path(tmp)
        result = run_benchmark(opts, workdir, progress)
    command = command_line("benchmarks.bench_pipeline", argv)
    result.update({
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_description(),
        "cpu_count": os.cpu_count(), "command": command.strip(), "wall_s": round(time.monotonic() - started, 1),
        "load_before": load_before, "load_after": os.getloadavg()[0],
    })  # fmt: skip
    body = report(result)
    publish("Streaming pipeline: events/s and end-to-end latency vs the slowest stage", body,
            dry_run=args.no_record, command=result["command"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(_finite(result), indent=2, allow_nan=False, default=_json_default) + "\n")
    print(f"figures written to {args.json}")
    return result


def _finite(value: object) -> object:
    """NaN / infinity (e.g. a load with no score) become null: the JSON stays strict."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean stack shutdown on SIGTERM
    main()
