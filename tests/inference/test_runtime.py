"""Batched scorers: collation, ONNX Runtime vs torch, validation, evidence, the factory."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
from rci.inference.checkpoint import load_checkpoint
from rci.inference.matchlite import INPUT_NAMES
from rci.inference.onnx_export import export_onnx
from rci.inference.runtime import (
    InvalidFeatures,
    OnnxPairScorer,
    TorchPairScorer,
    collate_pairs,
    cuda_available,
    make_scorer,
)
from tests.inference.matchlite_fakes import make_features, small_checkpoint, small_model, trimmed_copy
from rci.core.errors import ConfigError


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime")
    checkpoint = small_checkpoint(root / "m.pt", seed=4)
    model, _ = load_checkpoint(checkpoint)
    onnx_path = export_onnx(model, root / "m.onnx", meta={"model_version": "test-small", "threshold": 0.6})
    return checkpoint, onnx_path


@pytest.fixture(scope="module")
def onnx_scorer(artifacts):
    return OnnxPairScorer(artifacts[1], device="cpu", intra_op_threads=1)


@pytest.fixture(scope="module")
def torch_scorer(artifacts):
    return TorchPairScorer(artifacts[0], device="cpu")


def mixed_pairs():
    base = make_features("base", 1, frames=12)
    return [
        (trimmed_copy(base, 3, 9, seed=2), base),
        (make_features("a", 3, frames=4, audio=False), make_features("b", 4, frames=20, tokens=0)),
        (make_features("c", 5, frames=32, tokens=64), make_features("d", 6, frames=1)),
    ]


def test_collate_trims_to_the_longest_real_lengths():
    pairs = [(make_features("q", 1, frames=3, tokens=5), make_features("c", 2, frames=7, tokens=0)),
             (make_features("q2", 3, frames=6, tokens=2), make_features("c2", 4, frames=2, tokens=0))]  # fmt: skip
    batch = collate_pairs(pairs)
    assert list(batch) == list(INPUT_NAMES)
    assert batch["q_visual"].shape == (2, 6, 128) and batch["c_visual"].shape == (2, 7, 128)
    assert batch["q_text"].shape == (2, 5, 384) and batch["c_text"].shape == (2, 1, 384)  # no text: one masked token
    assert batch["q_visual_mask"].sum(1).tolist() == [3, 6] and not batch["c_text_mask"].any()
    assert batch["q_visual"].dtype == np.float32 and batch["q_visual_mask"].dtype == bool


def test_onnx_and_torch_scorers_agree(onnx_scorer, torch_scorer):
    pairs = mixed_pairs()
    a, b = onnx_scorer.score_batch(pairs), torch_scorer.score_batch(pairs)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b, strict=True):
        assert abs(x.score - y.score) <= 1e-4
        assert np.abs(x.embedding - y.embedding).max() <= 1e-4
        assert x.matched_segments == y.matched_segments


def test_metadata_reaches_both_scorers(onnx_scorer, torch_scorer):
    for scorer in (onnx_scorer, torch_scorer):
        assert (scorer.model_version, scorer.threshold, scorer.device) == ("test-small", 0.6, "cpu")
        assert scorer.config.resnet_layers == (1, 1, 1, 1)


def test_batch_scores_equal_single_scores(onnx_scorer):
    pairs = mixed_pairs()
    batched = [r.score for r in onnx_scorer.score_batch(pairs)]
    alone = [onnx_scorer.score_batch([p])[0].score for p in pairs]
    np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)


def test_identical_vs_unrelated_and_missing_modalities(onnx_scorer):
    query = make_features("q", 1)
    no_audio, no_text = replace(query, has_audio=False, audio=query.audio * 0), make_features("t", 1, tokens=0)
    bare = make_features("bare", 1, tokens=0, audio=False)
    audio_only = make_features("audio-only", 2, frames=0, tokens=0)  # no frames: the model's prior, finite
    results = onnx_scorer.score_batch(
        [(query, query), (query, make_features("x", 9)), (no_audio, no_audio), (no_text, no_text), (bare, bare),
         (audio_only, query)]
    )  # fmt: skip
    scores = [r.score for r in results]
    assert all(np.isfinite(scores)) and all(0.0 <= s <= 1.0 for s in scores)
    assert abs(scores[0] - scores[1]) > 1e-4
    assert results[-1].matched_segments == []


def test_trimmed_copy_reports_its_segment(onnx_scorer):
    """S^v is the cosine of the input frames, so evidence is meaningful even with random weights."""
    source = make_features("src", 1, frames=20)
    copy = trimmed_copy(source, 5, 15, seed=2)  # the copy's seconds 0..10 are the source's 5..15
    [result] = onnx_scorer.score_batch([(copy, source)])
    assert result.matched_segments == [[0.0, 10.0, 5.0, 15.0]]
    [unrelated] = onnx_scorer.score_batch([(copy, make_features("x", 8, frames=20))])
    assert unrelated.matched_segments == []


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda f: replace(f, visual=f.visual[:, :64]), "visual"),
        (lambda f: replace(f, audio=np.zeros(512, np.float32)), "audio"),
        (lambda f: replace(f, text=f.text[:, :10]), "text"),
        (lambda f: replace(f, visual_mask=f.visual_mask[:5]), "visual_mask"),
        (lambda f: replace(f, visual=np.full_like(f.visual, np.nan)), "NaN"),
        (lambda f: replace(f, audio=np.full_like(f.audio, np.inf)), "NaN or infinite"),
        (lambda f: replace(f, visual=np.zeros((40, 128), np.float32), visual_mask=np.ones(40, bool)), r"1\.\.32"),
    ],
)
def test_check_pair_rejects_bad_features(onnx_scorer, change, message):
    good = make_features("good", 1)
    bad = change(make_features("bad", 2))
    with pytest.raises(InvalidFeatures, match=message):
        onnx_scorer.check_pair(good, bad)
    onnx_scorer.check_pair(good, good)  # the good one passes


def test_factory_and_configuration_errors(artifacts):
    checkpoint, onnx_path = artifacts
    assert isinstance(make_scorer("onnx", onnx_path, device="cpu"), OnnxPairScorer)
    assert isinstance(make_scorer("torch", checkpoint, device="cpu"), TorchPairScorer)
    with pytest.raises(ConfigError, match="unknown runtime"):
        make_scorer("tensorrt", onnx_path)
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        TorchPairScorer(checkpoint, device="cpu", dtype="fp16")
    if not cuda_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            OnnxPairScorer(onnx_path, device="cuda")


def test_auto_device_without_gpu_uses_cpu(artifacts):
    if cuda_available():
        pytest.skip("a GPU is present")
    assert OnnxPairScorer(artifacts[1], device="auto").device == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CUDA")
def test_the_torch_scorer_on_cuda_matches_the_cpu(artifacts, onnx_scorer):
    pairs = mixed_pairs()
    cpu = [r.score for r in onnx_scorer.score_batch(pairs)]
    fp32 = TorchPairScorer(artifacts[0], device="cuda")
    assert fp32.device == "cuda"
    np.testing.assert_allclose([r.score for r in fp32.score_batch(pairs)], cpu, atol=1e-4)
    half = TorchPairScorer(artifacts[0], device="cuda", dtype="fp16")
    np.testing.assert_allclose([r.score for r in half.score_batch(pairs)], cpu, atol=2e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CUDA")
@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="ONNX Runtime without its CUDA provider (onnxruntime-gpu: the gpu extra)")
def test_the_onnx_scorer_on_cuda_matches_the_cpu(artifacts, onnx_scorer):
    pairs = mixed_pairs()
    cpu = [r.score for r in onnx_scorer.score_batch(pairs)]
    gpu = OnnxPairScorer(artifacts[1], device="cuda")
    assert gpu.device == "cuda"
    np.testing.assert_allclose([r.score for r in gpu.score_batch(pairs)], cpu, atol=1e-4)
    fp16_path = export_onnx(small_model(seed=4), artifacts[1].with_name("m16.onnx"), fp16=True)
    fp16 = OnnxPairScorer(fp16_path, device="cuda").score_batch(pairs)
    np.testing.assert_allclose([r.score for r in fp16], cpu, atol=2e-2)
