"""MatchLite model: shapes, masking, missing modalities, ablations, the layers it is built from."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from rci.inference.features import FeatureSpec
from rci.inference.layers import PairwiseConcatConv, ResBlockConv, ResNetTrunk
from rci.inference.matchlite import INPUT_NAMES, MatchLite, MatchLiteConfig, count_parameters
from rci.inference.runtime import collate_pairs
from tests.inference.matchlite_fakes import SPEC, make_features, small_model, trimmed_copy


def as_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def run(model: MatchLite, pairs):
    with torch.no_grad():
        return model(as_tensors(collate_pairs(pairs)))


@pytest.fixture(scope="module")
def model() -> MatchLite:
    return small_model()


def test_output_shapes_and_score(model):
    pairs = [(make_features("q1", 1, frames=6), make_features("c1", 2, frames=9)),
             (make_features("q2", 3, frames=4), make_features("c2", 4, frames=3))]  # fmt: skip
    out = run(model, pairs)
    assert out.logits.shape == (2, 2)
    assert set(out.aux_logits) == set(model.config.aux_heads)
    assert all(a.shape == (2, 2) for a in out.aux_logits.values())
    assert out.embedding.shape == (2, model.config.embedding_dim)
    assert out.visual_similarity.shape == (2, 6, 9)  # trimmed to the batch's longest real videos
    assert torch.allclose(out.score, out.logits.softmax(-1)[:, 1])
    assert ((out.score > 0) & (out.score < 1)).all()


def test_identical_and_unrelated_pairs_score_differently(model):
    query = make_features("q", 1, frames=8)
    same, other = run(model, [(query, query)]), run(model, [(query, make_features("x", 99, frames=8))])
    assert torch.isfinite(same.score).all() and torch.isfinite(other.score).all()
    assert abs(same.score.item() - other.score.item()) > 1e-4
    # the identical pair's visual map has cosine 1 on its diagonal
    assert torch.allclose(same.visual_similarity[0].diagonal(), torch.ones(8), atol=1e-5)


@pytest.mark.parametrize("audio,text", [(False, True), (True, False), (False, False)])
def test_missing_modalities_give_finite_scores(model, audio, text):
    query = make_features("q", 1, frames=5, audio=audio, tokens=10 if text else 0)
    candidate = make_features("c", 2, frames=7, audio=audio, tokens=10 if text else 0)
    out = run(model, [(query, candidate), (candidate, query)])
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.embedding).all()
    assert torch.isfinite(out.visual_similarity).all()


def test_pair_score_does_not_depend_on_batch_padding(model):
    """Padded cells stay zero through the 2-D stack: alone == inside a longer batch."""
    pair = (make_features("q", 1, frames=5, tokens=3), make_features("c", 2, frames=7, tokens=12))
    long_pair = (make_features("q2", 3, frames=31, tokens=60), make_features("c2", 4, frames=29, tokens=40))
    alone = run(model, [pair])
    batched = run(model, [long_pair, pair])
    assert batched.visual_similarity.shape == (2, 31, 29)
    torch.testing.assert_close(batched.logits[1:], alone.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(batched.embedding[1:], alone.embedding, atol=1e-5, rtol=0)
    torch.testing.assert_close(batched.visual_similarity[1, :5, :7], alone.visual_similarity[0], atol=1e-6, rtol=0)
    assert batched.visual_similarity[1, 5:].abs().max() == 0 and batched.visual_similarity[1, :, 7:].abs().max() == 0


def test_padded_rows_are_ignored_even_if_not_zero(model):
    pair = (make_features("q", 1, frames=5), make_features("c", 2, frames=6))
    clean = collate_pairs([pair])
    noisy = {k: v.copy() for k, v in clean.items()}
    big = collate_pairs([(make_features("q", 1, frames=12), make_features("c", 2, frames=12))])
    for side in ("q", "c"):  # widen to 12 frames, filling the masked rows with garbage
        garbage = np.random.default_rng(7).normal(size=big[f"{side}_visual"].shape).astype(np.float32)
        m = clean[f"{side}_visual"].shape[1]
        garbage[:, :m] = clean[f"{side}_visual"]
        noisy[f"{side}_visual"] = garbage
        mask = np.zeros(big[f"{side}_visual_mask"].shape, bool)
        mask[:, :m] = clean[f"{side}_visual_mask"]
        noisy[f"{side}_visual_mask"] = mask
    garbage_map = np.random.default_rng(8).uniform(-1, 1, size=big["audio_map"].shape).astype(np.float32)
    m, n = clean["audio_map"].shape[1:]
    garbage_map[:, :m, :n] = clean["audio_map"]
    noisy["audio_map"] = garbage_map
    with torch.no_grad():
        a, b = model(as_tensors(clean)), model(as_tensors(noisy))
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "use_audio,use_text,audio_source,modalities",
    [(False, False, "fingerprint", ("v",)), (True, False, "embedding", ("v", "va", "a", "av")),
     (False, True, "fingerprint", ("v", "vt", "t", "tv")), (True, True, "embedding", ("v", "va", "a", "av", "vt", "t", "tv")),
     (True, False, "fingerprint", ("v", "a")), (True, True, "fingerprint", ("v", "a", "vt", "t", "tv"))],
)  # fmt: skip
def test_ablation_configs(use_audio, use_text, audio_source, modalities):
    model = small_model(use_audio=use_audio, use_text=use_text, audio_source=audio_source)
    config = model.config
    assert config.modalities == modalities
    enhanced = 1 + (use_audio and audio_source == "embedding") + use_text
    assert config.fused_channels == enhanced * config.fusion_channels + len(modalities) + use_audio + use_text
    assert model.trunk.stem_conv.in_channels == config.fused_channels
    out = run(model, [(make_features("q", 1), make_features("c", 2))])
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("audio_source", ["fingerprint", "embedding"])
def test_modalities_change_the_score(audio_source):
    """Audio and text are actually used: changing only the candidate's audio / text moves the score."""
    model = small_model(audio_source=audio_source)
    query = make_features("q", 1)
    candidate = make_features("c", 2)
    base = run(model, [(query, candidate)]).logits
    other = make_features("z", 50)
    other_audio = replace(candidate, audio=other.audio) if audio_source == "embedding" else replace(
        candidate, audio_fingerprint=query.audio_fingerprint)  # the query's own sound
    other_text = replace(candidate, text=make_features("z", 51).text)
    assert (run(model, [(query, other_audio)]).logits - base).abs().max() > 1e-5
    assert (run(model, [(query, other_text)]).logits - base).abs().max() > 1e-5


