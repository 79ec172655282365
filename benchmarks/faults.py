"""Fault injection against the real local stack: prove that nothing valid is lost or scored twice
differently, and that every hostile record lands on the DLQ with its code.

    .venv/bin/python -m benchmarks.faults --help

One run: a LocalStack (Apache Kafka + the S3 server, feature cache on S3, Milvus Lite file),
untrained small models, `rci worker` child processes kept alive by `WorkerSupervisor` (what
systemd or Kubernetes does in production). Two phases:

1. warm-up: `--references` clips are published and scored with no faults, so the index holds
   them. Their media is reused below, so every later video has its true source indexed.
2. faults: `--events` valid events (all with the same `published_at`, later than the references,
   so each one's candidate can only be a reference: its score does not depend on processing
   order or on re-delivery) and `--hostile` records from `media.hostile` are produced at
   `--rate` per second while faults fire at random moments:
     * kill -9 of the worker (`--kills`), restarted at once;
     * broker restart (`--broker-restarts`): SIGTERM, down `--broker-down-s`, started again on the
       same data directory and ports;
     * object store outage (`--store-outage-s`): the S3 server is stopped and restarted on the same
       port. The server (moto) keeps objects in memory, so the restart also empties the buckets;
       they are re-created (as a real store's would persist) but the cached features are gone;
     * Milvus Lite held (`--milvus-lock-s`): Milvus Lite is embedded, so it cannot be "down" while
       the worker runs; instead the worker is killed and another process holds the database's
       file lock for that long, so the restarted worker finds Milvus unavailable at start.

Checks after the run (`Verdict`): every valid event has at least one score and exactly one
distinct score value; duplicates are counted; no valid event is on the DLQ; every hostile record
has exactly its code; the worker ends alive. Figures go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError

from benchmarks.record import markdown_table, record
from media.hostile import HostileCase, MediaLayout, event, hostile_corpus, write_clips
from rci.errors import RejectCode
from rci.logs import get_logger
from rci.services.s3server import ensure_bucket
from rci.services.stack import LocalStack
from rci.settings import Settings
from streams.contracts import DeadLetterRecord, ScoreRecord
from streams.kafka import make_consumer, make_producer
from streams.processes import ChildProcess

log = get_logger(__name__)
MAX_FRAMES = 4
# Hostile families the worker mishandles today (docs/reliability.md, "Known bugs"): the first three
# crash it on every delivery (poison pills), the last is scored instead of dead-lettered. Left out of
# the default runs so that the rest is measured; `--include-known-bugs` puts them back.
KNOWN_BUGS = frozenset(
    {"record.deep_nesting", "record.huge_integer", "record.oversized_value", "contract.boolean_version"}
)


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
        producer = make_producer(self.settings, message_timeout_ms=600_000)
        start = time.monotonic()

        def delivered(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                self.failed.append(err.str())

        for i, (key, value) in enumerate(self.records):
            time.sleep(max(0.0, start + i / self.rate - time.monotonic()))
            while True:
                try:
                    producer.produce(self.settings.topic_published, key=key, value=value, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
            self.sent += 1
        self.unacknowledged = producer.flush(600)


def produce_all(settings: Settings, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
    producer = make_producer(settings)
    for key, value in records:
        producer.produce(settings.topic_published, key=key, value=value)
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


def restart_broker(stack: LocalStack, down_s: float) -> None:
    """SIGTERM the broker, keep it down, start it again on the same data directory and ports."""
    stack.kafka.stop()
    time.sleep(down_s)
    stack.kafka.start(timeout_s=180)


def restart_object_store(stack: LocalStack, settings: Settings, down_s: float, media_bucket: str | None) -> None:
    """Stop the S3 server, keep it down, restart it on the same port and re-create the buckets."""
    stack.s3.stop()
    time.sleep(down_s)
    stack.s3.start()
    for bucket in filter(None, (settings.s3_bucket, media_bucket)):
        ensure_bucket(stack.s3.endpoint_url, stack.s3.access_key, stack.s3.secret_key, bucket)


def hold_milvus_lock(milvus_uri: str, seconds: float) -> subprocess.Popen:
    """Another process opens the Milvus Lite database (taking its file lock) and keeps it `seconds`."""
    code = (
        "import sys, time\n"
        "from pymilvus import MilvusClient\n"
        "deadline = time.monotonic() + 60\n"
        "while True:\n"
        "    try:\n"
        "        client = MilvusClient(sys.argv[1]); break\n"
        "    except Exception:\n"
        "        if time.monotonic() > deadline: raise\n"
        "        time.sleep(0.2)\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, milvus_uri, str(seconds)], stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()  # wait until the lock is held
    return holder


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
    milvus_lock_s: float = 10.0
    seed: int = 0
    settle_timeout_s: float = 600.0
    include_known_bugs: bool = False


@dataclass
class FaultResult:
    plan: FaultPlan
    verdict: Verdict
    faults: FaultLog
    worker_generations: int
    unexpected_exits: list[int]
    worker_alive_at_end: bool
    wall_s: float
    recovery_s: list[float]  # per fault: seconds until the output count grew again
    worker_log: str = ""


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
    exclude = frozenset() if plan.include_known_bugs else KNOWN_BUGS
    hostile = [ledger.add_hostile(c) for c in hostile_corpus(layout, clips[0], plan.hostile, plan.seed, exclude=exclude)]
    mixed = valid + hostile
    random.Random(plan.seed).shuffle(mixed)
    return ledger, references, mixed


def _encoded(payload: dict) -> tuple[bytes, bytes]:
    return payload["video_id"].encode(), json.dumps(payload).encode()


def _s3_prefix(settings: Settings) -> str | None:
    return next((p for p in settings.resolved_media_prefixes if p.startswith("s3://") and p.count("/") > 3), None)


def run_faults(
    stack: LocalStack,
    settings: Settings,
    plan: FaultPlan,
    workdir: Path,
    on_progress: Callable[[int, int], None] | None = None,
) -> FaultResult:
    """Warm up, then produce the fault phase while injecting the plan's faults; judge the outputs."""
    rng = random.Random(plan.seed)
    ledger, references, mixed = build_inputs(settings, workdir, plan)
    supervisor = WorkerSupervisor(settings, workdir / "logs")
    reader = OutputReader(settings)
    faults = FaultLog()
    t0 = start = time.monotonic()
    try:
        produce_all(settings, references)
        supervisor.start()
        _wait(lambda: len({s.video_id for s in reader.scores}) >= len(references), reader, supervisor, 600)
        producer = PacedProducer(settings, mixed, plan.rate)
        producer.start()
        t0 = time.monotonic()  # fault times and the timeline count from the start of the fault phase
        produce_s = len(mixed) / plan.rate
        schedule = _schedule(plan, produce_s, rng)
        recovery = []
        for at_s, fault in schedule:
            _wait(lambda: time.monotonic() - t0 >= at_s, reader, supervisor, at_s + 60)  # noqa: B023
            before = reader.count
            _inject(fault, stack, settings, supervisor, plan, faults, t0)
            started = time.monotonic()
            if _wait(lambda: reader.count > before or reader.done(ledger), reader, supervisor, 300):  # noqa: B023
                recovery.append(round(time.monotonic() - started, 1))
        producer.join(timeout=plan.settle_timeout_s)
        _wait(lambda: reader.done(ledger), reader, supervisor, plan.settle_timeout_s,
              progress=lambda: on_progress and on_progress(reader.count, ledger.expected))  # fmt: skip
        reader.poll(5.0)  # late duplicates, if any
        alive = supervisor.process.alive()
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
        worker_log=supervisor.logs(),
    )


