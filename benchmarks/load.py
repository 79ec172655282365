"""Sustained load at a multiple of the pipeline's measured capacity: consumer lag, memory, losses.

    python -m benchmarks.load                      # 2x capacity for 10 minutes, then until drained
    python -m benchmarks.load --duration-s 60 --multiple 1.5 --no-record   # a short look

The capacity is `capacity.events_per_s` of benchmarks/results/pipeline.json (the pipeline
benchmark, `python -m benchmarks.bench_pipeline`), and the set-up is that benchmark's own (its
`options`): the same local stack (Apache Kafka from jars, the S3 server with the feature cache,
Milvus Lite served over gRPC), the same untrained small models, clip library, batch size and
partitions, one `rci worker` child process. Every event is a new video whose media is one of the
library's clips (feature-cache miss, decode, encode, retrieval, MatchLite, write, index).

1. warm-up: the library is published and scored (not measured);
2. load: events are produced evenly at `--multiple` x capacity for `--duration-s`, each with its
   Kafka timestamp set to its produce time;
3. drain: nothing more is produced; the run waits until every event is scored and its offset committed (or
   `--drain-timeout-s`).

Every `--sample-s` seconds: consumer lag (sum over partitions of the high watermark minus the
worker group's committed offset, what Kafka monitoring shows), the backlog (events produced and
acknowledged but not scored yet), the worker's resident memory (RSS) and CPU.

Figures: peak lag and when, lag at the end of the load, time to drain; memory after warm-up
(the median over the first `--warmup-s` seconds of the load) and its growth after it (the largest
sample and the last minute's median, as a share of that baseline); events produced, scored,
lost, duplicated, dead-lettered. Offered above capacity, lag grows while the load lasts (by
about offered minus capacity per second): bounded means it grows no faster than that and comes
back to zero once the load stops, with the worker alive and its memory flat.

Outputs: benchmarks/results/load.json, docs/figures/load-lag.png and load-memory.png, a
report in docs/load-test.md, and an entry in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
from confluent_kafka import TopicPartition

from benchmarks.bench_pipeline import DEFAULT_JSON as PIPELINE_JSON
from benchmarks.bench_pipeline import EventFactory, ScoreCollector, write_library
from benchmarks.record import machine_description, markdown_table, record
from rci.core.logs import get_logger
from rci.services.stack import LocalStack
from rci.core.settings import Settings
from rci.streams.kafka import make_consumer, make_producer, produce_with_backpressure
from rci.streams.processes import ChildProcess

log = get_logger(__name__)
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = Path(__file__).parent / "results" / "load.json"
FIGURES = ROOT / "docs" / "figures"
REPORT = ROOT / "docs" / "load-test.md"


@dataclass(frozen=True)
class LoadPlan:
    capacity_events_per_s: float
    multiple: float = 2.0
    duration_s: float = 600.0
    warmup_s: float = 60.0
    sample_s: float = 2.0
    drain_timeout_s: float = 1800.0
    batch_size: int = 16
    max_frames: int = 8
    clip_seconds: float = 4.0
    clip_width: int = 96
    clip_height: int = 64
    library: int = 16
    partitions: int = 6
    runtime: str = "onnx"

    @property
    def rate(self) -> float:
        return self.multiple * self.capacity_events_per_s

    @property
    def events(self) -> int:
        return int(round(self.rate * self.duration_s))


@dataclass
class Sample:
    t_s: float  # since the load began
    produced: int
    outputs: int  # distinct events scored or dead-lettered
    lag: int | None  # Kafka consumer lag of the worker group (None: not answerable right now)
    rss_mb: float
    cpu_s: float


@dataclass
class LoadResult:
    plan: LoadPlan
    samples: list[Sample] = field(default_factory=list)
    produced: int = 0
    scored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    lost: list[str] = field(default_factory=list)
    load_end_s: float = 0.0
    drained_at_s: float | None = None
    worker_alive: bool = True
    worker_exit: int | None = None
    wall_s: float = 0.0

    def figures(self) -> dict[str, object]:
        lags = [(s.t_s, s.lag) for s in self.samples if s.lag is not None]
        peak_t, peak = max(lags, key=lambda x: x[1]) if lags else (None, None)
        at_end = [lag for t, lag in lags if t <= self.load_end_s]
        warm = [s.rss_mb for s in self.samples if s.t_s <= self.plan.warmup_s]
        after = [s.rss_mb for s in self.samples if s.t_s > self.plan.warmup_s]
        last_min = [s.rss_mb for s in self.samples if s.t_s > self.samples[-1].t_s - 60] if self.samples else []
        base = statistics.median(warm) if warm else None
        growth = (lambda x: round(100 * (x - base) / base, 1)) if base else (lambda x: None)  # noqa: E731
        span = self.load_end_s or 1.0
        return {
            "offered_events_per_s": round(self.plan.rate, 3),
            "events_produced": self.produced,
            "events_scored": self.scored,
            "events_lost": len(self.lost),
            "duplicate_scores": self.duplicates,
            "dead_letters": self.dead_letters,
            "peak_lag": peak,
            "peak_lag_at_s": peak_t,
            "lag_at_load_end": at_end[-1] if at_end else None,
            "lag_growth_events_per_s": round((at_end[-1] if at_end else 0) / span, 3),
            "expected_lag_growth_events_per_s": round(self.plan.rate - self.plan.capacity_events_per_s, 3),
            "drain_s": round(self.drained_at_s - self.load_end_s, 1) if self.drained_at_s else None,
            "rss_baseline_mb": round(base, 1) if base else None,
            "rss_peak_after_warmup_mb": round(max(after), 1) if after else None,
            "rss_growth_peak_pct": growth(max(after)) if after and base else None,
            "rss_growth_end_pct": growth(statistics.median(last_min)) if last_min and base else None,
            "worker_alive": self.worker_alive,
            "wall_s": round(self.wall_s, 1),
        }


def read_capacity(path: Path = PIPELINE_JSON) -> tuple[float, dict]:
    data = json.loads(path.read_text())
    return float(data["capacity"]["events_per_s"]), data.get("options", {})


def plan_from_pipeline(path: Path, multiple: float, duration_s: float, warmup_s: float, drain_timeout_s: float) -> LoadPlan:
    capacity, opts = read_capacity(path)
    keep = {k: opts[k] for k in ("batch_size", "max_frames", "clip_seconds", "clip_width", "clip_height", "library",
                                 "partitions", "runtime") if k in opts}  # fmt: skip
    return LoadPlan(capacity_events_per_s=capacity, multiple=multiple, duration_s=duration_s, warmup_s=warmup_s,
                    drain_timeout_s=drain_timeout_s, **keep)  # fmt: skip


class LagProbe:
    """Consumer lag of the worker group: high watermarks minus its committed offsets, from outside."""

    def __init__(self, settings: Settings, partitions: int) -> None:
        self._consumer = make_consumer(settings, settings.worker_group)  # never subscribes: reads offsets only
        self._tps = [TopicPartition(settings.topic_published, p) for p in range(partitions)]

    def lag(self) -> int | None:
        try:
            committed = self._consumer.committed(self._tps, timeout=5)
            total = 0
            for tp in committed:
                low, high = self._consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5)
                total += high - (tp.offset if tp.offset >= 0 else low)
            return total
        except Exception:  # a slow broker answer: this sample has no lag
            return None

    def close(self) -> None:
        self._consumer.close()


class PacedOffer(threading.Thread):
    """Produces events evenly at `rate`/s, Kafka timestamp = produce time; counts acknowledgements."""

    def __init__(self, settings: Settings, events: list[tuple[str, bytes]], rate: float) -> None:
        super().__init__(daemon=True, name="paced-offer")
        self.settings, self.events, self.rate = settings, events, rate
        self.acked = 0
        self.failed: list[str] = []

    def run(self) -> None:
        producer = make_producer(self.settings)

        def delivered(err: object, _msg: object) -> None:
            if err is None:
                self.acked += 1
            else:
                self.failed.append(str(err))

        start = time.monotonic()
        for i, (vid, value) in enumerate(self.events):
            time.sleep(max(0.0, start + i / self.rate - time.monotonic()))
            produce_with_backpressure(producer, self.settings.topic_published, value, vid.encode(), delivered,
                                      timestamp_ms=int(time.time() * 1000))  # fmt: skip
            producer.poll(0)
        producer.flush(120)


def run_load(plan: LoadPlan, workdir: Path, on_sample=None) -> LoadResult:  # noqa: ANN001
    from rci.inference.model_dir import install_untrained_models

    started = time.monotonic()
    base = Settings(data_dir=workdir / "rci", topic_partitions=plan.partitions, metrics_port=0)
    stack = LocalStack(workdir / "rci", base, partitions=plan.partitions).start()
    result = LoadResult(plan=plan)
    try:
        model_dir = workdir / "models"
        install_untrained_models(model_dir, plan.max_frames)
        settings = stack.settings(model_dir=model_dir, media_max_frames=plan.max_frames, batch_max_size=plan.batch_size,
                                  runtime=plan.runtime, log_format="json")  # fmt: skip
        library = write_library(settings.media_dir, plan.library, plan.clip_seconds, plan.clip_width, plan.clip_height)
        factory = EventFactory(library)
        warm_events = factory.make("lib", plan.library)
        load_events = factory.make("load", plan.events)
        collector = ScoreCollector(settings)
        collector.start()
        worker = ChildProcess("worker", settings, workdir / "worker.log")
        probe = LagProbe(settings, plan.partitions)
        try:
            offer = PacedOffer(settings, warm_events, rate=1000.0)
            offer.run()
            _wait_until(lambda: collector.scored([v for v, _ in warm_events]) == len(warm_events), worker, 600)
            proc = psutil.Process(worker.pid)
            offer = PacedOffer(settings, load_events, plan.rate)
            t0 = time.monotonic()
            offer.start()
            ids = [v for v, _ in load_events]
            while True:
                time.sleep(max(0.0, plan.sample_s - (time.monotonic() - t0) % plan.sample_s))
                t = round(time.monotonic() - t0, 1)
                outputs = collector.scored(ids) + collector.dead_letters
                cpu = proc.cpu_times()
                sample = Sample(t, offer.acked, outputs, probe.lag(), round(proc.memory_info().rss / 2**20, 1),
                                round(cpu.user + cpu.system, 1))  # fmt: skip
                result.samples.append(sample)
                if on_sample:
                    on_sample(sample)
                if offer.is_alive():
                    result.load_end_s = t
                elif outputs >= len(ids) and sample.lag == 0 and result.drained_at_s is None:
                    # drained = every event scored and its offset committed: the worker commits only after the
                    # outputs are acknowledged, so the last outputs show up a moment before the lag reaches 0
                    result.drained_at_s = t
                    if t - result.load_end_s > 10:  # a few more samples show lag at rest
                        break
                if result.drained_at_s and t - result.drained_at_s >= 10:
                    break
                if not worker.alive() or t > plan.duration_s + plan.drain_timeout_s:
                    break
            time.sleep(2.0)  # a re-delivered duplicate, if any, arrives now
            got = collector.first_arrivals(ids)
            result.produced = offer.acked
            result.scored = len(got)
            result.duplicates = sum(n - 1 for _, _, n in got.values())
            result.dead_letters = collector.dead_letters
            result.lost = [v for v in ids if v not in got]
            result.worker_alive = worker.alive()
        finally:
            probe.close()
            result.worker_exit = worker.stop()
            collector.stop()
    finally:
        stack.stop()
    result.wall_s = time.monotonic() - started
    return result


def _wait_until(condition, worker: ChildProcess, timeout_s: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition():
        if not worker.alive():
            raise RuntimeError(f"the worker exited ({worker.popen.returncode}):\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"warm-up not scored in {timeout_s} s:\n{worker.log_tail()}")
        time.sleep(0.2)


# --- outputs ---------------------------------------------------------------------------------------


def plot(result: LoadResult, figures: Path = FIGURES) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures.mkdir(parents=True, exist_ok=True)
    t = [s.t_s for s in result.samples]
    paths = []
    fig, ax = plt.subplots(figsize=(8, 3.4))
    ax.plot(t, [s.lag if s.lag is not None else float("nan") for s in result.samples], label="consumer lag (Kafka)")
    ax.plot(t, [s.produced - s.outputs for s in result.samples], ls="--", lw=1, label="backlog (produced - scored)")
    ax.axvspan(0, result.load_end_s, color="tab:orange", alpha=0.08, label=f"load {result.plan.rate:.2f} events/s")
    ax.set(xlabel="seconds since the load began", ylabel="events", title="Consumer lag at "
           f"{result.plan.multiple:g}x capacity ({result.plan.capacity_events_per_s:g} events/s)")  # fmt: skip
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    paths.append(_save(fig, figures / "load-lag.png"))

    fig, ax = plt.subplots(figsize=(8, 3.4))
    ax.plot(t, [s.rss_mb for s in result.samples], label="worker RSS")
    figs = result.figures()
    if figs["rss_baseline_mb"]:
        base = figs["rss_baseline_mb"]
        ax.axhline(base, color="grey", lw=1, label=f"baseline (first {result.plan.warmup_s:g} s) {base:.0f} MB")
        ax.axhline(base * 1.1, color="tab:red", lw=1, ls=":", label="baseline + 10%")
    ax.axvspan(0, result.load_end_s, color="tab:orange", alpha=0.08)
    ax.axvline(result.plan.warmup_s, color="grey", ls="--", lw=1)
    ax.set(xlabel="seconds since the load began", ylabel="MB", title="Worker resident memory")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    paths.append(_save(fig, figures / "load-memory.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(result: LoadResult) -> str:
    return report_table(result.figures(), asdict(result.plan))


def report_table(f: dict, p: dict) -> str:
    """The figures as a markdown table; `f` is LoadResult.figures(), `p` the plan, both as in load.json."""
    rows = [
        ["capacity (pipeline benchmark)", f"{p['capacity_events_per_s']:g} events/s"],
        ["offered", f"{f['offered_events_per_s']} events/s ({p['multiple']:g}x) for {p['duration_s']:g} s"],
        ["events produced / scored / lost", f"{f['events_produced']} / {f['events_scored']} / {f['events_lost']}"],
        ["duplicate scores, dead letters", f"{f['duplicate_scores']}, {f['dead_letters']}"],
        ["peak consumer lag", f"{f['peak_lag']} events at t={f['peak_lag_at_s']} s"],
        ["lag growth during the load", f"{f['lag_growth_events_per_s']} events/s "
                                       f"(offered - capacity = {f['expected_lag_growth_events_per_s']})"],
        ["drained after the load in", f"{f['drain_s']} s" if f["drain_s"] is not None else "not drained"],
        [f"worker RSS baseline (first {p['warmup_s']:g} s)", f"{f['rss_baseline_mb']} MB"],
        ["worker RSS growth after warm-up", f"peak {f['rss_growth_peak_pct']}%, last minute {f['rss_growth_end_pct']}%"],
        ["worker alive at the end", f["worker_alive"]],
        ["wall time", f"{f['wall_s']} s"],
    ]  # fmt: skip
    return markdown_table(["figure", "value"], rows)


def reading(f: dict, p: dict, load_average: float | None) -> str:
    """What the figures say, in words (the report's second paragraph)."""
    during = f["offered_events_per_s"] - f["lag_growth_events_per_s"]
    drain_rate = f["peak_lag"] / f["drain_s"] if f["peak_lag"] and f["drain_s"] else None
    text = (
        f"While {f['offered_events_per_s']} events/s were offered the worker scored about {during:.2f} events/s "
        f"(offered minus the lag's growth), so the lag grew steadily, by {f['lag_growth_events_per_s']} events/s "
        f"against the {f['expected_lag_growth_events_per_s']} that the benchmark's capacity predicts, and peaked "
        f"when the load stopped: bounded by the excess offered, not running away. "
    )
    if drain_rate:
        text += f"It then drained to zero in {f['drain_s']} s ({drain_rate:.2f} events/s). "
    text += (
        f"Every event was scored ({f['events_lost']} lost, {f['duplicate_scores']} duplicates). The worker's "
        f"memory stayed within {max(abs(f['rss_growth_peak_pct'] or 0), abs(f['rss_growth_end_pct'] or 0)):g}% of "
        f"its baseline (the limit is 10%): backlog waits in Kafka, not in the worker."
    )
    if load_average is not None:
        text += (f" The 2 cores were shared with other work (1-minute load average {load_average:g} at the end), "
                 "as when the capacity was measured.")  # fmt: skip
    return text


def render(data: dict) -> str:
    """docs/load-test.md from the contents of load.json."""
    figures = FIGURES.relative_to(REPORT.parent).as_posix()
    return (
        "# Load test: sustained load at twice the pipeline's capacity\n\n"
        f"`python -m benchmarks.load` ({data['when']}, {data['machine']}); the figures are in "
        "[`benchmarks/results/load.json`](../benchmarks/results/load.json), the method in the script's docstring "
        "and [reliability.md](reliability.md).\n\n"
        f"{report_table(data['figures'], data['plan'])}\n\n"
        f"{reading(data['figures'], data['plan'], data.get('load_average_1m_at_end'))}\n\n"
        f"![consumer lag]({figures}/load-lag.png)\n\n![worker memory]({figures}/load-memory.png)\n"
    )


def write_outputs(result: LoadResult, json_path: Path, report_path: Path = REPORT) -> None:
    data = {
        "benchmark": "load",
        "plan": asdict(result.plan),
        "figures": result.figures(),
        "samples": [asdict(s) for s in result.samples],
        "lost": result.lost[:100],
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 1),
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    plot(result)
    report_path.write_text(render(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline-json", type=Path, default=PIPELINE_JSON, help="the pipeline benchmark's figures")
    parser.add_argument("--multiple", type=float, default=2.0, help="offered load as a multiple of the capacity")
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--warmup-s", type=float, default=60.0, help="memory baseline: the load's first seconds")
    parser.add_argument("--drain-timeout-s", type=float, default=1800.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--no-record", action="store_true", help="print only: no JSON, plots, report or RESULTS.md")
    args = parser.parse_args(argv)
    plan = plan_from_pipeline(args.pipeline_json, args.multiple, args.duration_s, args.warmup_s, args.drain_timeout_s)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    def show(s: Sample) -> None:
        if int(s.t_s) % 30 < plan.sample_s:
            print(f"t={s.t_s:6.1f}s produced={s.produced} outputs={s.outputs} lag={s.lag} rss={s.rss_mb} MB", flush=True)

    with tempfile.TemporaryDirectory(prefix="rci-load-") as tmp:
        result = run_load(plan, args.workdir or Path(tmp), show)
    body = report(result)
    print(body)
    if not args.no_record:
        write_outputs(result, args.json)
        record("Reliability: sustained load (benchmarks.load)", body)
    f = result.figures()
    ok = result.worker_alive and not result.lost and f["drain_s"] is not None
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
