"""`rci demo`: the whole system end to end on embedded defaults, in a few minutes on 2 CPU cores.

1. start a real Kafka broker (KRaft, from the Maven jars) on free ports; Milvus Lite and the local
   object store are embedded;
2. generate a small corpus of sample videos with reproductions and hard negatives among them;
3. load the models from the model directory, or train small ones on the corpus's train split
   (visual copy-detection encoder, then MatchLite) and pick the threshold on its val split;
4. publish every video as a `video.published` event, in publication order;
5. run `rci worker` processes until every event has a score;
6. print which videos were deboosted and against what, and write a report with score plots.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.streams.contracts import DeadLetterRecord, PublishedEvent, ScoreRecord
from rci.training.metrics import roc_auc

if TYPE_CHECKING:  # the corpus and media modules load on use, so `rci --help` stays quick
    from rci.media.policy import MediaPolicy
    from rci.training.corpus.manifest import CorpusManifest

log = get_logger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    sources: int = 8  # sources in the published corpus (each brings copies and hard negatives)
    train_sources: int = 32  # sources in the separate corpus the demo model is trained on
    seed: int = 7
    workers: int = 1
    timeout_s: float = 900.0
    retrain: bool = False
    keep_services: bool = False
    review: bool = False  # after the report, serve the review page on the demo's topics until Ctrl-C


@dataclass
class DemoResult:
    scores: dict[str, ScoreRecord]
    dead_letters: list[DeadLetterRecord]
    truth: dict[str, str | None]  # video_id -> the source it reproduces, or None
    elapsed_s: float
    report_dir: Path
    auc: float | None = None
    stages: dict[str, float] = field(default_factory=dict)


def publication_waves(manifest: CorpusManifest) -> list[list[PublishedEvent]]:
    """The originals first, then what derives from them: a reproduction goes live after its source.

    All sample events are published within seconds, while a real source precedes its copies by
    minutes or days. Kafka keeps order only within a partition, so a copy could be scored before
    its source was indexed, and retrieval would rightly not find a video it has not seen yet.
    Publishing in two waves gives the demo the order of real life.
    """
    originals = [e for e in manifest.events if manifest.videos[e.video_id].derived_from is None]
    derived = [e for e in manifest.events if manifest.videos[e.video_id].derived_from is not None]
    return [wave for wave in (originals, derived) if wave]


def reproduction_truth(manifest: CorpusManifest) -> dict[str, str | None]:
    """video_id -> the earlier video it reproduces (a positive pair's candidate), else None."""
    truth: dict[str, str | None] = {e.video_id: None for e in manifest.events}
    for pair in manifest.pairs:
        if pair.label == 1:
            truth[pair.query_id] = pair.candidate_id
    return truth


def prepare_models(model_dir: Path, policy: MediaPolicy, options: DemoOptions = DemoOptions(),
                   *, progress: bool = True) -> dict:
    """The demo's serving models in `model_dir`: trained once on a corpus of their own (other seed,
    other sources, so the demo never scores training data), reused while their inputs are unchanged."""
    from rci.training.corpus.generate import cached_corpus
    from rci.training.serving import ServingRecipe, train_serving_models

    if options.retrain and (model_dir / "serving.json").exists():
        (model_dir / "serving.json").unlink()
    corpus = cached_corpus(model_dir / "training-corpus", options.train_sources, 1000 + options.seed)
    return train_serving_models(model_dir, corpus, policy, ServingRecipe(), progress=progress)


class Demo:
    def __init__(self, settings: Settings, options: DemoOptions, console: Console | None = None) -> None:
        self.settings = settings
        self.options = options
        self.console = console or Console()
        self.stages: dict[str, float] = {}

    def run(self) -> DemoResult:
        from rci.services.kafka_broker import KafkaBroker
        from rci.services.kafka_jars import cache_root_from_env, ensure_jars
        from rci.services.milvus_server import MilvusLiteServer

        started = time.perf_counter()
        data_dir = self.settings.data_dir.absolute()
        self._fresh_run_state(data_dir)
        broker = KafkaBroker(data_dir / "services" / "kafka", libs=ensure_jars(cache_root_from_env()))
        # served, not embedded: the demo's worker processes (--workers) share one vector store
        milvus = MilvusLiteServer(data_dir / "milvus.db", log_path=data_dir / "services" / "milvus.log")
        with self._stage("Kafka broker and Milvus Lite up"):
            broker.start()
            milvus.start()
        try:
            self.settings = self.settings.model_copy(
                # earliest: the workers start after the events are published and must read them all
                update={"kafka_bootstrap": broker.bootstrap, "kafka_auto_offset_reset": "earliest", "milvus_uri": milvus.uri}
            )
            manifest = self._step("sample media", self._make_corpus)
            self._step("models", lambda: self._prepare_models(manifest))
            self._step("topics", self._create_topics)
            scores, dead = self._score_all(manifest)
            result = self._report(manifest, scores, dead, started, data_dir)
            if self.options.review:
                self._serve_review()
        finally:
            if not self.options.keep_services:
                milvus.stop()
                broker.stop()
        return result

    def _report(self, manifest: CorpusManifest, scores: dict[str, ScoreRecord], dead: list[DeadLetterRecord],
                started: float, data_dir: Path) -> DemoResult:  # fmt: skip
        truth = reproduction_truth(manifest)
        result = DemoResult(scores, dead, truth, time.perf_counter() - started, data_dir / "report",
                            stages=dict(self.stages))
        result.auc = roc_auc([s.score for s in scores.values()], [int(truth[v] is not None) for v in scores])
        self._print_results(result)
        write_report(result, self.settings)
        self.console.print(f"\nreport: [bold]{result.report_dir / 'index.md'}[/]")
        return result

    def _serve_review(self) -> None:
        """The review page on this run's topics and feature store, until Ctrl-C or SIGTERM; then the services stop."""
        import asyncio

        from rci.review.server import serve_review

        def listening(url: str) -> None:
            self.console.print(f"review page: [bold]{url}[/] (Ctrl-C stops it and the demo's services)")

        asyncio.run(serve_review(self.settings, on_listening=listening))

    # --- steps -------------------------------------------------------------------------------

    def _fresh_run_state(self, data_dir: Path) -> None:
        """Each demo run starts with an empty index, cache and broker; models and media are kept."""
        for name in ("services", "objects", "milvus.db", "faust", "report", "logs"):
            path = data_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def _make_corpus(self) -> CorpusManifest:
        from rci.training.corpus.generate import cached_corpus

        return cached_corpus(self.settings.media_dir / "corpus", self.options.sources, self.options.seed)

    def _prepare_models(self, _published: CorpusManifest) -> None:
        from rci.media.policy import media_policy

        meta = prepare_models(self.settings.resolved_model_dir, media_policy(self.settings), self.options)
        self.console.print(f"model {meta['model_version']} (threshold {meta['threshold']:.3f})")

    def _create_topics(self) -> None:
        from rci.streams.kafka import ensure_topics

        ensure_topics(self.settings)

    def _publish(self, events: list) -> None:
        from rci.streams.kafka import publish_events

        report = publish_events(self.settings, events, flush_timeout_s=60)
        if report.unacknowledged or report.failed:
            raise RuntimeError("the broker did not acknowledge every published event")

    def _score_all(self, manifest: CorpusManifest) -> tuple[dict[str, ScoreRecord], list[DeadLetterRecord]]:
        from rci.streams.processes import ChildProcess
        from rci.streams.readback import read_until

        expected = {e.video_id for e in manifest.events}
        logs = self.settings.data_dir.absolute() / "logs"
        settings = self.settings.model_copy(update={"metrics_port": 0})
        workers = [ChildProcess("worker", settings, logs / f"worker{i}.log") for i in range(self.options.workers)]
        scores: dict[str, ScoreRecord] = {}
        dead: list[DeadLetterRecord] = []
        started = time.perf_counter()
        columns = (TextColumn("[bold]scoring[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        waves = publication_waves(manifest)
        published = 0

        def publish_next_wave() -> None:
            nonlocal published
            wave = waves.pop(0)
            self._publish(wave)
            published += len(wave)

        try:
            with Progress(*columns, console=self.console) as bar:
                task = bar.add_task("score", total=len(expected))
                publish_next_wave()

                def on_record(topic: str, _key: bytes | None, value: bytes | None) -> None:
                    if topic == settings.topic_scores:
                        record = ScoreRecord.model_validate_json(value)
                        scores[record.video_id] = record
                    else:
                        dead.append(DeadLetterRecord.model_validate_json(value))
                    bar.update(task, completed=len(scores) + len(dead))
                    self._check_workers(workers)
                    if waves and len(scores) + len(dead) >= published:
                        publish_next_wave()

                read_until(settings, [settings.topic_scores, settings.topic_dlq],
                           done=lambda _got: len(scores) + len(dead) >= len(expected),
                           timeout_s=self.options.timeout_s, on_record=on_record)
        finally:
            for worker in workers:
                worker.stop()
        self.stages["score all events"] = time.perf_counter() - started
        if len(scores) + len(dead) < len(expected):
            raise RuntimeError(f"only {len(scores) + len(dead)} of {len(expected)} events came back; "
                               f"worker log: {workers[0].log_path}")
        return scores, dead

    @staticmethod
    def _check_workers(workers: list) -> None:
        for worker in workers:
            if not worker.alive():
                raise RuntimeError(f"worker exited with {worker.popen.returncode}:\n{worker.log_tail()}")

    # --- presentation ---------------------------------------------------------------------

    def _step(self, name: str, fn: Callable[[], object]) -> object:
        with self._stage(name):
            return fn()

    class _Timer:
        def __init__(self, demo: Demo, name: str) -> None:
            self.demo, self.name = demo, name

        def __enter__(self) -> None:
            self.demo.console.rule(f"[bold]{self.name}")
            self.start = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            self.demo.stages[self.name] = time.perf_counter() - self.start

    def _stage(self, name: str) -> Demo._Timer:
        return Demo._Timer(self, name)

    def _print_results(self, result: DemoResult) -> None:
        table = Table(title="rci.scores", show_lines=False)
        for column in ("video", "candidate", "score", "deboost", "truth", "modalities", "matched segments"):
            table.add_column(column)
        for video_id, score in sorted(result.scores.items(), key=lambda kv: -kv[1].score):
            truth = result.truth.get(video_id)
            verdict = "reproduces " + truth if truth else "original"
            style = "bold red" if score.deboost else None
            segments = "; ".join(f"{s[0]:.0f}-{s[1]:.0f}s~{s[2]:.0f}-{s[3]:.0f}s" for s in score.evidence.matched_segments[:2])
            table.add_row(video_id, score.candidate_id or "-", f"{score.score:.3f}", "yes" if score.deboost else "no",
                          verdict, ",".join(m[0].upper() for m in score.modalities), segments, style=style)
        self.console.print(table)
        summary = summarise(result)
        self.console.print(
            f"{summary['events']} events scored in {result.stages.get('score all events', 0):.1f} s; "
            f"deboosted {summary['deboosted']} (true reproductions among them: {summary['true_positives']} "
            f"of {summary['reproductions']}); AUC {summary['auc']}"
        )


def summarise(result: DemoResult) -> dict[str, object]:
    deboosted = [v for v, s in result.scores.items() if s.deboost]
    return {
        "events": len(result.scores) + len(result.dead_letters),
        "scored": len(result.scores),
        "dead_letters": len(result.dead_letters),
        "reproductions": sum(1 for v in result.scores if result.truth.get(v)),
        "deboosted": len(deboosted),
        "true_positives": sum(1 for v in deboosted if result.truth.get(v)),
        "candidate_is_source": sum(
            1 for v, s in result.scores.items() if result.truth.get(v) and s.candidate_id == result.truth[v]
        ),
        "auc": None if result.auc is None else round(result.auc, 3),
        "elapsed_s": round(result.elapsed_s, 1),
        "stages_s": {k: round(v, 1) for k, v in result.stages.items()},
    }


def write_report(result: DemoResult, settings: Settings) -> Path:
    """index.md, summary.json, scores.json and a score-distribution plot under report_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = result.report_dir
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(result)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "scores.jsonl").write_text("".join(s.model_dump_json() + "\n" for s in result.scores.values()))

    repro = [s.score for v, s in result.scores.items() if result.truth.get(v)]
    orig = [s.score for v, s in result.scores.items() if not result.truth.get(v)]
    threshold = next(iter(result.scores.values())).threshold if result.scores else 0.5
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = [i / 20 for i in range(21)]
    ax.hist(orig, bins=bins, alpha=0.6, label=f"originals / not reproduced (n={len(orig)})")
    ax.hist(repro, bins=bins, alpha=0.6, label=f"reproductions (n={len(repro)})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"deboost threshold {threshold:.2f}")
    ax.set_xlabel("MatchLite score")
    ax.set_ylabel("videos")
    ax.set_title(f"rci.scores in the demo (AUC {summary['auc']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=120)
    plt.close(fig)

    rows = "\n".join(
        f"| {v} | {s.candidate_id or '-'} | {s.score:.3f} | {'yes' if s.deboost else 'no'} | "
        f"{result.truth.get(v) or 'original'} |"
        for v, s in sorted(result.scores.items(), key=lambda kv: -kv[1].score)
    )
    stages = "\n".join(f"| {k} | {v:.1f} |" for k, v in result.stages.items())
    (out / "index.md").write_text(
        f"# rci demo report\n\n"
        f"- events: {summary['events']} ({summary['scored']} scored, {summary['dead_letters']} dead-lettered)\n"
        f"- reproductions among them: {summary['reproductions']}; deboosted: {summary['deboosted']} "
        f"(true reproductions: {summary['true_positives']}); candidate = true source for "
        f"{summary['candidate_is_source']} of {summary['reproductions']}\n"
        f"- ROC AUC of the score, reproductions vs the rest: {summary['auc']}\n"
        f"- model: {next(iter(result.scores.values())).model_version if result.scores else '-'}\n\n"
        f"![score distribution](scores.png)\n\n"
        f"## Time per stage (s)\n\n| stage | seconds |\n|---|---|\n{stages}\n\n"
        f"## Scores\n\n| video | candidate | score | deboost | truth |\n|---|---|---|---|---|\n{rows}\n"
    )
    return out