def _schedule(plan: FaultPlan, produce_s: float, rng: random.Random) -> list[tuple[float, str]]:
    """Fault times spread over the production window: random moments in equal slices of it."""
    faults = (["kill"] * plan.kills + ["broker"] * plan.broker_restarts
              + (["store"] if plan.store_outage_s > 0 else []) + (["milvus"] if plan.milvus_lock_s > 0 else []))  # fmt: skip
    rng.shuffle(faults)
    slice_s = max(produce_s, 1.0) / max(len(faults), 1)
    return [(round(i * slice_s + rng.uniform(0.2, 0.8) * slice_s, 1), f) for i, f in enumerate(faults)]


def _inject(fault: str, stack: LocalStack, settings: Settings, supervisor: WorkerSupervisor, plan: FaultPlan,
            faults: FaultLog, t0: float) -> None:  # fmt: skip
    if fault == "kill":
        supervisor.kill9()
        faults.note(t0, "kill -9 worker")
        supervisor.start()
    elif fault == "broker":
        faults.note(t0, f"broker stop ({plan.broker_down_s:.0f} s)")
        restart_broker(stack, plan.broker_down_s)
        faults.note(t0, "broker started")
    elif fault == "store":
        faults.note(t0, f"object store stop ({plan.store_outage_s:.0f} s)")
        restart_object_store(stack, settings, plan.store_outage_s, _media_bucket(settings))
        faults.note(t0, "object store started")
    elif fault == "milvus":
        supervisor.kill9()
        holder = hold_milvus_lock(settings.resolved_milvus_uri, plan.milvus_lock_s)
        faults.note(t0, f"kill -9 worker + Milvus Lite locked ({plan.milvus_lock_s:.0f} s)")
        supervisor.start()
        holder.wait()
        faults.note(t0, "Milvus Lite released")


