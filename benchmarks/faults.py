"""Fault injection against the real local stack: prove that nothing valid is lost or scored twice
differently, and that every hostile record lands on the DLQ with its code.

    .venv/bin/python -m benchmarks.faults --help

One run: the local stack `rci services up` runs (Apache Kafka from jars, the S3 server holding
the media bucket and the feature cache, Milvus Lite served over gRPC), untrained small models,
and `rci worker` child processes kept alive by `WorkerSupervisor` (what systemd or Kubernetes
does in production: a worker that dies is started again; such deaths are counted). The worker
reaches the object store and Milvus through `benchmarks.outage.TcpProxy`, so both can be made
unreachable without losing what they hold. Two phases:

1. warm-up: `--references` clips are published and scored with no faults, so the index holds
   them. Their media is reused below, so every later video has its true source indexed.
2. faults: `--events` valid events (all with the same `published_at`, later than the references,
   so each one's candidate can only be a reference: its score does not depend on processing
   order or on re-delivery) and `--hostile` records from `rci.media.hostile` are produced at
   `--rate` per second while faults fire at random moments of the work (see `run_faults`):
     * kill -9 of the worker (`--kills`), started again at once;
     * broker restart (`--broker-restarts`): SIGTERM, down `--broker-down-s`, started again on the
       same data directory and ports;
     * object store outage (`--store-outage-s`): every connection to the S3 server is reset and
       new ones are refused for that long;
     * Milvus outage (`--milvus-outage-s`): the same for the Milvus server.

Checks after the run (`Verdict`): every valid event has at least one score and exactly one
distinct score value; duplicates are counted; no valid event is on the DLQ; every hostile record
has exactly its code; the output count grows again after every fault (recovery); the worker ends
alive. Figures go to benchmarks/RESULTS.md and benchmarks/results/faults.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException

from benchmarks.outage import TcpProxy
from benchmarks.record import machine_description, markdown_table, record
from rci.media.hostile import HostileCase, MediaLayout, event, hostile_corpus, write_clips
from rci.core.errors import RejectCode
from rci.core.logs import get_logger
from rci.services.stack import MEDIA_BUCKET, LocalStack
from rci.core.settings import Settings
from rci.streams.contracts import DeadLetterRecord, ScoreRecord
from rci.streams.kafka import make_consumer, make_producer, produce_with_backpressure
from rci.streams.processes import ChildProcess
from rci.streams.progress import GroupOffsets
from rci.streams.worker import EXIT_INTERRUPTED

log = get_logger(__name__)
MAX_FRAMES = 4
DEFAULT_JSON = Path(__file__).parent / "results" / "faults.json"
DEFAULT_PLOT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "faults-timeline.png"
STALL_LIMIT_S = 60.0  # no partition with records waiting may go longer without progress after an outage ends
OUTAGE_ENDS = ("broker started", "object store reachable", "Milvus reachable")
PRODUCE_TIMEOUT_S = 600.0  # how long the paced producer's records may wait for a broker that is down


# --- the worker, kept alive ---------------------------------------------------------------------


class WorkerSupervisor:
    """One `rci worker` process, restarted whenever it dies; every generation logs to its own file."""

    def __init__(self, settings: Settings, log_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.extra_env = extra_env
        self.process: ChildProcess | None = None
        self.generation = 0
        self.kills = 0
        self.unexpected_exits: list[int] = []  # exit codes of deaths we did not cause

    def start(self) -> None:
        self.generation += 1
        path = self.log_dir / f"worker-{self.generation:02d}.log"
        self.process = ChildProcess("worker", self.settings, path, self.extra_env)

    def kill9(self) -> None:
        """SIGKILL: no drain, no commit, no flush."""
        self.process.kill()
        self.kills += 1

    def signal_and_restart(self, signum: signal.Signals, drain_s: float = 60.0) -> int:
        """Stop the worker with `signum` (it drains: exit 0, or 75 with a batch unfinished), start a new one.

        A worker still importing its modules has no handler yet and dies of the signal itself (-signum):
        it had consumed nothing. Any other exit code is a death we did not expect."""
        code = self.process.stop(drain_s, signum)
        if code not in (0, EXIT_INTERRUPTED, -signum):
            self.unexpected_exits.append(code)
        self.start()
        return code

    def restart_if_dead(self) -> bool:
        """Restart a worker that died on its own; True if it had."""
        if self.process is None or self.process.alive():
            return False
        self.unexpected_exits.append(self.process.popen.returncode)
        log.warning("worker died, restarting", exit_code=self.process.popen.returncode, generation=self.generation)
        self.start()
        return True

    def stop(self) -> int | None:
        return self.process.stop() if self.process else None

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("worker-*.log")))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.alive() else None


# --- what went in, what came out ------------------------------------------------------------------


@dataclass
class Ledger:
    """Expected outcomes: valid video ids must be scored, hostile records dead-lettered with a code."""

    valid: set[str] = field(default_factory=set)
    hostile: dict[tuple[bytes | None, bytes], RejectCode] = field(default_factory=dict)

    def add_valid(self, key: bytes, value: bytes) -> tuple[bytes, bytes]:
        self.valid.add(key.decode())
        return key, value

    def add_hostile(self, case: HostileCase) -> tuple[bytes | None, bytes | None]:
        self.hostile[_identity(case.key, case.value or b"")] = case.code
        return case.key, case.value

    @property
    def expected(self) -> int:
        return len(self.valid) + len(self.hostile)


def _identity(key: bytes | None, original: bytes) -> tuple[bytes | None, bytes]:
    return (key or None), original  # the broker may hand an empty key back as None


@dataclass
class Verdict:
    """The checks of one run. `ok` when nothing valid is lost, inconsistent or dead-lettered."""

    valid: int
    hostile: int
    scores: int
    dead_letters: int
    lost: list[str]
    inconsistent: list[str]  # valid ids with more than one distinct score value
    duplicates: int  # score records beyond the first per id
    valid_on_dlq: list[str]
    hostile_missing: int
    hostile_wrong_code: list[tuple[str, str, str]]  # (family-ish id, expected, got)
    unexpected: int  # outputs that match nothing that went in
    codes: Counter

    @property
    def ok(self) -> bool:
        return not (self.lost or self.inconsistent or self.valid_on_dlq or self.hostile_missing
                    or self.hostile_wrong_code or self.unexpected)  # fmt: skip

    def summary(self) -> dict[str, object]:
        return {
            "valid": self.valid, "hostile": self.hostile, "scores": self.scores, "dead_letters": self.dead_letters,
            "lost": len(self.lost), "inconsistent": len(self.inconsistent), "duplicates": self.duplicates,
            "valid_on_dlq": len(self.valid_on_dlq), "hostile_missing": self.hostile_missing,
            "hostile_wrong_code": len(self.hostile_wrong_code), "unexpected": self.unexpected,
        }  # fmt: skip


def judge(ledger: Ledger, scores: list[ScoreRecord], dead: list[tuple[bytes | None, DeadLetterRecord]]) -> Verdict:
    values: dict[str, set[float]] = defaultdict(set)
    for s in scores:
        values[s.video_id].add(s.score)
    seen_dead: dict[tuple[bytes | None, bytes], list[RejectCode]] = defaultdict(list)
    valid_on_dlq, unexpected = [], sum(1 for vid in values if vid not in ledger.valid)
    for key, letter in dead:
        identity = _identity(key, letter.original_bytes())
        if identity in ledger.hostile:
            seen_dead[identity].append(letter.error)
        elif key and key.decode(errors="replace") in ledger.valid:
            valid_on_dlq.append(key.decode())
        else:
            unexpected += 1
    wrong = [
        (repr(identity[0])[:40], expected.value, ",".join(sorted({c.value for c in seen_dead[identity]})))
        for identity, expected in ledger.hostile.items()
        if identity in seen_dead and set(seen_dead[identity]) != {expected}
    ]
    return Verdict(
        valid=len(ledger.valid),
        hostile=len(ledger.hostile),
        scores=len(scores),
        dead_letters=len(dead),
        lost=sorted(ledger.valid - set(values)),
        inconsistent=sorted(vid for vid, v in values.items() if len(v) > 1),
        duplicates=len(scores) - len(values),
        valid_on_dlq=valid_on_dlq,
        hostile_missing=sum(1 for identity in ledger.hostile if identity not in seen_dead),
        hostile_wrong_code=wrong,
        unexpected=unexpected,
        codes=Counter(letter.error.value for _, letter in dead),
    )


class OutputReader:
    """Reads rci.scores and the DLQ from the start, incrementally, across broker restarts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scores: list[ScoreRecord] = []
        self.dead: list[tuple[bytes | None, DeadLetterRecord]] = []
        self._consumer = make_consumer(settings, f"faults-readback-{os.getpid()}-{time.monotonic_ns()}")
        self._consumer.subscribe([settings.topic_scores, settings.topic_dlq])

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self._consumer.consume(500, timeout=0.2):
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        log.debug("readback error", error=str(msg.error()))
                    continue
                if msg.topic() == self.settings.topic_scores:
                    self.scores.append(ScoreRecord.model_validate_json(msg.value()))
                else:
                    self.dead.append((msg.key(), DeadLetterRecord.model_validate_json(msg.value())))

    @property
    def count(self) -> int:
        return len(self.scores) + len(self.dead)

    def done(self, ledger: Ledger) -> bool:
        scored = {s.video_id for s in self.scores}
        dead = {_identity(k, d.original_bytes()) for k, d in self.dead}
        return ledger.valid <= scored and set(ledger.hostile) <= dead

    def close(self) -> None:
        self._consumer.close()


