"""MatchLM (teacher) cost: FLOPs per pair at paper size, and pairs/s of the tiny model through the teacher.

    python -m benchmarks.bench_matchlm                         # paper-size FLOPs + tiny timing on CPU
    python -m benchmarks.bench_matchlm --batch-sizes 1,4 --iters 3 --device cuda

Paper size (llava-onevision-qwen2-0.5b + whisper-small, full frame budget, 30 s of audio per
video) is built on the meta device: its FLOPs are counted without allocating a weight, so the
figure is available on any machine; paper: 25.4 TFLOPs per inference vs 0.86 for MatchLite.
With --paper-timing (and a GPU) the paper-size model is also timed, with random weights.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.record import markdown_table, publish
from rci.inference.matchlm.config import MatchLMConfig
from rci.inference.matchlm.frames import ImageSpec, tokens_per_frame
from rci.inference.matchlm.loader import load_matchlm
from rci.inference.matchlm.model import MatchLM
from rci.inference.matchlm.processor import MatchLMProcessor, VideoInput
from rci.inference.matchlm.prompt import resolve_special_tokens
from rci.inference.matchlm.shapes import paper_backbone_config, paper_whisper_config
from rci.inference.matchlm.tiny import IMAGE, VIDEO, build_tiny_matchlm, build_tiny_tokenizer

PAPER_TFLOPS = 25.4  # MatchLM per inference, section 5.1


def synthetic_video(rng: np.random.Generator, seconds: int, audio_dim: int | None) -> VideoInput:
    """`seconds` frames at 1 fps and 30 s of log-mel (or Whisper features when audio_dim is given)."""
    frames = rng.integers(0, 256, (seconds, 224, 224, 3), dtype=np.uint8)
    if audio_dim is None:
        return VideoInput(frames, float(seconds), "a title", "sticker", log_mel=rng.normal(size=(80, 3000)).astype(np.float32))
    return VideoInput(frames, float(seconds), "a title", "sticker", audio_features=rng.normal(size=(1500, audio_dim)).astype(np.float32))


def paper_model(config: MatchLMConfig, device: str) -> tuple[MatchLM, MatchLMProcessor]:
    """Random-weight paper-size MatchLM (meta device: shapes only) with a stand-in tokenizer."""
    tokenizer = build_tiny_tokenizer(config)  # prompt length differs from Qwen2's by a few dozen tokens
    backbone_config = paper_backbone_config(tokenizer.convert_tokens_to_ids(IMAGE), tokenizer.convert_tokens_to_ids(VIDEO))
    with torch.device(device):
        from transformers import LlavaOnevisionForConditionalGeneration, WhisperModel

        backbone = LlavaOnevisionForConditionalGeneration(backbone_config)
        encoder = WhisperModel(paper_whisper_config()).get_encoder()
        model = MatchLM(config, backbone, resolve_special_tokens(tokenizer, config, backbone_config.video_token_index), encoder)
    vision = backbone_config.vision_config
    processor = MatchLMProcessor(tokenizer, config, model.tokens, ImageSpec(vision.image_size),
                                 tokens_per_frame(vision.image_size, vision.patch_size))
    return model.eval(), processor


def count_flops(model: MatchLM, processor: MatchLMProcessor, pair: tuple[VideoInput, VideoInput], device: str) -> tuple[int, int]:
    """-> (FLOPs of one pair's forward, its prompt length in tokens)."""
    batch = processor([pair]).to(device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(batch)
    return counter.get_total_flops(), batch.input_ids.shape[1]


def time_teacher(teacher, pairs, batch_size: int, iters: int) -> float:
    teacher.score_pairs(pairs[:batch_size], batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    for _ in range(iters):
        teacher.score_pairs(pairs, batch_size=batch_size)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return len(pairs) * iters / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="1,4", help="comma-separated pairs per forward (tiny timing)")
    parser.add_argument("--pairs", type=int, default=8, help="pairs scored per timing iteration")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--seconds", default="60,20", help="query,candidate lengths in seconds (frames at 1 fps)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--no-record", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    q_s, c_s = (int(s) for s in args.seconds.split(","))
    rows = []
    with Progress() as progress:
        task = progress.add_task("paper-size FLOPs (meta device)", total=None)
        paper = MatchLMConfig()
        model, processor = paper_model(paper, "meta")
        pair = (synthetic_video(rng, q_s, None), synthetic_video(rng, c_s, None))
        flops, tokens = count_flops(model, processor, pair, "meta")
        n_q, n_c = processor.select_frames(*pair)
        rows.append(["paper (0.5B + whisper-small)", f"{len(n_q)}+{len(n_c)} frames, {tokens} tokens",
                     flops / 1e12, "-", PAPER_TFLOPS])
        del model
        progress.update(task, description="tiny build + timing")
        with tempfile.TemporaryDirectory() as tmp:
            teacher = load_matchlm(build_tiny_matchlm(Path(tmp) / "tiny"), device=args.device)
            pairs = [(synthetic_video(rng, q_s, None), synthetic_video(rng, c_s, None)) for _ in range(args.pairs)]
            flops, tokens = count_flops(teacher.model, teacher.processor, pairs[0], args.device)
            for bs in (int(b) for b in args.batch_sizes.split(",")):
                rate = time_teacher(teacher, pairs, bs, args.iters)
                rows.append([f"tiny, batch {bs}, {args.device}", f"{tokens} tokens", flops / 1e12, rate, "-"])
        progress.update(task, completed=1, total=1)
    body = markdown_table(["model", "input", "TFLOPs/pair", "pairs/s", "paper TFLOPs"], rows)
    body += (f"\n\nPairs of {q_s} s and {c_s} s videos with 30 s of audio each; frame budget {paper.frame_budget} "
             "split dynamically. Paper-size FLOPs counted on the meta device (random weights, no timing).")
    publish("MatchLM teacher cost", body, dry_run=args.no_record)


if __name__ == "__main__":
    main()