def _media_bucket(settings: Settings) -> str | None:
    prefix = _s3_prefix(settings)
    return prefix.removeprefix("s3://").split("/", 1)[0] if prefix else None


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


def open_stack(workdir: Path, model_dir: Path | None, partitions: int = 4) -> tuple[LocalStack, Settings]:
    """A LocalStack under `workdir` with untrained models; settings for the worker on it."""
    from inference.model_dir import install_untrained_models

    base = Settings(data_dir=workdir / "rci", topic_partitions=partitions, metrics_port=0)
    stack = LocalStack(workdir / "rci", base, partitions=partitions).start()
    if model_dir is None:
        model_dir = workdir / "models"
        install_untrained_models(model_dir, MAX_FRAMES)
    media_bucket = "rci-media"
    settings = stack.settings(
        model_dir=model_dir,
        media_max_frames=MAX_FRAMES,
        media_max_bytes=8 * 1024 * 1024,
        media_allowed_prefixes=(stack.settings().media_dir.as_uri() + "/", f"s3://{media_bucket}/uploads/"),
        batch_max_size=8,
        log_format="json",
    )
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    return stack, settings


def report(result: FaultResult) -> str:
    v = result.verdict
    rows = [
        ["kill -9 of the worker", result.faults.count("kill -9")],
        ["broker restarts", result.faults.count("broker started")],
        ["object store outages", result.faults.count("object store started")],
        ["Milvus Lite lock-outs", result.faults.count("Milvus Lite released")],
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
        ["recovery after each fault (s)", ", ".join(map(str, result.recovery_s)) or "-"],
        ["wall time (s)", result.wall_s],
    ]
    timeline = "\n".join(f"- t={t:.1f}s {what}" for t, what in result.faults.events)
    verdict = "PASS" if v.ok and result.worker_alive_at_end else "FAIL"
    return f"{markdown_table(['check', 'value'], rows)}\n\nverdict: **{verdict}**\n\nfault timeline:\n{timeline}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300, help="valid events in the fault phase")
    parser.add_argument("--hostile", type=int, default=1000, help="hostile records from media.hostile")
    parser.add_argument("--references", type=int, default=8, help="clips published (and indexed) before the faults")
    parser.add_argument("--rate", type=float, default=4.0, help="records per second during the fault phase")
    parser.add_argument("--kills", type=int, default=5, help="kill -9 of the worker at random moments")
    parser.add_argument("--broker-restarts", type=int, default=1)
    parser.add_argument("--broker-down-s", type=float, default=10.0)
    parser.add_argument("--store-outage-s", type=float, default=10.0, help="0 skips the object store outage")
    parser.add_argument("--milvus-lock-s", type=float, default=10.0, help="0 skips the Milvus Lite lock-out")
    parser.add_argument("--include-known-bugs", action="store_true", help="also send the hostile families that crash the worker today")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="kept after the run (default: a temp dir, removed)")
    parser.add_argument("--model-dir", type=Path, default=None, help="reuse an installed model dir")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    plan = FaultPlan(
        events=args.events, hostile=args.hostile, references=args.references, rate=args.rate, kills=args.kills,
        broker_restarts=args.broker_restarts, broker_down_s=args.broker_down_s, store_outage_s=args.store_outage_s,
        milvus_lock_s=args.milvus_lock_s, seed=args.seed, include_known_bugs=args.include_known_bugs,
    )  # fmt: skip
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="rci-faults-") as tmp:
        workdir = args.workdir or Path(tmp)
        stack, settings = open_stack(workdir, args.model_dir)
        try:
            result = run_with_progress(stack, settings, plan, workdir)
        finally:
            stack.stop()
    body = report(result)
    if args.no_record:
        print(body)
    else:
        record("Reliability: fault injection (benchmarks.faults)", body)
    if not result.verdict.ok:
        print(json.dumps({"lost": result.verdict.lost[:20], "inconsistent": result.verdict.inconsistent[:20],
                          "valid_on_dlq": result.verdict.valid_on_dlq[:20],
                          "wrong_codes": result.verdict.hostile_wrong_code[:20]}, indent=1))  # fmt: skip
    return 0 if result.verdict.ok and result.worker_alive_at_end else 1


def run_with_progress(stack: LocalStack, settings: Settings, plan: FaultPlan, workdir: Path) -> FaultResult:
    from rich.progress import Progress

    with Progress() as progress:
        task = progress.add_task("outputs", total=plan.events + plan.hostile + plan.references)
        return run_faults(stack, settings, plan, workdir, lambda done, total: progress.update(task, completed=done, total=total))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean stack shutdown on SIGTERM
    sys.exit(main())
