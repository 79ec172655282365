"""Retrieval benchmark: vector granularity, and Milvus latency / throughput / recall at scale.

Two parts (both by default; `--only` picks one):

* granularity: recall@1 of the source video for copies among distractors, video-level mean
  vectors against clip-level vectors (rci.retrieval.vectors), exact numpy search, procedural frame
  sequences (rci.retrieval.synthetic). Decides the default granularity.
* scale: for each `--sizes` entry (stored vectors, one per video), a fresh Milvus store
  (Milvus Lite file by default, or `--uri`): insert throughput, time to reopen (Lite builds
  segment indexes on load), search latency p50/p99 and queries/s at batch 1 and 64,
  recall@1 against exact numpy search, and the batched filter against per-query filters.

    .venv/bin/python -m benchmarks.bench_retrieval --help
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from benchmarks.record import markdown_table, record
from rci.retrieval.milvus import IndexProfile, MilvusVectorStore, index_profile
from rci.retrieval.store import SearchQuery, VideoRecord, from_epoch_ms
from rci.retrieval.synthetic import FrameSequences, unit
from rci.retrieval.vectors import Granularity, VectorSpec, index_vectors, query_vectors

T0_MS = 1_700_000_000_000  # stored video i is published at T0_MS + i seconds


# --- granularity -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    spec: VectorSpec


VARIANTS = [
    Variant("video mean", VectorSpec(Granularity.VIDEO)),
    Variant("clip 4, query stride 4", VectorSpec(Granularity.CLIP, clip_frames=4, query_stride=4)),
    Variant("clip 4, query stride 2", VectorSpec(Granularity.CLIP, clip_frames=4, query_stride=2)),
    Variant("clip 4, query stride 1", VectorSpec(Granularity.CLIP, clip_frames=4, query_stride=1)),
]


def exact_recall_at_1(sources: list[np.ndarray], copies: list[np.ndarray], spec: VectorSpec) -> tuple[float, int, float]:
    """Copy i must retrieve source i; returns (recall@1, stored vectors, query vectors per copy)."""
    stored = [index_vectors(f, np.ones(len(f), bool), spec) for f in sources]
    owner = np.repeat(np.arange(len(stored)), [len(s) for s in stored])  # [R]
    matrix = np.concatenate(stored)  # [R, D]
    # Best pair per (copy, video) = max over the copy's query vectors and the video's rows.
    firsts = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]  # first row of each video
    hits, n_query_vectors = 0, 0
    for i, frames in enumerate(copies):
        q = query_vectors(frames, np.ones(len(frames), bool), spec)  # [C, D]
        n_query_vectors += len(q)
        best_per_row = (q @ matrix.T).max(axis=0)  # [R]
        best_per_video = np.maximum.reduceat(best_per_row, firsts)  # [V]
        hits += int(best_per_video.argmax() == i)
    return hits / len(copies), len(matrix), n_query_vectors / len(copies)


@dataclass(frozen=True)
class CopyKind:
    name: str
    keep: tuple[float, float] | None  # share of the source kept; None = the whole source
    noise: float


COPY_KINDS = [
    CopyKind("full, noise 0.35", None, 0.35),
    CopyKind("trim 20-50%, noise 0.35", (0.2, 0.5), 0.35),
    CopyKind("trim 10-20%, noise 0.9", (0.1, 0.2), 0.9),
    CopyKind("trim 10-20%, noise 1.2", (0.1, 0.2), 1.2),
]


def bench_granularity(videos: int, copies: int, seed: int) -> str:
    gen = FrameSequences(seed=seed)
    sources = gen.videos(videos)
    sets = {
        kind.name: [gen.noisy_copy(sources[i], kind.noise) if kind.keep is None
                    else gen.trimmed_copy(sources[i], kind.keep, kind.noise) for i in range(copies)]
        for kind in COPY_KINDS
    }
    rows = []
    for variant in VARIANTS:
        row: list[object] = [variant.name]
        for name, copy_set in sets.items():
            r, stored, per_query = exact_recall_at_1(sources, copy_set, variant.spec)
            row.append(r)
        rows.append([*row[:1], stored, round(per_query, 1), *row[1:]])
        print(rows[-1])
    header = ["vectors", "stored vectors", "query vectors per copy (last set)",
              *[f"recall@1 {name}" for name in sets]]
    return (
        f"{videos} distractor videos of 12-32 frames (rci.retrieval.synthetic scene model), {copies} copies of "
        "each kind; trimmed copies are spliced into foreign footage. Exact search (numpy); a video scores "
        "by its best vector pair.\n\n" + markdown_table(header, rows)
    )


# --- scale ---------------------------------------------------------------------------------------


def clustered_vectors(n: int, rng: np.random.Generator, dim: int = 128, topics: int = 50) -> np.ndarray:
    """[n, dim] unit vectors around shared topic directions (like rci.retrieval.synthetic's scenes)."""
    common = unit(rng.standard_normal(dim))
    centres = unit(rng.standard_normal((topics, dim)))
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        out[s:e] = unit(common + 0.8 * centres[rng.integers(topics, size=e - s)]
                        + 0.9 * unit(rng.standard_normal((e - s, dim))))
    return out


def percentile_ms(seconds: list[float], q: float) -> float:
    return round(float(np.percentile(seconds, q)) * 1000, 1)


@dataclass
class ScaleRun:
    uri: str
    size: int
    queries: int
    ef: int | None
    seed: int


def bench_size(run: ScaleRun, progress: Progress) -> list[list[object]]:
    rng = np.random.default_rng(run.seed)
    stored = clustered_vectors(run.size, rng)
    profile = index_profile(run.uri)
    if run.ef:
        profile = IndexProfile(profile.index_type, profile.build_params, {**profile.search_params, "ef": run.ef},
                               profile.flush_every_rows)
    spec = VectorSpec(Granularity.VIDEO)
    collection = f"bench_{run.size}"
    opts = dict(dim=stored.shape[1], vector_kind=spec.kind, profile=profile, collection=collection)

    t = time.perf_counter()
    with MilvusVectorStore(run.uri, **opts) as store:
        task = progress.add_task(f"insert {run.size:,}", total=run.size)
        for s in range(0, run.size, 5000):
            e = min(run.size, s + 5000)
            store.upsert([VideoRecord(f"v{i}", stored[i : i + 1], from_epoch_ms(T0_MS + 1000 * i)) for i in range(s, e)])
            progress.update(task, completed=e)
        store.flush()
    insert_s = time.perf_counter() - t
    t = time.perf_counter()
    store = MilvusVectorStore(run.uri, **opts)  # Lite builds any missing segment index while loading
    reopen_s = time.perf_counter() - t

    # Streaming queries: noisy copies of stored videos, published after everything stored.
    picks = rng.choice(run.size, size=run.queries, replace=False)
    q_vecs = unit(stored[picks] + 0.35 * unit(rng.standard_normal((run.queries, stored.shape[1]))))
    late = from_epoch_ms(T0_MS + 1000 * (run.size + 1))
    queries = [SearchQuery(f"q{j}", q_vecs[j : j + 1], late) for j in range(run.queries)]
    exact = (q_vecs @ stored.T).argmax(axis=1)  # [Q]

    rows = []
    base = [run.size, round(run.size / insert_s), round(reopen_s, 1)]
    for label, batch in (("batch 1", 1), ("batch 64", 64)):
        lat, found = timed_search(store, queries, batch, progress, f"{run.size:,} {label}")
        rows.append([*base, label, percentile_ms(lat, 50), percentile_ms(lat, 99),
                     round(len(queries) / sum(lat), 1), recall(found, exact), 0.0])
    store.close()

    # The same batch of 64 with one exact filter per query (the alternative to over-fetching).
    with MilvusVectorStore(run.uri, batched_filter=False, **opts) as per_query:
        lat, found = timed_search(per_query, queries, 64, progress, f"{run.size:,} per-query filter")
        rows.append([*base, "batch 64, per-query filters", percentile_ms(lat, 50), percentile_ms(lat, 99),
                     round(len(queries) / sum(lat), 1), recall(found, exact), 0.0])

    # Replay/backfill: queries published in the middle of the stored range, so the shared batch filter
    # lets later videos through and the client side must drop them (fallbacks counted).
    mids = rng.integers(run.size // 4, run.size, size=run.queries)
    mid_queries = [SearchQuery(f"m{j}", q_vecs[j : j + 1], from_epoch_ms(T0_MS + 1000 * int(mids[j]) - 1))
                   for j in range(run.queries)]
    masked = np.where(np.arange(run.size)[None, :] < mids[:, None], q_vecs @ stored.T, -np.inf)
    with MilvusVectorStore(run.uri, **opts) as replay:
        lat, found = timed_search(replay, mid_queries, 64, progress, f"{run.size:,} replay")
        rows.append([*base, "batch 64, replay (mid-range times)", percentile_ms(lat, 50), percentile_ms(lat, 99),
                     round(len(mid_queries) / sum(lat), 1), recall(found, masked.argmax(axis=1)),
                     round(replay.stats.fallback_queries / replay.stats.queries, 3)])
    return rows


def timed_search(store: MilvusVectorStore, queries: list[SearchQuery], batch: int, progress: Progress,
                 label: str) -> tuple[list[float], list[str | None]]:
    store.search(queries[:batch])  # warm-up: first search touches every segment
    task = progress.add_task(label, total=len(queries))
    latencies, found = [], []
    for s in range(0, len(queries), batch):
        t = time.perf_counter()
        results = store.search(queries[s : s + batch])
        latencies.append(time.perf_counter() - t)
        found += [hits[0].video_id if hits else None for hits in results]
        progress.update(task, completed=s + batch)
    return latencies, found


def recall(found: list[str | None], exact: np.ndarray) -> float:
    return round(float(np.mean([f == f"v{int(e)}" for f, e in zip(found, exact, strict=True)])), 4)


def bench_scale(sizes: list[int], queries: int, uri: str | None, ef: int | None, seed: int) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="bench_retrieval_"))
    rows = []
    try:
        with Progress() as progress:
            for size in sizes:
                target = uri or str(workdir / f"milvus_{size}.db")
                rows += bench_size(ScaleRun(target, size, min(queries, size), ef, seed), progress)
                print(markdown_table(HEADER, rows[-4:]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    profile = index_profile(uri or "x.db")
    return (
        f"Backend: {'server ' + uri if uri else 'Milvus Lite file'}; index {profile.index_type} "
        f"{profile.build_params}, search {dict(profile.search_params, **({'ef': ef} if ef else {}))}; "
        f"one 128-d vector per video (clustered unit vectors), queries = noisy copies (noise 0.35) of "
        f"{queries} stored vectors; top_k 1; recall@1 against exact numpy search; 'fallback' = share of "
        "queries re-searched with their own filter.\n\n" + markdown_table(HEADER, rows)
    )


HEADER = ["vectors", "insert vectors/s", "reopen+load s", "search", "p50 ms/call", "p99 ms/call", "queries/s",
          "recall@1", "fallback"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["granularity", "scale"], help="run one part only")
    parser.add_argument("--sizes", default="10000", help="comma-separated stored-vector counts, e.g. 10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=256, help="queries per size (batches of 1 and of 64)")
    parser.add_argument("--uri", help="Milvus server URI (default: a Milvus Lite file in a temp dir)")
    parser.add_argument("--ef", type=int, help="override the HNSW search ef of the index profile")
    parser.add_argument("--videos", type=int, default=10_000, help="granularity: distractor videos")
    parser.add_argument("--copies", type=int, default=200, help="granularity: copies of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()

    sections = []
    if args.only in (None, "granularity"):
        sections.append(("Retrieval granularity: video mean vs clip vectors", bench_granularity(args.videos, args.copies, args.seed)))
    if args.only in (None, "scale"):
        sizes = [int(s) for s in args.sizes.split(",") if s]
        sections.append(("Retrieval on Milvus: latency, throughput, recall", bench_scale(sizes, args.queries, args.uri, args.ef, args.seed)))
    command = " ".join([".venv/bin/python -m benchmarks.bench_retrieval", *map(shlex.quote, sys.argv[1:])])
    for title, body in sections:
        if args.no_record:
            print(f"\n## {title}\n\n{body}")
        else:
            record(title, body, command=command)


if __name__ == "__main__":
    main()
