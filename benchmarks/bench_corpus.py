"""Corpus generation speed: wall time and CPU per second of generated media.

    python -m benchmarks.bench_corpus                 # 12 sources, 4-12 s clips, 2 workers
    python -m benchmarks.bench_corpus --sources 20 --workers 1
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.record import markdown_table, record
from rci.training.corpus.generate import make_corpus


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-duration", type=float, default=4.0)
    parser.add_argument("--max-duration", type=float, default=12.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="Keep the corpus here (default: a temp dir).")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        out = args.out or Path(tmp)
        cpu0, wall0 = _cpu_s(), time.perf_counter()
        manifest = make_corpus(out, n_sources=args.sources, seed=args.seed, min_duration_s=args.min_duration,
                               max_duration_s=args.max_duration, workers=args.workers, progress=True)
        wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    counts = manifest.counts()
    media_s = counts["media_seconds"]
    rows = [[args.sources, counts["videos"], sum(counts["pairs"].values()), media_s, round(wall, 1), round(cpu, 1),
             round(cpu / media_s, 3), round(media_s / wall, 1), round(counts["media_bytes"] / 2**20, 1)]]
    header = ["sources", "videos", "pairs", "media s", "wall s", "CPU s", "CPU s per media s", "media s per wall s", "MiB"]
    body = (f"{args.workers} render workers, clips {args.min_duration}-{args.max_duration} s, default render config "
            f"(256x256, 10 fps, x264 ultrafast). 1-min load average {load_before:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after: wall time scales with what else shares the cores, CPU s does not.\n\n"
            + markdown_table(header, rows))
    record("Corpus generation (src/rci/training/corpus)", body)


if __name__ == "__main__":
    main()
