"""benchmarks.bench_cost: FLOPs and time per pair of both models, from checkpoints and a saved sample."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from benchmarks import bench_cost
from rci.inference.matchlmf.batch import MatchLMFBatch, build_batch
from rci.inference.matchlmf.loader import save_matchlmf
from rci.inference.matchlmf.model import MatchLMF
from rci.inference.runtime import collate_pairs
from tests.inference.matchlite_fakes import make_features, small_checkpoint
from tests.inference.matchlmf.matchlmf_inputs import CONFIG, make_video


def _teacher_inputs(pairs: int) -> dict[str, torch.Tensor]:
    videos = [(make_video(f"q{i}", i, audio_s=2.0), make_video(f"c{i}", 50 + i)) for i in range(pairs)]
    return asdict(build_batch(videos, CONFIG))


def test_the_cost_per_pair_counts_the_forward_passes_flops():
    torch.manual_seed(0)
    model = MatchLMF(CONFIG).eval()
    gflops, ms = bench_cost.cost_per_pair(lambda inputs: model(MatchLMFBatch(**inputs)), _teacher_inputs(4), repeats=2)
    per_layer = 2 * CONFIG.d_model * CONFIG.d_model * 3  # the qkv projection alone, per token
    assert gflops * 1e9 > per_layer  # at least one layer's projection of one token
    assert ms > 0


def test_a_larger_batch_repeats_the_sample_in_order():
    sample = {"x": torch.arange(6).reshape(3, 2), "mask": torch.tensor([True, False, True])}
    tiled = bench_cost.repeated(sample, 7, "cpu")
    assert tiled["x"].shape == (7, 2) and tiled["mask"].shape == (7,)
    assert tiled["x"][:, 0].tolist() == [0, 2, 4, 0, 2, 4, 0]
    assert tiled["mask"].tolist() == [True, False, True, True, False, True, True]


def test_measure_reads_both_checkpoints_and_the_sample(tmp_path):
    small_checkpoint(tmp_path / "matchlite" / "model.pt")
    torch.manual_seed(0)
    save_matchlmf(tmp_path / "matchlmf" / "model.pt", MatchLMF(CONFIG).eval())
    student = collate_pairs([(make_features(f"q{i}", i), make_features(f"c{i}", 9 + i)) for i in range(3)])
    torch.save({"student": {k: torch.from_numpy(np.asarray(v)) for k, v in student.items()},
                "teacher": _teacher_inputs(3)}, tmp_path / bench_cost.SAMPLE)  # fmt: skip
    header, rows = bench_cost.measure(tmp_path, batches=[4], repeats=1)
    assert header[:4] == ["model", "parameters (M)", "GFLOPs / pair", f"CPU ms / pair (batch {bench_cost.SAMPLE_PAIRS})"]
    assert [row[0] for row in rows] == ["MatchLite (student)", "MatchLMF (teacher)"]
    assert all(len(row) == len(header) for row in rows)
    student_gflops, teacher_gflops = (float(row[2]) for row in rows)
    assert teacher_gflops > 0 and student_gflops > 0


def test_the_sample_is_the_bench_sets_served_pairs_alone(tmp_path, monkeypatch):
    """save_sample asks bench_teacher.heldout for seed 0's served pairs and no modality set, in a call that
    fits heldout's signature (the real heldout is replaced by one with the same signature that stops there)."""
    from unittest import mock

    from benchmarks import bench_teacher
    from rci.media.policy import MediaPolicy
    from rci.training import serving

    class Reached(Exception):
        pass

    heldout = mock.create_autospec(bench_teacher.heldout, side_effect=Reached)
    monkeypatch.setattr(bench_teacher, "heldout", heldout)
    monkeypatch.setattr(serving, "serving_extractor", lambda model_dir, recipe: None)
    try:
        bench_cost.save_sample(tmp_path)
    except Reached:
        pass
    (model_dir, _extractor, policy, seeds, size), kwargs = heldout.call_args
    assert model_dir == tmp_path and isinstance(policy, MediaPolicy)
    assert (seeds, size, kwargs) == ([0], "default", {"modality_sources": 0})
