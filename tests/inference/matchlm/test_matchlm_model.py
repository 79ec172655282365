"""MatchLM forward: pair representation, slots, LoRA trainability, ablation variants."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
from tests.inference.matchlm.matchlm_inputs import make_video

from rci.inference.matchlm.config import LM_PROJECTIONS, MatchLMConfig
from rci.inference.matchlm.loader import init_matchlm
from rci.core.errors import ModelError


@torch.no_grad()
def test_pair_representation_is_the_last_real_tokens_final_state(tiny):
    model, processor = tiny
    pairs = [(make_video(1, 9), make_video(2, 3)), (make_video(3, 2, title="x"), make_video(4, 1, audio=None))]
    batch = processor(pairs)
    assert batch.attention_mask[1].sum() < batch.attention_mask.shape[1]  # row 1 really is padded
    out = model(batch)
    for i, pair in enumerate(pairs):
        # manual forward: this pair alone, no padding, no attention mask, the LM's very last position
        embeds, _, _ = model.input_embeddings(processor([pair]))
        hidden = model.llava.model.language_model(inputs_embeds=embeds).last_hidden_state
        torch.testing.assert_close(out.embedding[i], hidden[0, -1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.logits, model.head(model.shared(out.embedding)))


@torch.no_grad()
def test_frame_splicing_matches_llava_onevisions_own_video_path(tiny_dir):
    # without audio slots the prompt is plain LLaVA-OneVision video input: HF's forward must agree
    model, processor = init_matchlm(tiny_dir, MatchLMConfig.tiny(audio_fusion="none"), seed=1)
    model.eval()
    batch = processor([(make_video(5, 3, audio=None), make_video(6, 3, audio=None))])  # equal frame counts
    ours = model(batch).embedding
    s = processor.image.size
    reference = model.llava.model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        pixel_values_videos=batch.pixel_values.view(2, 3, 3, s, s),  # HF's layout: [videos, frames, C, H, W]
    ).last_hidden_state[:, -1]
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_scores_from_log_mel_equal_scores_from_precomputed_whisper_features(tiny):
    model, processor = tiny
    q, c = make_video(7, 4, 4.0), make_video(8, 2, 2.0)
    from_mel = model(processor([(q, c)]))
    states = model.audio_states(processor([(q, c)]))  # [2,1500,Da], the Whisper encoder output
    q2 = replace(q, log_mel=None, audio_features=states[0].numpy())
    c2 = replace(c, log_mel=None, audio_features=states[1].numpy())
    from_features = model(processor([(q2, c2)]))
    torch.testing.assert_close(from_mel.score, from_features.score, atol=1e-6, rtol=1e-5)
    assert from_mel.audio_weights.shape == (2, 1500)
    assert torch.all(from_mel.audio_weights[0, 200:] == 0)  # 4 s = 200 positions; silence padding gets 0


def test_audio_changes_the_score(tiny):
    model, processor = tiny
    with torch.no_grad():
        with_audio = model(processor([(make_video(1, 3), make_video(2, 3))])).score
        without = model(processor([(make_video(1, 3, audio=None), make_video(2, 3, audio=None))])).score
    assert not torch.allclose(with_audio, without)


def test_lora_leaves_only_adapters_audio_fusion_and_heads_trainable(tiny):
    model, _ = tiny
    names = model.trainable_parameter_names()
    lora = [n for n in names if ".lora_" in n]
    rest = [n for n in names if ".lora_" not in n]
    assert all(".language_model." in n for n in lora)  # never SigLIP's q/k/v_proj
    assert all(n.startswith(("early_audio.", "shared.", "head.", "aux_heads.")) for n in rest), rest
    layers = model.llava.config.text_config.num_hidden_layers
    targeted = {re.search(r"layers\.(\d+)\..*\.(\w+_proj)\.lora_", n).groups() for n in lora}
    assert targeted == {(str(i), p) for i in range(layers) for p in LM_PROJECTIONS}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any("vision_tower" in n for n in frozen) and any("multi_modal_projector" in n for n in frozen)
    assert any(n.startswith("audio_encoder.") for n in frozen) and any("embed_tokens" in n for n in frozen)
    lora_cfg = model.backbone.peft_config["default"]
    assert (lora_cfg.r, lora_cfg.lora_alpha, lora_cfg.lora_dropout) == (4, 8, 0.05)
    assert (MatchLMConfig().lora_r, MatchLMConfig().lora_alpha, MatchLMConfig().lora_dropout) == (32, 64, 0.05)


def test_gradients_reach_only_trainable_weights(tiny_dir):
    model, processor = init_matchlm(tiny_dir, MatchLMConfig.tiny(), seed=2)
    out = model(processor([(make_video(1, 3), make_video(2, 2))]))
    loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([1])) + sum(
        torch.nn.functional.cross_entropy(a, torch.tensor([0])) for a in out.aux_logits.values())
    loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = set(model.trainable_parameter_names())
    assert with_grad <= trainable
    assert any(".lora_B." in n for n in with_grad) and "early_audio.saliency.score.weight" in with_grad


@pytest.mark.parametrize("variant", [dict(objective="ntp"), dict(audio_fusion="late"), dict(frame_allocation="static")])
def test_ablation_variants_give_finite_scores_in_unit_interval(tiny_dir, variant):
    model, processor = init_matchlm(tiny_dir, MatchLMConfig.tiny(**variant), seed=3)
    pairs = [(make_video(1, 5), make_video(2, 2)), (make_video(3, 1, audio=None), make_video(4, 4))]
    with torch.no_grad():
        out = model.eval()(processor(pairs))
    assert out.logits.shape == (2, 2)
    assert torch.all(torch.isfinite(out.score)) and torch.all((out.score >= 0) & (out.score <= 1))
    if variant.get("objective") == "ntp":
        assert out.vocab_logits.shape == (2, model.llava.config.text_config.vocab_size)
        torch.testing.assert_close(out.logits, out.vocab_logits[:, list(model.tokens.answers)])
        assert not out.aux_logits and model.head is None
    if variant.get("audio_fusion") == "late":
        hidden = model.llava.config.text_config.hidden_size
        assert out.embedding.shape == (2, hidden + model.config.late_audio_dim)
        assert (processor(pairs).input_ids == model.tokens.audio).sum() == 0


def test_slot_count_mismatch_is_an_error(tiny):
    model, processor = tiny
    batch = processor([(make_video(1, 2), make_video(2, 2))])
    ids = batch.input_ids.clone()
    ids[0, (ids[0] == processor.tokens.video).nonzero()[0]] = processor.tokens.pad  # one <video> slot short
    with pytest.raises(ValueError, match="slots"):
        model(replace(batch, input_ids=ids))
    ids = batch.input_ids.clone()
    ids[0, (ids[0] == processor.tokens.audio).nonzero()[0]] = processor.tokens.pad
    with pytest.raises(ValueError, match="slots"):
        model(replace(batch, input_ids=ids))


def test_model_without_whisper_refuses_log_mel(tiny_dir):
    model, processor = init_matchlm(tiny_dir, MatchLMConfig.tiny(), seed=0)
    assert model.audio_encoder is not None  # <dir>/whisper is found by default
    model.audio_encoder = None
    with pytest.raises(ModelError, match="Whisper"):
        model(processor([(make_video(1, 2), make_video(2, 2))]))