def test_paper_config_is_resnet34_sized():
    config = MatchLiteConfig.paper()
    assert (config.bixt_heads, config.bixt_hidden, config.resnet_layers) == (8, 64, (3, 4, 6, 3))
    model = MatchLite(config)
    n_blocks = sum(config.resnet_layers)
    assert len(model.trunk.blocks) == n_blocks == 16
    assert 20e6 < count_parameters(model) < 25e6  # ResNet-34 body (~21M) + fusion + BiXT
    assert count_parameters(model, include_aux=True) > count_parameters(model)


def test_config_round_trip_and_spec_check():
    config = MatchLiteConfig.small(use_text=False, aux_heads=("visual",))
    assert MatchLiteConfig.from_dict(config.to_dict()) == config
    config.check_spec(FeatureSpec())
    with pytest.raises(ValueError, match="text_dim"):
        config.check_spec(FeatureSpec(text_dim=768))
    with pytest.raises(ValueError, match="unknown"):
        MatchLiteConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_backward_gives_finite_gradients_for_all_heads():
    model = small_model().train()
    query = make_features("q", 1, audio=False)
    out = model(as_tensors(collate_pairs([(query, trimmed_copy(query, 2, 7, seed=3)), (query, make_features("c", 2))])))
    loss = nn.functional.cross_entropy(out.logits, torch.tensor([1, 0]))
    loss = loss + sum(nn.functional.cross_entropy(a, torch.tensor([1, 0])) for a in out.aux_logits.values())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.head.weight.grad.abs().sum() > 0 and model.bixt_vt.in_y.weight.grad.abs().sum() > 0


def test_pairwise_concat_conv_equals_conv_on_materialised_tensor():
    torch.manual_seed(0)
    layer = PairwiseConcatConv(in_dim=6, out_channels=4)
    f_q, f_c = torch.randn(2, 3, 6), torch.randn(2, 5, 6)
    d = torch.cat([f_q[:, :, None, :].expand(-1, -1, 5, -1), f_c[:, None, :, :].expand(-1, 3, -1, -1)], dim=-1)
    conv = nn.Conv2d(12, 4, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([layer.query.weight, layer.candidate.weight], dim=1)[:, :, None, None])
        conv.bias.copy_(layer.query.bias)
        expected = conv(d.permute(0, 3, 1, 2))  # D as [B, 2d, M, N]
        torch.testing.assert_close(layer(f_q, f_c), expected)


def test_masked_blocks_keep_padding_at_zero():
    torch.manual_seed(0)
    block = ResBlockConv(in_dim=6, channels=4).eval()
    mask = torch.zeros(1, 1, 5, 5)
    mask[..., :3, :2] = 1
    with torch.no_grad():
        e = block(torch.randn(1, 5, 6), torch.randn(1, 5, 6), mask)
        assert (e * (1 - mask)).abs().max() == 0 and e.abs().sum() > 0
        trunk = ResNetTrunk(4, layers=(1, 1), widths=(4, 8)).eval()
        z_small = trunk(e[..., :3, :2], mask[..., :3, :2])
        z_padded = trunk(e, mask)
    torch.testing.assert_close(z_small, z_padded, atol=1e-6, rtol=0)


