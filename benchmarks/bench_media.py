"""Media and storage cost: decode time per video, the log-mel front end, feature-cache round trips.

    python -m benchmarks.bench_media                          # 360p + 720p, 10 s clips, local store
    python -m benchmarks.bench_media --sizes 1280x720,1920x1080 --duration 30 --reps 5 --s3

Clips are synthetic H.264 + AAC files (`rci.media.synth`) written to a temp dir. Decode timings are
`decode_media` end to end on one thread (demux everything, decode the frames picked at 1 fps and
the first 30 s of audio, log-mel included); the worker runs several decodes in parallel.
`--s3` also times fetch and the feature cache against a local S3 server (moto, HTTP on loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
from rich.progress import Progress

from benchmarks.record import markdown_table, publish
from rci.inference.features import FeatureSpec, VideoFeatures
from rci.media.decode import decode_media
from rci.media.fetch import fetch_media
from rci.media.logmel import log_mel_spectrogram
from rci.media.policy import MediaPolicy
from rci.media.synth import write_test_video
from rci.features.cache import FeatureCache
from rci.storage.objects import LocalObjectStore, ObjectStore, S3ObjectStore
from rci.storage.s3 import S3Client, S3Config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="640x360,1280x720", help="comma-separated WIDTHxHEIGHT list")
    parser.add_argument("--duration", type=float, default=10.0, help="clip length in seconds")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--max-frames", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per measurement (median reported)")
    parser.add_argument("--s3", action="store_true", help="also time S3 fetch and the cache on a local S3 server")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    return parser.parse_args()


def median_s(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def amedian_s(fn: Callable[[], Awaitable[object]], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paper_size_features(video_id: str) -> VideoFeatures:
    spec, rng = FeatureSpec(), np.random.default_rng(0)
    return VideoFeatures(
        video_id=video_id,
        encoder_version="bench",
        visual=rng.standard_normal((spec.max_frames, spec.visual_dim)).astype(np.float32),
        visual_mask=np.ones(spec.max_frames, bool),
        audio=rng.standard_normal(spec.audio_dim).astype(np.float32),
        has_audio=True,
        text=rng.standard_normal((spec.text_tokens, spec.text_dim)).astype(np.float32),
        text_mask=np.ones(spec.text_tokens, bool),
        duration_s=32.0,
    )


def bench_decode(args: argparse.Namespace, workdir: Path, policy: MediaPolicy) -> list[list[object]]:
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    rows = []
    with Progress() as progress:
        task = progress.add_task("decoding", total=len(sizes))
        for width, height in sizes:
            clip = write_test_video(workdir / f"{width}x{height}.mp4", args.duration, width, height, args.fps, seed=1)
            seconds = median_s(lambda: decode_media(clip, policy), args.reps)
            decoded = decode_media(clip, policy)
            rows.append([
                f"{width}x{height}", f"{args.duration:g} s @ {args.fps} fps", clip.stat().st_size // 1024,
                int(decoded.frame_mask.sum()), seconds * 1000, args.duration / seconds,
            ])
            progress.advance(task)
    return rows


async def bench_store(name: str, store: ObjectStore, reps: int) -> list[object]:
    cache = FeatureCache(store)
    features = paper_size_features("bench-video")
    blob_kb = len(features.to_bytes()) / 1024
    put_s = await amedian_s(lambda: cache.put(features), reps)
    get_s = await amedian_s(lambda: cache.get("bench-video", "bench"), reps)
    miss_s = await amedian_s(lambda: cache.get("absent-video", "bench"), reps)
    return [name, blob_kb, put_s * 1000, get_s * 1000, miss_s * 1000]


async def bench_s3(args: argparse.Namespace, clip: Path) -> tuple[list[object], list[object]]:
    from rci.services.s3server import S3Server

    with tempfile.TemporaryDirectory() as logs, S3Server(log_path=Path(logs) / "s3.log") as server:
        store = S3ObjectStore(server.endpoint_url, "bench", server.region, server.access_key, server.secret_key)
        await store.ensure_bucket()
        await store.put("media/clip.mp4", clip.read_bytes())
        cache_row = await bench_store("s3 (moto, loopback)", store, args.reps)
        config = S3Config(server.endpoint_url, server.region, server.access_key, server.secret_key)
        async with S3Client(config) as s3:
            policy = MediaPolicy(allowed_prefixes=("s3://bench/media/",))
            fetch_s = await amedian_s(lambda: fetch_media("s3://bench/media/clip.mp4", policy, s3), args.reps)
        await store.close()
    size_mb = clip.stat().st_size / 2**20
    return cache_row, [f"s3 fetch of {clip.name}", size_mb, fetch_s * 1000, size_mb / fetch_s]


async def main_async(args: argparse.Namespace) -> str:
    policy = MediaPolicy(allowed_prefixes=(), max_frames=args.max_frames, max_duration_s=max(600.0, args.duration))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        decode_rows = bench_decode(args, workdir, policy)
        audio = np.random.default_rng(0).standard_normal(30 * 16_000).astype(np.float32) * 0.1
        logmel_ms = median_s(lambda: log_mel_spectrogram(audio), args.reps) * 1000
        cache_rows = [await bench_store("local dir", LocalObjectStore(workdir / "objects"), args.reps)]
        fetch_rows = []
        if args.s3:
            cache_row, fetch_row = await bench_s3(args, next(workdir.glob("*.mp4")))
            cache_rows.append(cache_row)
            fetch_rows.append(fetch_row)

    body = "Decode (`decode_media`, one thread, frames at 1 fps + first 30 s of audio + log-mel):\n\n"
    body += markdown_table(["size", "clip", "file KiB", "frames", "ms / video", "x real time"], decode_rows)
    body += f"\n\nWhisper log-mel front end (numpy, 30 s): {logmel_ms:.1f} ms\n\n"
    body += "Feature cache (paper-size `VideoFeatures`, median of round trips):\n\n"
    body += markdown_table(["store", "blob KiB", "put ms", "get (hit) ms", "get (miss) ms"], cache_rows)
    if fetch_rows:
        body += "\n\n" + markdown_table(["fetch", "MiB", "ms", "MiB/s"], fetch_rows)
    return body


def main() -> None:
    args = parse_args()
    body = asyncio.run(main_async(args))
    publish("Media decode and storage", body, dry_run=args.no_record)


if __name__ == "__main__":
    main()