class PartitionWatch:
    """The worker group's committed offset and the end offset of every partition of video.published, sampled
    at most every `every_s`: how long a partition with records waiting goes without progress after a fault.

    It reads the group's commits with a consumer of the same group id that never subscribes, so it never
    joins the group; while the broker is down a sample is skipped."""

    def __init__(self, settings: Settings, every_s: float = 2.0) -> None:
        self.every_s = every_s
        self.samples: list[tuple[float, dict[int, tuple[int, int]]]] = []  # (s, partition -> (committed, end))
        self._offsets = GroupOffsets(settings, make_consumer)  # what the worker's own readiness check reads
        self._partitions = self._offsets.partitions()

    def sample(self, at_s: float) -> None:
        if self.samples and at_s - self.samples[-1][0] < self.every_s:
            return
        try:
            read = self._offsets.read(self._partitions, timeout_s=2)
        except KafkaException:
            return
        self.samples.append((at_s, {p: (max(committed, 0), end) for p, (committed, end) in read.items()}))

    def stall_after(self, at_s: float) -> float:
        """The longest time from `at_s` until a partition with records waiting then had its commit move (or
        until the last sample, for one that never moved)."""
        later = [(t, snapshot) for t, snapshot in self.samples if t >= at_s]
        if not later:
            return 0.0
        base = later[0][1]
        worst = 0.0
        for partition, (committed, end) in base.items():
            if committed >= end:
                continue  # nothing waiting: nothing to progress on
            moved = next((t for t, snapshot in later if snapshot[partition][0] > committed), later[-1][0])
            worst = max(worst, moved - at_s)
        return round(worst, 1)

    def recovered(self, at_s: float) -> bool:
        """Every partition with records waiting at `at_s` has had its commit move since."""
        later = [snapshot for t, snapshot in self.samples if t >= at_s]
        return bool(later) and all(
            any(snapshot[partition][0] > committed for snapshot in later[1:])
            for partition, (committed, end) in later[0].items() if committed < end
        )  # fmt: skip

    def close(self) -> None:
        self._offsets.close()


