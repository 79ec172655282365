"""Retrieval on a real Milvus server with the production design: 512-d vectors, one per kept frame.

    .venv/bin/python -m benchmarks.bench_milvus_server --help
    .venv/bin/python -m benchmarks.bench_milvus_server --videos 10000          # starts the wheel's server
    .venv/bin/python -m benchmarks.bench_milvus_server --uri http://milvus:19530 --videos 10000,100000,1000000

For each `--videos` size, a fresh collection on the server (by default a Milvus 2.3.5 standalone started
from the `milvus` wheel in a temp dir, as the tests and `rci services up --milvus server` run it): each
video stores `--frames` vectors (the worker stores one per kept frame, up to 32), generated like SSCD
descriptors (`video_frames`: a video's frames scatter around its own direction, videos cluster around
shared topics). Then, through `rci.retrieval.milvus.MilvusVectorStore` (the worker's client, HNSW M=16
efConstruction=200, search ef=128, per-video aggregation in the client: the server has no grouping
search):

* insert: vectors/s, then seconds until the server reports every row indexed;
* search: p50/p99 per call at batch 1 and batch 16 (queries = noisy copies of stored videos, published
  after all of them, each with its `--frames` vectors), and recall@1 of the copied video against exact
  search with the same aggregation (a video scores by its best pair of frames);
* insert-to-searchable: a new video upserted, then searched for with a copy of it until it is found;
* memory: the server process's resident memory before and after the insert, per million vectors.

Figures go to benchmarks/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from pymilvus import MilvusClient

from benchmarks.bench_retrieval import clustered_vectors
from benchmarks.record import command_line, markdown_table, publish
from rci.retrieval.milvus import MilvusVectorStore, index_profile
from rci.retrieval.store import SearchQuery, VideoRecord, from_epoch_ms
from rci.retrieval.synthetic import unit
from rci.retrieval.vectors import Granularity, VectorSpec

T0_MS = 1_700_000_000_000  # stored video i is published at T0_MS + i seconds
FRAME_SPREAD = 0.6  # how far a video's frames scatter around its own direction
COPY_NOISE = 0.35  # a query is a stored video's frames plus this much noise (an edited copy)


def video_frames(videos: int, frames: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """[videos, frames, dim] unit vectors: each video's frames around its own direction (clustered by topic)."""
    centres = clustered_vectors(videos, rng, dim=dim)
    out = np.empty((videos, frames, dim), np.float32)
    for s in range(0, videos, 10_000):
        e = min(videos, s + 10_000)
        out[s:e] = unit(centres[s:e, None, :] + FRAME_SPREAD * unit(rng.standard_normal((e - s, frames, dim))))
    return out