def test_input_names_cover_both_sides():
    assert len(INPUT_NAMES) == 13 and INPUT_NAMES[0] == "q_visual" and INPUT_NAMES[6] == "c_visual"
    assert INPUT_NAMES[12] == "audio_map"  # the one per-pair input


@pytest.mark.parametrize("audio_source", ["fingerprint", "embedding"])
def test_similarity_maps_only_never_sees_the_features_themselves(audio_source):
    """pair_features=False: the score depends on the videos only through their similarities, so
    rotating every feature space (same cosines, other vectors) leaves it unchanged."""
    model = small_model(pair_features=False, audio_source=audio_source)
    assert model.config.modalities == ("v", "vc", "a", "t") and model.config.fused_channels == 4 + 2
    query, candidate = make_features("q", 1), make_features("c", 2)
    rng = np.random.default_rng(3)

    def rotate(f, rotations):
        return replace(f, **{name: (getattr(f, name) @ r).astype(np.float32) for name, r in rotations.items()})

    rotations = {name: np.linalg.qr(rng.normal(size=(dim, dim)))[0] for name, dim in
                 (("visual", SPEC.visual_dim), ("audio", SPEC.audio_dim), ("text", SPEC.text_dim))}
    base = run(model, [(query, candidate)]).logits
    turned = run(model, [(rotate(query, rotations), rotate(candidate, rotations))]).logits
    torch.testing.assert_close(base, turned, atol=1e-4, rtol=0)
    other_text = replace(candidate, text=make_features("z", 51).text)
    assert (run(model, [(query, other_text)]).logits - base).abs().max() > 1e-6


def test_background_levels_take_frame_cosines_relative_to_unrelated_media(tmp_path):
    """SSCD's score normalisation: two unrelated videos that share a generic look (here, one common
    direction in every frame) are alike in raw cosine, not relative to a background of that look; the
    background travels in the checkpoint and the ONNX graph."""
    from rci.inference.checkpoint import load_checkpoint, save_checkpoint
    from rci.inference.onnx_export import export_and_verify

    rng = np.random.default_rng(7)
    look = rng.normal(size=SPEC.visual_dim) * 3.0  # what every frame of this kind of media shares

    def frames(n, seed):
        return (look + np.random.default_rng(seed).normal(size=(n, SPEC.visual_dim))).astype(np.float32)

    query, candidate = make_features("q", 1, visual=frames(6, 1)), make_features("c", 2, visual=frames(6, 2))
    model = small_model(pair_features=False, background_frames=64)
    model.set_background(torch.from_numpy(frames(64, 3)))
    batch = {k: torch.from_numpy(v) for k, v in collate_pairs([(query, candidate)]).items()}
    with torch.no_grad():
        q, c = (model.perceive(*(batch[f"{side}_{n}"] for n in ("visual", "visual_mask", "audio", "has_audio", "text",
                                                                   "text_mask"))) for side in ("q", "c"))
        fused, mask, raw = model.fuse(q, c, batch["audio_map"])
    valid = mask[0, 0] > 0
    assert raw[0][valid].mean() > 0.6  # raw: unrelated frames look alike
    assert fused[0, 0][valid].abs().mean() < 0.15  # relative to the background: about nothing
    with pytest.raises(ValueError, match="background"):
        model.set_background(torch.zeros(3, SPEC.visual_dim))

    save_checkpoint(tmp_path / "m.pt", model, {})
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    torch.testing.assert_close(loaded.background, model.background)
    diffs = export_and_verify(loaded, tmp_path / "m.onnx")
    assert max(diffs.values()) < 1e-3


def test_two_view_frames_give_the_best_view_pair_in_torch_numpy_and_onnx(tmp_path):
    """S^v of a model built for two views per frame is rci.inference.features.frame_similarity, in the
    exported graph too; a features record with another view count is refused before scoring."""
    from rci.inference.features import frame_similarity
    from rci.inference.onnx_export import export_and_verify
    from rci.inference.runtime import InvalidFeatures, check_features

    query, candidate = (replace(make_features(name, seed), visual_views=2) for name, seed in (("q", 1), ("c", 2)))
    model = small_model(visual_views=2, pair_features=False, background_frames=16)
    model.set_background(torch.randn(16, SPEC.visual_dim))
    batch = {k: torch.from_numpy(v) for k, v in collate_pairs([(query, candidate)]).items()}
    with torch.no_grad():
        s_v = model(batch).visual_similarity[0]
    m, n = int(query.visual_mask.sum()), int(candidate.visual_mask.sum())
    expected = frame_similarity(query.visual[:m], candidate.visual[:n], views=2)
    np.testing.assert_allclose(s_v[:m, :n].numpy(), expected, atol=1e-5)
    assert not np.allclose(expected, frame_similarity(query.visual[:m], candidate.visual[:n], views=1), atol=1e-3)
    assert max(export_and_verify(model, tmp_path / "m.onnx").values()) < 1e-3
    with pytest.raises(InvalidFeatures, match="views per frame"):
        check_features(replace(query, visual_views=1), model.config)