# --- producing ------------------------------------------------------------------------------------


class PacedProducer(threading.Thread):
    """Produces records at `rate` per second in the background (through broker restarts)."""

    def __init__(self, settings: Settings, records: list[tuple[bytes | None, bytes | None]], rate: float) -> None:
        super().__init__(daemon=True, name="paced-producer")
        self.settings = settings
        self.records = records
        self.rate = rate
        self.sent = 0
        self.failed: list[str] = []
        self.unacknowledged = 0

    def run(self) -> None:
        # message.timeout.ms: keep retrying through a broker restart rather than dropping records
        producer = make_producer(self.settings, message_timeout_ms=int(PRODUCE_TIMEOUT_S * 1000))
        start = time.monotonic()

        def delivered(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                self.failed.append(err.str())

        for i, (key, value) in enumerate(self.records):
            time.sleep(max(0.0, start + i / self.rate - time.monotonic()))
            # as long as the records themselves may wait (message.timeout.ms): a broker restart is the point
            produce_with_backpressure(producer, self.settings.topic_published, value, key, delivered,
                                      deadline_s=PRODUCE_TIMEOUT_S)  # fmt: skip
            producer.poll(0)
            self.sent += 1
        self.unacknowledged = producer.flush(PRODUCE_TIMEOUT_S)


def produce_all(settings: Settings, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
    producer = make_producer(settings)
    for key, value in records:
        produce_with_backpressure(producer, settings.topic_published, value, key)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("records not acknowledged by the broker")


# --- faults ---------------------------------------------------------------------------------------


@dataclass
class FaultLog:
    events: list[tuple[float, str]] = field(default_factory=list)

    def note(self, t0: float, what: str) -> None:
        self.events.append((round(time.monotonic() - t0, 1), what))
        log.info("fault", at_s=self.events[-1][0], what=what)

    def count(self, prefix: str) -> int:
        return sum(1 for _, what in self.events if what.startswith(prefix))


@dataclass
class FaultStack:
    """The local stack, with the worker reaching the object store and Milvus through cuttable proxies."""

    stack: LocalStack
    settings: Settings  # what the worker runs with (S3 and Milvus through the proxies)
    store_proxy: TcpProxy
    milvus_proxy: TcpProxy

    def stop(self) -> None:
        self.store_proxy.stop()
        self.milvus_proxy.stop()
        self.stack.stop()


def restart_broker(stack: LocalStack, down_s: float) -> None:
    """SIGTERM the broker, keep it down, start it again on the same data directory and ports."""
    stack.kafka.stop()
    time.sleep(down_s)
    stack.kafka.start(timeout_s=180)


def outage(proxy: TcpProxy, seconds: float) -> None:
    """The service behind `proxy` is unreachable for `seconds` (connections reset, then refused)."""
    proxy.cut()
    try:
        time.sleep(seconds)
    finally:
        proxy.restore()


# --- one run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultPlan:
    events: int = 300
    hostile: int = 100
    references: int = 8
    rate: float = 4.0
    kills: int = 5
    broker_restarts: int = 1
    broker_down_s: float = 10.0
    store_outage_s: float = 10.0
    milvus_outage_s: float = 10.0
    seed: int = 0
    settle_timeout_s: float = 600.0
    sigterms: int = 0  # SIGTERM, then a new worker: the drain path
    sigints: int = 0  # SIGINT (Ctrl-C), then a new worker
    store_outages: int = 1  # each store_outage_s long; none when store_outage_s is 0
    milvus_outages: int = 1

    @property
    def faults(self) -> list[str]:
        """Every fault of the run, in no particular order."""
        return (["kill"] * self.kills + ["sigterm"] * self.sigterms + ["sigint"] * self.sigints
                + ["broker"] * self.broker_restarts + ["store"] * (self.store_outages if self.store_outage_s > 0 else 0)
                + ["milvus"] * (self.milvus_outages if self.milvus_outage_s > 0 else 0))  # fmt: skip

    @property
    def fault_count(self) -> int:
        return len(self.faults)


def chaos_plan(minutes: float = 20.0, rate: float = 1.5, seed: int = 0) -> FaultPlan:
    """`--chaos`: `minutes` of traffic at `rate` records/s, 5% of them poison (hostile records), and about
    one fault a minute of every kind: kill -9, SIGTERM, SIGINT, broker restarts, object store and Milvus
    outages."""
    records = int(minutes * 60 * rate)
    hostile = max(1, round(records * 0.05))
    per_kind = max(1, round(minutes / 7))  # six kinds: about one fault a minute in all
    return FaultPlan(events=records - hostile, hostile=hostile, references=8, rate=rate, kills=per_kind,
                     broker_restarts=per_kind, sigterms=per_kind, sigints=per_kind, store_outages=per_kind,
                     milvus_outages=per_kind, seed=seed, settle_timeout_s=900.0)  # fmt: skip


@dataclass
class FaultResult:
    plan: FaultPlan
    verdict: Verdict
    faults: FaultLog
    worker_generations: int
    unexpected_exits: list[int]
    worker_alive_at_end: bool
    wall_s: float
    recovery_s: list[float]  # per fault: seconds from its end until the output count grew again
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (s since the fault phase began, outputs)
    worker_log: str = ""
    partition_stall_s: list[tuple[str, float]] = field(default_factory=list)  # per fault's end: longest stall

    @property
    def outage_stall_s(self) -> float:
        """The longest a partition with records waiting went without progress after an outage ended."""
        return max((s for what, s in self.partition_stall_s if what.startswith(OUTAGE_ENDS)), default=0.0)

    @property
    def ok(self) -> bool:
        return (self.verdict.ok and self.worker_alive_at_end and len(self.recovery_s) == self.plan.fault_count
                and not self.unexpected_exits and self.outage_stall_s <= STALL_LIMIT_S)  # fmt: skip


def build_inputs(settings: Settings, workdir: Path, plan: FaultPlan) -> tuple[Ledger, list, list]:
    """Reference records (warm-up), and the shuffled fault-phase records (valid + hostile)."""
    clips = write_clips(settings.media_dir / "clips", plan.references)
    ledger = Ledger()
    references = [
        ledger.add_valid(*_encoded(event(f"ref-{i:03d}", clip.as_uri(), second=i)))
        for i, clip in enumerate(clips)
    ]
    valid = [
        ledger.add_valid(*_encoded(event(f"ev-{i:05d}", clips[i % len(clips)].as_uri(), second=3600)))
        for i in range(plan.events)
    ]  # one shared published_at, later than every reference: candidates are references only
    layout = MediaLayout(settings.media_dir, workdir / "outside", settings.media_max_bytes, _s3_prefix(settings))
    hostile = [ledger.add_hostile(c) for c in hostile_corpus(layout, clips[0], plan.hostile, plan.seed)]
    mixed = valid + hostile
    random.Random(plan.seed).shuffle(mixed)
    return ledger, references, mixed


def _encoded(payload: dict) -> tuple[bytes, bytes]:
    return payload["video_id"].encode(), json.dumps(payload).encode()


def _s3_prefix(settings: Settings) -> str | None:
    return next((p for p in settings.resolved_media_prefixes if p.startswith("s3://") and p.count("/") > 3), None)


def run_faults(
    fs: FaultStack,
    plan: FaultPlan,
    workdir: Path,
    on_progress: Callable[[int, int], None] | None = None,
) -> FaultResult:
    """Warm up, then produce the fault phase while injecting the plan's faults; judge the outputs.

    Faults fire at random moments of the work, not of the clock: fault i fires once the outputs of
    the fault phase reach a random point of the i-th of `fault_count` equal slices of it (so each
    one hits a worker that is busy), and only after the previous fault has been recovered from.
    """
    settings = fs.settings
    rng = random.Random(plan.seed)
    ledger, references, mixed = build_inputs(settings, workdir, plan)
    supervisor = WorkerSupervisor(settings, workdir / "logs")
    reader = OutputReader(settings)
    faults = FaultLog()
    timeline: list[tuple[float, int]] = []
    t0 = start = time.monotonic()
    recovery: list[float] = []
    alive = False
    try:
        produce_all(settings, references)
        supervisor.start()
        _wait(lambda: len({s.video_id for s in reader.scores}) >= len(references), reader, supervisor, 600)
        warm = reader.count
        watch = PartitionWatch(settings)
        producer = PacedProducer(settings, mixed, plan.rate)
        producer.start()
        t0 = time.monotonic()  # fault times and the timeline count from the start of the fault phase

        def sample() -> None:
            timeline.append((round(time.monotonic() - t0, 1), reader.count - warm))
            watch.sample(time.monotonic() - t0)
            if on_progress:
                on_progress(reader.count, ledger.expected)

        for at_share, fault in _schedule(plan, rng):
            threshold = warm + int(at_share * len(mixed))
            _wait(lambda: reader.count >= threshold or reader.done(ledger), reader, supervisor,  # noqa: B023
                  plan.settle_timeout_s, sample)  # fmt: skip
            before = reader.count
            _inject(fault, fs, supervisor, plan, faults, t0)
            started = time.monotonic()
            if _wait(lambda: reader.count > before or reader.done(ledger), reader, supervisor, 300, sample):  # noqa: B023
                recovery.append(round(time.monotonic() - started, 1))
            # every partition moving again before the next fault, so that each stall is its own fault's
            ended_at = faults.events[-1][0]
            _wait(lambda: watch.recovered(ended_at) or reader.done(ledger), reader, supervisor, 300, sample)  # noqa: B023
        producer.join(timeout=plan.settle_timeout_s)
        _wait(lambda: reader.done(ledger), reader, supervisor, plan.settle_timeout_s, sample)
        reader.poll(5.0)  # late duplicates, if any
        sample()
        alive = supervisor.process.alive()
        stalls = [(what, watch.stall_after(at)) for at, what in faults.events if not _fault_start(what)]
        watch.close()
    finally:
        supervisor.stop()
        reader.close()
    return FaultResult(
        plan=plan,
        verdict=judge(ledger, reader.scores, reader.dead),
        faults=faults,
        worker_generations=supervisor.generation,
        unexpected_exits=supervisor.unexpected_exits,
        worker_alive_at_end=alive,
        wall_s=round(time.monotonic() - start, 1),
        recovery_s=recovery,
        timeline=timeline,
        worker_log=supervisor.logs(),
        partition_stall_s=stalls,
    )


def _fault_start(what: str) -> bool:
    """The note that opens an outage ("broker stop (10 s)", "... unreachable (10 s)"); the others end a fault."""
    return what.startswith("broker stop") or "unreachable" in what


def _schedule(plan: FaultPlan, rng: random.Random) -> list[tuple[float, str]]:
    """(share of the fault phase's outputs at which to fire, fault), a random point in equal slices."""
    faults = plan.faults
    rng.shuffle(faults)
    width = 0.9 / max(len(faults), 1)  # the last 10% are left to finish undisturbed
    return [(round((i + rng.uniform(0.2, 0.8)) * width, 3), f) for i, f in enumerate(faults)]


def _inject(fault: str, fs: FaultStack, supervisor: WorkerSupervisor, plan: FaultPlan, faults: FaultLog,
            t0: float) -> None:  # fmt: skip
    if fault == "kill":
        supervisor.kill9()
        faults.note(t0, "kill -9 worker")
        supervisor.start()
    elif fault in ("sigterm", "sigint"):
        signum = signal.SIGTERM if fault == "sigterm" else signal.SIGINT
        code = supervisor.signal_and_restart(signum)
        faults.note(t0, f"{signum.name} worker (exit {code})")
    elif fault == "broker":
        faults.note(t0, f"broker stop ({plan.broker_down_s:.0f} s)")
        restart_broker(fs.stack, plan.broker_down_s)
        faults.note(t0, "broker started")
    elif fault == "store":
        faults.note(t0, f"object store unreachable ({plan.store_outage_s:.0f} s)")
        outage(fs.store_proxy, plan.store_outage_s)
        faults.note(t0, "object store reachable")
    elif fault == "milvus":
        faults.note(t0, f"Milvus unreachable ({plan.milvus_outage_s:.0f} s)")
        outage(fs.milvus_proxy, plan.milvus_outage_s)
        faults.note(t0, "Milvus reachable")


def _wait(
    condition: Callable[[], bool],
    reader: OutputReader,
    supervisor: WorkerSupervisor,
    timeout_s: float,
    progress: Callable[[], object] | None = None,
) -> bool:
    """Read outputs and restart a dead worker until `condition` holds; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        supervisor.restart_if_dead()
        reader.poll(0.5)
        if progress:
            progress()
    return condition()


# --- command line ------------------------------------------------------------------------------------


def open_stack(workdir: Path, model_dir: Path | None, partitions: int = 4) -> FaultStack:
    """A LocalStack under `workdir` with untrained models; the worker's settings reach the object
    store and Milvus through proxies (see benchmarks.outage)."""
    from rci.inference.model_dir import install_untrained_models

    base = Settings(data_dir=workdir / "rci", topic_partitions=partitions, metrics_port=0)
    stack = LocalStack(workdir / "rci", base, partitions=partitions).start()
    try:
        if model_dir is None:
            model_dir = workdir / "models"
            install_untrained_models(model_dir, MAX_FRAMES)
        store_proxy = TcpProxy(stack.s3.host, stack.s3.port).start()
        milvus_proxy = TcpProxy(stack.milvus.host, stack.milvus.port).start()
    except BaseException:
        stack.stop()
        raise
    settings = stack.settings(
        model_dir=model_dir,
        media_max_frames=MAX_FRAMES,
        media_max_bytes=8 * 1024 * 1024,
        media_allowed_prefixes=(stack.settings().media_dir.as_uri() + "/", f"s3://{MEDIA_BUCKET}/uploads/"),
        s3_endpoint_url=f"http://{store_proxy.address}",
        milvus_uri=f"http://{milvus_proxy.address}",
        batch_max_size=8,
        log_format="json",
    )
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    return FaultStack(stack, settings, store_proxy, milvus_proxy)


def report(result: FaultResult) -> str:
    v = result.verdict
    rows = [
        ["kill -9 of the worker", result.faults.count("kill -9")],
        ["broker restarts", result.faults.count("broker started")],
        ["object store outages", result.faults.count("object store reachable")],
        ["Milvus outages", result.faults.count("Milvus reachable")],
        ["faults recovered from", f"{len(result.recovery_s)} of {result.plan.fault_count}"],
        ["valid events", v.valid],
        ["hostile records", v.hostile],
        ["valid events lost", len(v.lost)],
        ["valid events with >1 distinct score", len(v.inconsistent)],
        ["duplicate score records", v.duplicates],
        ["valid events on the DLQ", len(v.valid_on_dlq)],
        ["hostile records missing from the DLQ", v.hostile_missing],
        ["hostile records with a wrong code", len(v.hostile_wrong_code)],
        ["unexpected worker exits", len(result.unexpected_exits)],
        ["worker generations", result.worker_generations],
        ["worker alive at the end", result.worker_alive_at_end],
        ["SIGTERM / SIGINT of the worker", f"{result.faults.count('SIGTERM')} / {result.faults.count('SIGINT')}"],
        ["recovery after each fault (s)", ", ".join(map(str, result.recovery_s)) or "-"],
        [f"longest partition stall after an outage ended (s, limit {STALL_LIMIT_S:.0f})", result.outage_stall_s],
        ["longest partition stall after a worker was killed or stopped (s)",
         max((s for what, s in result.partition_stall_s if not what.startswith(OUTAGE_ENDS)), default=0.0)],
        ["wall time (s)", result.wall_s],
    ]
    timeline = "\n".join(f"- t={t:.1f}s {what}" for t, what in result.faults.events)
    verdict = "PASS" if result.ok else "FAIL"
    plan = ", ".join(f"{k}={v}" for k, v in asdict(result.plan).items())
    return (f"plan: {plan}\n\n{markdown_table(['check', 'value'], rows)}\n\nverdict: **{verdict}**\n\n"
            f"fault timeline (s from the start of the fault phase):\n{timeline}\n")  # fmt: skip


def write_json(result: FaultResult, path: Path) -> None:
    v = result.verdict
    data = {
        "benchmark": "faults",
        "plan": asdict(result.plan),
        "ok": result.ok,
        "verdict": v.summary(),
        "codes": dict(v.codes),
        "faults": [{"at_s": t, "what": what} for t, what in result.faults.events],
        "recovery_s": result.recovery_s,
        "partition_stall_s": result.partition_stall_s,
        "worker_generations": result.worker_generations,
        "unexpected_exits": result.unexpected_exits,
        "worker_alive_at_end": result.worker_alive_at_end,
        "wall_s": result.wall_s,
        "timeline": result.timeline,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_description(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def plot_timeline(data: dict, path: Path = DEFAULT_PLOT) -> Path:
    """Outputs (scores + dead letters) over the fault phase, with each fault marked: `data` is the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, n = zip(*data["timeline"], strict=True) if data["timeline"] else ((), ())
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.plot(t, n, color="tab:blue", lw=1.6, label="outputs (scores + dead letters)")
    opened: dict[str, float] = {}
    labelled: set[str] = set()

    def once(label: str) -> str | None:  # one legend entry per kind of fault
        return None if label in labelled or labelled.add(label) else label

    for fault in data["faults"]:
        at, what = fault["at_s"], fault["what"]
        if what.startswith(("kill", "SIGTERM", "SIGINT")):
            kind = what.split(" worker")[0]
            colour = {"SIGTERM": "tab:brown", "SIGINT": "tab:olive"}.get(kind, "tab:red")
            ax.axvline(at, color=colour, lw=1, ls="--", label=once(f"{kind} of the worker"))
        elif _fault_start(what):
            opened[what.split()[0]] = at
        else:  # the end of an outage: shade it
            name = what.split()[0]
            start = opened.pop(name, at)
            ax.axvspan(start, at, color={"broker": "tab:purple", "object": "tab:orange"}.get(name, "tab:green"),
                       alpha=0.25, label=once(f"{name} {'store ' if name == 'object' else ''}down"))  # fmt: skip
    ax.set(xlabel="seconds since the fault phase began", ylabel="outputs",
           title="Fault run: the worker recovers after every fault")  # fmt: skip
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300, help="valid events in the fault phase")
    parser.add_argument("--hostile", type=int, default=100, help="hostile records from rci.media.hostile")
    parser.add_argument("--references", type=int, default=8, help="clips published (and indexed) before the faults")
    parser.add_argument("--rate", type=float, default=None, help="records per second produced in the fault phase "
                        "(default 4, or 1.5 with --chaos)")
    parser.add_argument("--kills", type=int, default=5, help="kill -9 of the worker at random moments")
    parser.add_argument("--broker-restarts", type=int, default=1)
    parser.add_argument("--broker-down-s", type=float, default=10.0)
    parser.add_argument("--store-outage-s", type=float, default=10.0, help="0 skips the object store outage")
    parser.add_argument("--milvus-outage-s", type=float, default=10.0, help="0 skips the Milvus outage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chaos", action="store_true",
                        help="a chaos run instead: --minutes of traffic with 5%% poison records and about one fault "
                             "a minute of every kind (kill -9, SIGTERM, SIGINT, broker restart, store and Milvus "
                             "outages); the fault counts and --events/--hostile above are then ignored")
    parser.add_argument("--minutes", type=float, default=20.0, help="the chaos run's traffic, in minutes")
    parser.add_argument("--workdir", type=Path, default=None, help="kept after the run (default: a temp dir, removed)")
    parser.add_argument("--model-dir", type=Path, default=None, help="reuse an installed model dir")
    parser.add_argument("--json", type=Path, default=None,
                        help=f"where the figures go as JSON (default {DEFAULT_JSON.name}, or chaos.json beside it)")
    parser.add_argument("--no-record", action="store_true", help="no RESULTS.md entry, no JSON")
    args = parser.parse_args(argv)
    if args.chaos:
        plan = chaos_plan(args.minutes, args.rate or 1.5, args.seed)
    else:
        plan = FaultPlan(
            events=args.events, hostile=args.hostile, references=args.references, rate=args.rate or 4.0,
            kills=args.kills, broker_restarts=args.broker_restarts, broker_down_s=args.broker_down_s,
            store_outage_s=args.store_outage_s, milvus_outage_s=args.milvus_outage_s, seed=args.seed,
        )  # fmt: skip
    json_path = args.json or (DEFAULT_JSON.with_name("chaos.json") if args.chaos else DEFAULT_JSON)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="rci-faults-") as tmp:
        workdir = args.workdir or Path(tmp)
        fs = open_stack(workdir, args.model_dir)
        try:
            result = run_with_progress(fs, plan, workdir)
        finally:
            fs.stop()
            (workdir / "worker.log").write_text(result.worker_log if "result" in locals() else "")
    body = report(result)
    if args.no_record:
        print(body)
    else:
        title = "Reliability: chaos run (benchmarks.faults --chaos)" if args.chaos else "Reliability: fault injection (benchmarks.faults)"
        record(title, body)
        write_json(result, json_path)
        plot_timeline(json.loads(json_path.read_text()), DEFAULT_PLOT.with_name("chaos-timeline.png") if args.chaos else DEFAULT_PLOT)
    if not result.ok:
        print(json.dumps({"lost": result.verdict.lost[:20], "inconsistent": result.verdict.inconsistent[:20],
                          "valid_on_dlq": result.verdict.valid_on_dlq[:20],
                          "wrong_codes": result.verdict.hostile_wrong_code[:20],
                          "unexpected_exits": result.unexpected_exits}, indent=1))  # fmt: skip
        print(result.worker_log[-6000:], file=sys.stderr)
    return 0 if result.ok else 1


def run_with_progress(fs: FaultStack, plan: FaultPlan, workdir: Path) -> FaultResult:
    from rich.progress import Progress

    with Progress() as progress:
        task = progress.add_task("outputs", total=plan.events + plan.hostile + plan.references)
        return run_faults(fs, plan, workdir, lambda done, total: progress.update(task, completed=done, total=total))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean stack shutdown on SIGTERM
    sys.exit(main())