def exact_best(queries: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """[Q] the stored video with the best frame pair for each query (the client's aggregation, exactly)."""
    flat = stored.reshape(-1, stored.shape[-1])
    best = []
    for q in queries:
        per_pair = (q @ flat.T).reshape(len(q), stored.shape[0], stored.shape[1])  # [query frames, videos, frames]
        best.append(int(per_pair.max(axis=(0, 2)).argmax()))
    return np.array(best)


def rss_mb(pid: int | None) -> float:
    """Resident memory of a process and its children, MB; 0 when unknown (as benchmarks.load reads it: psutil)."""
    if pid is None:
        return 0.0
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20
    return 0.0


def wait_indexed(uri: str, collection: str, rows: int, timeout_s: float = 3600.0) -> float:
    """Seconds until the server reports `rows` rows indexed (searches before that are partly brute force)."""
    client = MilvusClient(uri=uri)
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout_s:
            indexed = 0
            for name in client.list_indexes(collection):
                info = client.describe_index(collection, name)
                indexed = max(indexed, int(info.get("indexed_rows", 0)))
            if indexed >= rows:
                return time.monotonic() - start
            time.sleep(2)
        raise RuntimeError(f"{collection}: not indexed after {timeout_s:.0f} s")
    finally:
        client.close()


def percentile_ms(seconds: list[float], q: float) -> float:
    return round(float(np.percentile(seconds, q)) * 1000, 1)


def bench_size(uri: str, server_pid: int | None, videos: int, frames: int, dim: int, queries: int,
               rng: np.random.Generator, consistency: str = "Strong") -> list[object]:  # fmt: skip
    stored = video_frames(videos, frames, dim, rng)
    collection = f"bench_{videos}_{frames}x{dim}"
    opts = dict(dim=dim, vector_kind=VectorSpec(Granularity.CLIP).kind, profile=index_profile(uri), collection=collection,
                consistency_level=consistency)  # fmt: skip
    memory_before = rss_mb(server_pid)
    start = time.perf_counter()
    with MilvusVectorStore(uri, **opts) as store:
        for s in range(0, videos, 500):
            store.upsert([VideoRecord(f"v{i}", stored[i], from_epoch_ms(T0_MS + 1000 * i))
                          for i in range(s, min(videos, s + 500))])  # fmt: skip
        store.flush()
    insert_s = time.perf_counter() - start
    indexed_s = wait_indexed(uri, collection, videos * frames)
    memory_after = rss_mb(server_pid)

    picks = rng.choice(videos, size=queries, replace=False)
    copies = unit(stored[picks] + COPY_NOISE * unit(rng.standard_normal(stored[picks].shape)))
    late = from_epoch_ms(T0_MS + 1000 * (videos + 10))
    asked = [SearchQuery(f"q{j}", copies[j], late) for j in range(queries)]
    exact = exact_best(copies, stored)
    timings: dict[int, list[float]] = {}
    found: list[str | None] = []
    with MilvusVectorStore(uri, **opts) as store:
        store.search(asked[:4])  # warm-up
        for batch in (1, 16):
            timings[batch] = []
            for s in range(0, queries, batch):
                t = time.perf_counter()
                results = store.search(asked[s : s + batch])
                timings[batch].append(time.perf_counter() - t)
                if batch == 16:
                    found += [hits[0].video_id if hits else None for hits in results]
        visible = insert_to_searchable(store, stored, videos, rng)
    recall = float(np.mean([f == f"v{int(e)}" for f, e in zip(found, exact, strict=True)]))
    vectors = videos * frames
    return [videos, vectors, round(vectors / insert_s), round(indexed_s, 1),
            percentile_ms(timings[1], 50), percentile_ms(timings[1], 99),
            percentile_ms(timings[16], 50), percentile_ms(timings[16], 99), round(recall, 4),
            round(float(np.median(visible)) * 1000, 1), round(max(visible) * 1000, 1),
            round(memory_after), round((memory_after - memory_before) / (vectors / 1e6))]  # fmt: skip


def insert_to_searchable(store: MilvusVectorStore, stored: np.ndarray, videos: int, rng: np.random.Generator,
                         tries: int = 5) -> list[float]:  # fmt: skip
    """Seconds from a new video's upsert returning to the first search (of a copy of it) that finds it."""
    delays = []
    for n in range(tries):
        new_id, published = f"new{n}", from_epoch_ms(T0_MS + 1000 * (videos + 1 + n))
        frames = unit(stored[n] + FRAME_SPREAD * unit(rng.standard_normal(stored[n].shape)))  # unlike any stored
        query = SearchQuery(f"copy-of-{new_id}", unit(frames + 0.1 * rng.standard_normal(frames.shape)),
                            from_epoch_ms(T0_MS + 1000 * (videos + 100)))  # fmt: skip
        store.upsert([VideoRecord(new_id, frames, published)])
        start = time.perf_counter()
        while True:
            [hits] = store.search([query])
            if hits and hits[0].video_id == new_id:
                break
            if time.perf_counter() - start > 120:
                raise RuntimeError(f"{new_id} not searchable after 120 s")
        delays.append(time.perf_counter() - start)
    return delays


HEADER = ["videos", "vectors", "insert vectors/s", "index wait s", "batch 1 p50 ms", "batch 1 p99 ms",
          "batch 16 p50 ms", "batch 16 p99 ms", "recall@1", "insert-to-searchable p50 ms",
          "insert-to-searchable max ms", "server RSS MB", "MB per 1M vectors"]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_milvus_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", default="10000", help="stored videos per run, comma-separated")
    parser.add_argument("--frames", type=int, default=30, help="vectors per video (one per kept frame)")
    parser.add_argument("--dim", type=int, default=512, help="vector width (SSCD: 512)")
    parser.add_argument("--queries", type=int, default=128, help="queries per size")
    parser.add_argument("--uri", help="a running Milvus server (default: start the wheel's standalone server)")
    parser.add_argument("--consistency", default="Strong", choices=["Strong", "Bounded", "Session", "Eventually"],
                        help="search consistency (the worker's default: Strong; a Strong search waits for the server's time tick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    sizes = [int(v) for v in args.videos.split(",") if v]
    rows = []
    with tempfile.TemporaryDirectory(prefix="rci-bench-milvus-") as tmp:
        server = None
        if args.uri is None:
            from rci.services.milvus_server import MilvusStandaloneServer

            server = MilvusStandaloneServer(Path(tmp) / "milvus")
            server.start()
        try:
            uri = args.uri or server.uri
            for videos in sizes:
                rows.append(bench_size(uri, server.pid if server else None, videos, args.frames, args.dim,
                                       min(args.queries, videos), rng, args.consistency))  # fmt: skip
                print(markdown_table(HEADER, rows[-1:]), flush=True)
        finally:
            if server is not None:
                server.stop()
    where = f"server {args.uri}" if args.uri else "Milvus 2.3.5 standalone from the `milvus` wheel, on this machine"
    body = (
        f"{where}; {args.frames} vectors of {args.dim}-d per video (SSCD-like: frames scattered around the video's "
        f"direction, videos clustered by topic); HNSW M=16 efConstruction=200, search ef=128, {args.consistency} consistency; "
        f"per-video aggregation in the client (best frame pair); {args.queries} queries per size, each a noisy copy "
        f"(noise {COPY_NOISE}) of a stored video with all its frames; recall@1 against exact search with the same "
        f"aggregation. Server RSS includes its embedded etcd and every node of the standalone process.\n\n"
        + markdown_table(HEADER, rows)
    )
    publish("Retrieval on a Milvus server, production design (benchmarks.bench_milvus_server)", body,
            dry_run=args.no_record, command=command_line("benchmarks.bench_milvus_server", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
