"""Feature extraction cost: decode speed (x real time) and frozen-encoder throughput per modality.

    python -m benchmarks.bench_features                                 # small + paper, CPU (+ CUDA if present)
    python -m benchmarks.bench_features --configs small --videos 4 --no-record

Decode: synthetic H.264 + AAC clips (`rci.media.synth`) written to a temp dir, timed through
`decode_media` end to end on one thread (demux everything, decode the frames kept at 1 fps,
resample the first 30 s of audio, Whisper log-mel). "x real time" = media seconds per wall second.

Encoders: one "video" is what the worker encodes per video at the paper's sizes:
* visual: `--frames` (default 32 = RCI_MEDIA_MAX_FRAMES) real 224x224 frames;
* audio: one 30 s clip, Whisper log-mel [80, 3000] (every clip is padded to 30 s, so this is the cost
  of any video with audio);
* text: one title + sticker string that fills all 64 tokens.
Configurations:
* small: Swin 32x113 at 112 px, Whisper d64x2, all-MiniLM-L6-v2 (the bundled default text encoder);
* paper: Swin-T at 224 px, Whisper-small's encoder, MiniLM-L12-H384 with the multilingual model's
  250k vocabulary (random weights: cost does not depend on their values; the tokenizer is the
  bundled one, the sequence is 64 tokens either way).
Each point: one untimed warm-up video, then `--videos` (paper: `--paper-videos`) videos in one
`encode_*` call at the encoder's default batch size, fp32, torch's default thread count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoTokenizer, BertConfig

from benchmarks.record import command_line, markdown_table, publish
from rci.inference.encoders.audio import AudioEncoderConfig, WhisperAudioEncoder, WhisperClipEmbedder
from rci.inference.encoders.base import FrozenEncoder
from rci.inference.encoders.text import (
    TextEncoderConfig,
    TokenEmbedder,
    TransformerTextEncoder,
    default_text_model_dir,
)
from rci.inference.encoders.visual import SwinFrameEmbedder, SwinVisualEncoder, VisualEncoderConfig
from rci.media.decode import decode_media
from rci.media.policy import MediaPolicy
from rci.media.synth import write_test_video

MULTILINGUAL_VOCAB = 250_037  # paraphrase-multilingual-MiniLM-L12-v2 (XLM-R sentencepiece vocabulary)
TEXT = "cooking show rerun with new subtitles and a sticker that says follow for part two " * 4


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="small,paper", help="comma list of: small, paper")
    parser.add_argument("--modalities", default="visual,audio,text", help="comma list of: visual, audio, text")
    parser.add_argument("--videos", type=int, default=8, help="timed videos per point (small config)")
    parser.add_argument("--paper-videos", type=int, default=2, help="timed videos per point (paper config)")
    parser.add_argument("--text-videos", type=int, default=64, help="timed videos per text point (both configs)")
    parser.add_argument("--frames", type=int, default=32, help="visual frames per video")
    parser.add_argument("--sizes", default="640x360,1280x720", help="decode: comma list of WIDTHxHEIGHT")
    parser.add_argument("--duration", type=float, default=10.0, help="decode: clip length in seconds")
    parser.add_argument("--fps", type=int, default=25, help="decode: clip frame rate")
    parser.add_argument("--reps", type=int, default=3, help="decode: timed repetitions (median reported)")
    parser.add_argument("--devices", default="", help="comma list of cpu, cuda; default cpu + cuda if present")
    parser.add_argument("--no-record", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args(argv)
    args.configs = [c for c in args.configs.split(",") if c]
    args.modalities = [m for m in args.modalities.split(",") if m]
    args.devices = [d for d in args.devices.split(",") if d] or (
        ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    )
    unknown = set(args.configs) - {"small", "paper"} | set(args.modalities) - {"visual", "audio", "text"}
    if unknown:
        parser.error(f"unknown configs/modalities: {sorted(unknown)}")
    return args


# ----------------------------------------------------------------------------------------------
# decode


def bench_decode(args: argparse.Namespace, workdir: Path, progress: Progress) -> list[list[object]]:
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",") if size]
    policy = MediaPolicy(allowed_prefixes=(workdir.as_uri() + "/",), max_frames=args.frames)
    task = progress.add_task("decode", total=len(sizes))
    rows = []
    for width, height in sizes:
        clip = write_test_video(workdir / f"{width}x{height}.mp4", args.duration, width, height, args.fps, seed=1)
        decode_media(clip, policy)  # warm-up (page cache, codec init)
        times, cpu_times = [], []
        for _ in range(args.reps):
            start, cpu_start = time.perf_counter(), time.process_time()
            decoded = decode_media(clip, policy)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        seconds, cpu_seconds = statistics.median(times), statistics.median(cpu_times)
        rows.append([
            f"{width}x{height}", f"{args.duration:g} s @ {args.fps} fps, H.264 + AAC",
            int(decoded.frame_mask.sum()), round(seconds * 1000, 1), round(args.duration / seconds, 1),
            round(cpu_seconds * 1000, 1), round(args.duration / cpu_seconds, 1),
        ])
        progress.advance(task)
    return rows


# ----------------------------------------------------------------------------------------------
# encoders


def _seeded(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


def build_encoder(config: str, modality: str, device: str) -> tuple[FrozenEncoder, str]:
    """(encoder, description) for one configuration and modality."""
    if modality == "visual":
        cfg = VisualEncoderConfig.small() if config == "small" else VisualEncoderConfig.paper()
        return SwinVisualEncoder(_seeded(lambda: SwinFrameEmbedder(cfg)), device=device), cfg.tag
    if modality == "audio":
        cfg = AudioEncoderConfig.small() if config == "small" else AudioEncoderConfig.paper()
        return WhisperAudioEncoder(_seeded(lambda: WhisperClipEmbedder(cfg)), device=device), cfg.tag
    if config == "small":
        encoder = TransformerTextEncoder.from_pretrained_dir(default_text_model_dir(), device=device)
        return encoder, "all-MiniLM-L6-v2 (bundled)"
    tokenizer = AutoTokenizer.from_pretrained(default_text_model_dir(), local_files_only=True)
    bert = BertConfig(
        vocab_size=MULTILINGUAL_VOCAB, hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=1536, max_position_embeddings=512,
    )
    backbone = {k: v for k, v in bert.to_dict().items() if k not in ("transformers_version", "dtype", "torch_dtype")}
    text_cfg = TextEncoderConfig(backbone=backbone)
    module = _seeded(lambda: TokenEmbedder(text_cfg))
    return TransformerTextEncoder(module, tokenizer, device=device), "MiniLM-L12-H384 multilingual shape"


def video_inputs(modality: str, n: int, frames: int) -> object:
    rng = np.random.default_rng(0)
    if modality == "visual":
        return rng.integers(0, 256, (n * frames, 224, 224, 3), dtype=np.uint8)  # n videos x frames
    if modality == "audio":
        return rng.normal(size=(n, 80, 3000)).astype(np.float32)  # one 30 s log-mel per video
    return [f"{i} {TEXT}" for i in range(n)]


def run_encoder(encoder: FrozenEncoder, modality: str, inputs: object) -> None:
    if modality == "visual":
        encoder.encode_frames(inputs)
    elif modality == "audio":
        encoder.encode_log_mel(inputs)
    else:
        encoder.encode_texts(inputs)
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()


def gflops_per_video(encoder: FrozenEncoder, modality: str, frames: int) -> float:
    """Forward FLOPs of one video (visual: one frame x frames; text: the 64 tokens of one string)."""
    one = video_inputs(modality, 1, 1 if modality == "visual" else frames)
    counter = FlopCounterMode(display=False)
    with counter:
        run_encoder(encoder, modality, one)
    return counter.get_total_flops() * (frames if modality == "visual" else 1) / 1e9


def bench_encoders(args: argparse.Namespace, progress: Progress) -> list[list[object]]:
    points = [(c, m, d) for c in args.configs for m in args.modalities for d in args.devices]
    task = progress.add_task("encoders", total=len(points))
    rows = []
    for config, modality, device in points:
        encoder, name = build_encoder(config, modality, device)
        params = sum(p.numel() for p in encoder.module.parameters())
        n = args.text_videos if modality == "text" else (args.paper_videos if config == "paper" else args.videos)
        gflops = gflops_per_video(encoder, modality, args.frames)
        run_encoder(encoder, modality, video_inputs(modality, 1, args.frames))  # warm-up
        inputs = video_inputs(modality, n, args.frames)
        start, cpu_start = time.perf_counter(), time.process_time()
        run_encoder(encoder, modality, inputs)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        rows.append([
            config, modality, name, device, round(params / 1e6, 1), round(gflops, 2), n,
            round(n / seconds, 2), round(1000 * seconds / n, 1), round(gflops * n / seconds, 1),
            round(cpu_seconds / n, 3),
        ])
        progress.advance(task)
        del encoder
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, Progress() as progress:
        decode_rows = bench_decode(args, Path(tmp), progress)
        encoder_rows = bench_encoders(args, progress)
    note = (
        f"One video = {args.frames} frames of 224x224 (visual), one 30 s log-mel (audio), one 64-token text. "
        "GFLOPs counted with torch.utils.flop_counter.FlopCounterMode on one video's forward pass. "
        f"torch intra-op threads: {torch.get_num_threads()}. Decoding is single-threaded by design "
        "(the worker decodes several videos in parallel). Wall-clock rates (x real time, videos/s) depend "
        "on what else the machine runs; the CPU columns (process CPU time, all threads) depend on it less. "
        f"1-minute load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores (other processes share this machine: treat CPU rates as lower bounds)."
    )
    body = "\n\n".join([
        markdown_table(
            ["clip", "content", "frames kept", "ms / decode", "x real time", "CPU ms / decode",
             "x real time per CPU s"],
            decode_rows,
        ),
        markdown_table(
            ["config", "modality", "encoder", "device", "M params", "GFLOPs / video", "videos timed",
             "videos/s", "ms / video", "GFLOP/s", "CPU s / video"],
            encoder_rows,
        ),
        note,
    ])
    publish("Features: decode speed and encoder throughput per modality", body, dry_run=args.no_record,
            command=command_line("benchmarks.bench_features", argv))


if __name__ == "__main__":
    main()
