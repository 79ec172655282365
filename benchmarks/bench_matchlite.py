"""MatchLite cost: parameters, FLOPs per pair, and pairs/s through the batched scorers.

    python -m benchmarks.bench_matchlite                      # small + paper config, CPU, torch + onnx
    python -m benchmarks.bench_matchlite --configs small --batch-sizes 1,8 --iters 5

Pairs are synthetic full-length videos (M = N = 32 frames, 64 text tokens, audio), the worst case
for the M x N grid. Timings are end to end through `PairScorer.score_batch`: collation, the
model, and evidence extraction. Random weights: cost does not depend on their values.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.record import command_line, markdown_table, publish
from rci.inference.checkpoint import save_checkpoint
from rci.inference.features import FeatureSpec, VideoFeatures
from rci.inference.matchlite import MatchLite, MatchLiteConfig, count_parameters
from rci.inference.onnx_export import example_inputs, export_onnx
from rci.inference.runtime import OnnxPairScorer, PairScorer, TorchPairScorer, cuda_available

CONFIGS = {"small": MatchLiteConfig.small, "paper": MatchLiteConfig.paper}
PAPER_TFLOPS = 0.86  # per inference, section 5.1; includes the feature extractors
# Extractor costs measured for DESIGN.md (GFLOPs): Swin-T per 224px frame, Whisper-small per 30 s clip.
SWIN_T_GFLOPS_PER_FRAME, WHISPER_SMALL_GFLOPS = 8.7, 261.0
MINILM_L12_PARAMS = 21e6  # non-embedding parameters: ~2 FLOPs per parameter per token


def synthetic_video(video_id: str, rng: np.random.Generator, spec: FeatureSpec) -> VideoFeatures:
    return VideoFeatures(
        video_id=video_id,
        encoder_version="bench",
        visual=rng.normal(size=(spec.max_frames, spec.visual_dim)).astype(np.float32),
        visual_mask=np.ones(spec.max_frames, bool),
        audio=rng.normal(size=spec.audio_dim).astype(np.float32),
        has_audio=True,
        text=rng.normal(size=(spec.text_tokens, spec.text_dim)).astype(np.float32),
        text_mask=np.ones(spec.text_tokens, bool),
        duration_s=float(spec.max_frames),
    )


def flops_per_pair(model: MatchLite, frames: int, tokens: int) -> int:
    inputs = example_inputs(model.config, batch=1, frames=(frames, frames), tokens=(tokens, tokens))
    for side in ("q", "c"):  # every frame and token real: the full-grid cost
        inputs[f"{side}_visual_mask"][:] = True
        inputs[f"{side}_text_mask"][:] = True
        inputs[f"{side}_has_audio"][:] = True
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model({k: torch.from_numpy(v) for k, v in inputs.items()})
    return counter.get_total_flops()


def extractor_gflops(frames: int, tokens: int) -> float:
    """Encoding one video at paper sizes (the part of the paper's 0.86 TFLOPs MatchLite does not see)."""
    return frames * SWIN_T_GFLOPS_PER_FRAME + WHISPER_SMALL_GFLOPS + 2 * MINILM_L12_PARAMS * tokens / 1e9


def pairs_per_second(scorer: PairScorer, pairs: list, warmup: int, iters: int) -> tuple[float, float]:
    """-> (pairs/s, ms per batch) over `iters` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        scorer.score_batch(pairs)
    start = time.perf_counter()
    for _ in range(iters):
        scorer.score_batch(pairs)
    elapsed = time.perf_counter() - start
    return len(pairs) * iters / elapsed, 1000 * elapsed / iters


def build_scorers(
    checkpoint: Path, onnx_path: Path, runtimes: list[str], threads: int
) -> list[tuple[str, str, PairScorer]]:
    """(runtime, device, scorer) for every runtime on CPU, and on CUDA when a GPU is present."""
    devices = ["cpu", "cuda"] if cuda_available() else ["cpu"]
    scorers = []
    for device in devices:
        if "torch" in runtimes:
            dtype = "fp16" if device == "cuda" else "fp32"
            scorers.append((f"torch {dtype}", device, TorchPairScorer(checkpoint, device=device, dtype=dtype)))
        if "onnx" in runtimes:
            scorers.append(("onnxruntime fp32", device, OnnxPairScorer(onnx_path, device, intra_op_threads=threads)))
    return scorers


def bench_config(name: str, args: argparse.Namespace, workdir: Path, progress: Progress) -> tuple[list, list]:
    torch.manual_seed(0)
    model = MatchLite(CONFIGS[name]()).eval()
    flops = flops_per_pair(model, args.frames, args.tokens)
    summary = [name, count_parameters(model), round(flops / 1e9, 3)]
    checkpoint = workdir / f"{name}.pt"
    meta = save_checkpoint(checkpoint, model, {"model_version": f"bench-{name}"})
    onnx_path = export_onnx(model, workdir / f"{name}.onnx", meta=meta)

    rng = np.random.default_rng(0)
    spec = FeatureSpec(max_frames=args.frames, text_tokens=args.tokens)
    videos = [synthetic_video(f"v{i}", rng, spec) for i in range(2 * max(args.batch_sizes))]
    rows = []
    scorers = build_scorers(checkpoint, onnx_path, args.runtimes, args.threads)
    task = progress.add_task(f"{name} config", total=len(scorers) * len(args.batch_sizes))
    for runtime, device, scorer in scorers:
        for batch in args.batch_sizes:
            pairs = list(zip(videos[:batch], videos[batch : 2 * batch], strict=True))
            iters = args.paper_iters if name == "paper" else args.iters
            rate, ms = pairs_per_second(scorer, pairs, args.warmup, iters)
            rows.append([name, runtime, device, batch, round(rate, 1), round(ms, 2), round(rate * flops / 1e9, 2)])
            progress.advance(task)
    return summary, rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="small,paper", help="comma list of: small, paper")
    parser.add_argument("--runtimes", default="torch,onnx", help="comma list of: torch, onnx")
    parser.add_argument("--batch-sizes", default="1,8,32,64", help="comma list of batch sizes")
    parser.add_argument("--frames", type=int, default=32, help="frames per video (M = N)")
    parser.add_argument("--tokens", type=int, default=64, help="text tokens per video")
    parser.add_argument("--iters", type=int, default=5, help="timed batches per point (small config)")
    parser.add_argument("--paper-iters", type=int, default=2, help="timed batches per point (paper config)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches first")
    parser.add_argument("--threads", type=int, default=0, help="torch / onnxruntime intra-op threads (0 = default)")
    parser.add_argument("--no-record", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args(argv)
    args.configs = [c for c in args.configs.split(",") if c]
    args.runtimes = [r for r in args.runtimes.split(",") if r]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    unknown = set(args.configs) - set(CONFIGS) | set(args.runtimes) - {"torch", "onnx"}
    if unknown:
        parser.error(f"unknown configs/runtimes: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    if args.threads:
        torch.set_num_threads(args.threads)
    summaries, rows = [], []
    with tempfile.TemporaryDirectory() as tmp, Progress() as progress:
        for name in args.configs:
            summary, config_rows = bench_config(name, args, Path(tmp), progress)
            summaries.append(summary)
            rows += config_rows

    encode = extractor_gflops(args.frames, args.tokens)
    note = (
        f"FLOPs counted with torch.utils.flop_counter.FlopCounterMode for one pair at M = N = {args.frames} frames, "
        f"{args.tokens} text tokens (features in, score out). The paper's {PAPER_TFLOPS} TFLOPs per inference "
        f"includes the frozen extractors: encoding one video at these sizes costs ~{encode:.0f} GFLOPs "
        f"({args.frames} x {SWIN_T_GFLOPS_PER_FRAME} Swin-T frames + {WHISPER_SMALL_GFLOPS:.0f} Whisper-small"
        " + MiniLM), "
        f"~{2 * encode / 1000:.2f} TFLOPs for both videos of a pair, so the MatchLite head itself is a small fraction; "
        "with the feature cache only the new (query) video is encoded online. "
        f"1-minute load average before / after the run: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores (other processes share this machine: treat CPU rates as lower bounds)."
    )
    body = "\n\n".join(
        [
            markdown_table(["config", "inference params", "GFLOPs / pair"], summaries),
            markdown_table(["config", "runtime", "device", "batch", "pairs/s", "ms / batch", "GFLOP/s"], rows),
            note,
        ]
    )
    publish("MatchLite: FLOPs and batched scoring throughput", body, dry_run=args.no_record,
            command=command_line("benchmarks.bench_matchlite", argv))


if __name__ == "__main__":
    main()
