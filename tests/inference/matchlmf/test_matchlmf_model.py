"""MatchLMF forward: shapes, padding invariance, the pair biases at work, empty sides."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from tests.inference.matchlmf.matchlmf_inputs import CONFIG, make_video, noisy_copy

from rci.inference.matchlmf.batch import build_batch
from rci.inference.matchlmf.model import MatchLMF


def tiny_model(seed: int = 0) -> MatchLMF:
    torch.manual_seed(seed)
    return MatchLMF(CONFIG).eval()


@torch.no_grad()
def test_output_shapes():
    pairs = [(make_video(f"q{i}", i, audio_s=2.0), make_video(f"c{i}", 10 + i, audio_s=3.0)) for i in range(3)]
    out = tiny_model()(build_batch(pairs, CONFIG))
    assert out.logits.shape == (3, 2) and out.embedding.shape == (3, CONFIG.embedding_dim)
    assert set(out.aux_logits) == {"visual", "audio", "text"}
    assert all(v.shape == (3, 2) for v in out.aux_logits.values())
    assert ((out.score >= 0) & (out.score <= 1)).all()


@torch.no_grad()
def test_a_pair_scores_the_same_alone_and_in_a_padded_batch():
    model = tiny_model(1)
    query = make_video("q", 1, frames=3, tokens=2, audio_s=2.0)
    pair = (query, noisy_copy(query, 2))
    longer = (make_video("l", 3, frames=7, tokens=5, audio_s=5.0), make_video("m", 4, frames=6, audio_s=4.0))
    alone = model(build_batch([pair], CONFIG))
    batch = build_batch([longer, pair], CONFIG)
    assert not batch.q_visual_mask[1].all() and not batch.q_audio_mask[1].all()  # the pair really is padded
    padded = model(batch)
    torch.testing.assert_close(padded.logits[1], alone.logits[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(padded.embedding[1], alone.embedding[0], atol=1e-5, rtol=0)


@torch.no_grad()
def test_the_candidate_changes_the_score():
    model = tiny_model(2)
    query = make_video("q", 5, audio_s=3.0)
    copy, other = noisy_copy(query, 6), make_video("other", 7, audio_s=3.0)
    logits = model(build_batch([(query, copy), (query, other)], CONFIG)).logits
    assert (logits[0] - logits[1]).abs().max() > 1e-3


def basis_video(video_id: str, first: int, frames: int = 4):
    """Frames whose every view is a distinct basis vector: cosines are exactly 1 (same frame) or 0."""
    rows = np.zeros((frames, CONFIG.visual_dim), np.float32)
    for i in range(frames):
        for view in range(CONFIG.visual_views):
            rows[i, view * CONFIG.view_dim + first + i] = 1.0
    return make_video(video_id, 0, visual=rows, tokens=0)


@torch.no_grad()
def wire_similarity_probe(model: MatchLMF, bias: float) -> None:
    """Hand-set weights whose reproduced logit reads how much the query's frames attend to candidate
    tokens, so that only the frame-similarity bias can tell an identical pair from an unrelated one.

    Frame contents never enter the tokens (their projection is zero): tokens are the side markers only
    (residual dims: 0 = candidate, 1 = query, 2 = CLS). Layer 0 has q = k = 0, so a query frame's
    attention is the bias alone: on its own copy in the candidate (S_v = 1) when the bias is large,
    uniform over all tokens for an unrelated pair (S_v = 0); its value is the candidate marker, written
    to dim 3. Layer 1: CLS attends to the query's tokens and copies their dim 3 into dim 5, which the
    embedding and the reproduced logit read.
    """
    d = model.config.d_model
    for p in model.parameters():
        p.zero_()
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.weight.fill_(1.0)
    model.side.weight[1, 0], model.side.weight[0, 1], model.cls[0, 0, 2] = 4.0, 4.0, 4.0
    first, second = model.blocks[0].attn, model.blocks[1].attn
    first.qkv.weight[2 * d + 0, 0] = 1.0  # head 0 value: candidate marker
    first.out.weight[3, 0] = 0.1  # small, so LayerNorm stays near-linear in it
    second.qkv.weight[0, 2] = 1.0  # head 0 query: the CLS marker
    second.qkv.weight[d + 0, 1] = 1.0  # head 0 key: the query marker
    second.qkv.weight[2 * d + 0, 3] = 1.0  # head 0 value: what layer 0 wrote
    second.out.weight[5, 0] = 1.0
    model.embed.weight[0, 5] = 1.0
    model.head.weight[1, 0] = 1.0  # reproduced logit = LN(CLS)[5]
    for block in model.blocks:
        block.attn.map_weight[0] = bias  # visual map, every head


@torch.no_grad()
def test_the_frame_similarity_bias_lets_identical_videos_outscore_unrelated_ones():
    model = tiny_model(3)
    query, unrelated = basis_video("q", 0), basis_video("u", 8)
    batch = build_batch([(query, query), (query, unrelated)], CONFIG)
    wire_similarity_probe(model, bias=20.0)
    identical, other = model(batch).logits[:, 1].tolist()
    assert identical > other + 0.2
    wire_similarity_probe(model, bias=0.0)  # the same weights without the bias cannot tell them apart
    assert torch.allclose(*model(batch).logits[:, 1], atol=1e-6)  # type: ignore[call-arg]


@torch.no_grad()
def test_sides_without_frames_give_finite_outputs():
    model = tiny_model(4)
    audio_only = make_video("a", 8, frames=0, tokens=2, audio_s=3.0)
    nothing = make_video("n", 9, frames=0, tokens=0)
    pairs = [(audio_only, make_video("c", 10, audio_s=2.0)), (make_video("q", 11), audio_only), (nothing, nothing)]
    out = model(build_batch(pairs, CONFIG))
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.embedding).all()


def test_the_biases_learn():
    model = tiny_model(5).train()
    query = make_video("q", 12, audio_s=3.0)
    out = model(build_batch([(query, noisy_copy(query, 13))], CONFIG))
    out.logits[:, 1].sum().backward()
    for block in model.blocks[:-1]:
        assert block.attn.map_weight.grad.abs().min() > 0  # both maps, every head
    # the last layer's biases steer rows no output reads (only CLS's, which has no pair bias)
    assert not model.blocks[-1].attn.map_weight.grad.any()


def test_inputs_longer_than_the_model_are_refused():
    video = make_video("v", 14, frames=8)
    batch = build_batch([(video, video)], CONFIG)
    with pytest.raises(ValueError, match="8 frames"):
        MatchLMF(replace(CONFIG, max_frames=4))(batch)


@torch.no_grad()
def test_the_pair_evidence_summarises_frames_audio_and_text():
    from rci.inference.matchlmf.model import EVIDENCE, pair_evidence

    source = make_video("s", 20, frames=3, tokens=2, audio_s=3.0)
    silent_stranger = make_video("u", 21, frames=2, tokens=0)
    batch = build_batch([(source, source), (silent_stranger, source)], CONFIG)
    s_v = tiny_model()._frame_similarity(batch)
    evidence = dict(zip(EVIDENCE, pair_evidence(batch, s_v).T, strict=True))
    torch.testing.assert_close(evidence["chamfer"][0], torch.tensor(1.0))  # every frame meets itself
    torch.testing.assert_close(evidence["best_frame"][0], torch.tensor(1.0))
    assert evidence["chamfer"][1] < 0.6  # random frames in 32 dimensions are far apart
    torch.testing.assert_close(evidence["best_audio"][0], torch.tensor(1.0))  # identical bits, centred
    assert evidence["both_audio"].tolist() == [1.0, 0.0] and evidence["best_audio"][1] == 0
    torch.testing.assert_close(evidence["text_cosine"][0], torch.tensor(1.0))
    assert evidence["both_text"].tolist() == [1.0, 0.0] and evidence["text_cosine"][1] == 0


@torch.no_grad()
def test_a_background_lowers_the_similarity_of_frames_that_look_like_it():
    config = replace(CONFIG, background_frames=4)
    model = MatchLMF(config).eval()
    with pytest.raises(ValueError, match="background must be"):
        model.set_background(torch.zeros(3, config.visual_dim))
    query = make_video("q", 30, frames=2)
    common = torch.from_numpy(query.visual[:1]).repeat(4, 1)  # the background looks like the query's first frame
    batch = build_batch([(query, query)], config)
    raw = model._frame_similarity(batch)
    model.set_background(common)
    relative = model._frame_similarity(batch)
    assert relative[0, 0, 0] < raw[0, 0, 0] - 0.5  # its match is expected anyway: worth little
    assert relative[0, 1, 1] > relative[0, 0, 0]  # the other frame is not like the background
