"""Cost per pair of the student MatchLite and the teacher MatchLMF (the paper's Table 3): FLOPs, CPU ms,
and CUDA ms where a GPU is present.

    python -m benchmarks.bench_cost sample --model-dir .rci/models    # 16 held-out pairs as both models' inputs
    python -m benchmarks.bench_cost measure --model-dir .rci/models   # CPU, and CUDA when present; recorded

`sample` needs the whole project (media, encoders, the bench pools' set seed 0, as bench_teacher builds it)
and writes `cost-sample.pt` into the model dir. `measure` needs only torch, the two checkpoints
(matchlite/model.pt, matchlmf/model.pt) and that file, so it also runs on a GPU host without the media stack.
Cost depends on shapes, not content: larger batches repeat the sample. Each timing is the mean of
`--repeats` forward passes after three warm-ups (on CUDA, synchronised before the clock stops).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.record import RESULTS_FILE, markdown_table, publish

SAMPLE = "cost-sample.pt"
SAMPLE_PAIRS = 16
WARMUP = 3
Inputs = dict[str, torch.Tensor]


def gflops_per_pair(forward: Callable[[Inputs], object], inputs: Inputs) -> float:
    """FLOPs of one forward pass as torch counts them, per pair of the batch."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        forward(inputs)
    return counter.get_total_flops() / pairs_in(inputs) / 1e9


def ms_per_pair(forward: Callable[[Inputs], object], inputs: Inputs, repeats: int) -> float:
    """Wall-clock ms per pair of `forward(inputs)` on the inputs' device, after WARMUP passes."""
    cuda = next(iter(inputs.values())).is_cuda
    with torch.inference_mode():
        for _ in range(WARMUP):
            forward(inputs)
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            forward(inputs)
        if cuda:
            torch.cuda.synchronize()  # kernels run asynchronously: the clock stops when they are done
    return (time.perf_counter() - started) * 1000 / repeats / pairs_in(inputs)


def cost_per_pair(forward: Callable[[Inputs], object], inputs: Inputs, repeats: int = 5) -> tuple[float, float]:
    """(GFLOPs per pair, ms per pair) of `forward(inputs)` on the inputs' device."""
    return gflops_per_pair(forward, inputs), ms_per_pair(forward, inputs, repeats)


def pairs_in(inputs: Inputs) -> int:
    return int(next(iter(inputs.values())).shape[0])


def repeated(inputs: Inputs, batch: int, device: str) -> Inputs:
    """The sample tiled along the batch dimension to `batch` pairs, on `device`."""
    times = -(-batch // pairs_in(inputs))
    return {k: v.repeat(times, *([1] * (v.dim() - 1)))[:batch].to(device) for k, v in inputs.items()}


# ---------------------------------------------------------------------------------------------- sample


def save_sample(model_dir: Path) -> Path:
    """SAMPLE_PAIRS served pairs of the bench pools' set (seed 0) as the student's and the teacher's inputs."""
    from dataclasses import asdict

    from benchmarks.bench_teacher import heldout
    from rci.core.settings import Settings
    from rci.inference.matchlmf.loader import load_matchlmf
    from rci.media.policy import media_policy
    from rci.training.data import collate_batch
    from rci.training.matchlmf import MatchLMFCollate
    from rci.training.serving import ServingRecipe, serving_extractor

    recipe = ServingRecipe()
    extractor = serving_extractor(model_dir, recipe)
    test, _ = heldout(model_dir, extractor, media_policy(Settings()), [0], "default", modality_sources=0)
    teacher, _ = load_matchlmf(model_dir / "matchlmf" / "model.pt")
    items = [test[i] for i in range(min(SAMPLE_PAIRS, len(test)))]
    sample = {"student": collate_batch(items).inputs, "teacher": asdict(MatchLMFCollate(teacher.config)(items).inputs)}
    path = model_dir / SAMPLE
    torch.save(sample, path)
    return path


# --------------------------------------------------------------------------------------------- measure


def load_models(model_dir: Path) -> dict[str, tuple[torch.nn.Module, Callable[[Inputs], object]]]:
    """name -> (model, forward from the sample's input dict)."""
    from rci.inference.checkpoint import load_checkpoint
    from rci.inference.matchlmf.batch import MatchLMFBatch
    from rci.inference.matchlmf.loader import load_matchlmf

    student, _ = load_checkpoint(model_dir / "matchlite" / "model.pt")
    teacher, _ = load_matchlmf(model_dir / "matchlmf" / "model.pt")
    return {"MatchLite (student)": (student.eval(), student),
            "MatchLMF (teacher)": (teacher, lambda inputs: teacher(MatchLMFBatch(**inputs)))}  # fmt: skip


def measure(model_dir: Path, batches: list[int], repeats: int) -> tuple[list[str], list[list[object]]]:
    sample = torch.load(model_dir / SAMPLE, weights_only=True)
    cuda = torch.cuda.is_available()
    header = ["model", "parameters (M)", "GFLOPs / pair", f"CPU ms / pair (batch {SAMPLE_PAIRS})"]
    header += [f"CUDA ms / pair (batch {b})" for b in batches] if cuda else []
    rows = []
    for (name, (model, forward)), inputs in zip(load_models(model_dir).items(), (sample["student"], sample["teacher"])):
        row: list[object] = [name, f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}",
                             f"{gflops_per_pair(forward, inputs):.3f}", f"{ms_per_pair(forward, inputs, repeats):.2f}"]  # fmt: skip
        if cuda:
            model.to("cuda")
            row += [f"{ms_per_pair(forward, repeated(inputs, b, 'cuda'), repeats):.4f}" for b in batches]
            model.to("cpu")
        rows.append(row)
    return header, rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=("sample", "measure"))
    p.add_argument("--model-dir", type=Path, default=Path(".rci/models"), help="serving models with a teacher installed")
    p.add_argument("--batches", type=int, nargs="+", default=[16, 256], help="CUDA batch sizes (pairs)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--results", type=Path, default=RESULTS_FILE, help="where the measurement is recorded")
    p.add_argument("--no-record", action="store_true", help="print only")
    args = p.parse_args()
    if args.step == "sample":
        print(f"wrote {save_sample(args.model_dir)}")
        return
    header, rows = measure(args.model_dir, args.batches, args.repeats)
    body = (f"{SAMPLE_PAIRS} served pairs of the bench pools' set (seed 0), the models in `{args.model_dir}`; "
            f"fp32, torch, one process; mean of {args.repeats} passes after {WARMUP} warm-ups.\n\n"
            + markdown_table(header, rows))  # fmt: skip
    publish("Cost per pair: MatchLite vs the teacher MatchLMF (benchmarks.bench_cost)", body, dry_run=args.no_record,
            path=args.results)


if __name__ == "__main__":
    main()
