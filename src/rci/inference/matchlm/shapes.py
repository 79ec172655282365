"""Backbone shapes built from configs alone: CPU-sized ones for tests, paper-sized ones for cost figures.

Paper size is llava-onevision-qwen2-0.5b-ov (SigLIP-so400m-patch14-384 with its last layer
dropped, 2-layer GELU projector, Qwen2-0.5B) and Whisper-small's encoder. Built from these
configs the weights are random: right for shapes and FLOPs, meaningless for scores; real weights
come from a local directory through `rci.inference.matchlm.loader`.
"""

from __future__ import annotations

from transformers import LlavaOnevisionConfig, WhisperConfig

TINY_IMAGE_SIZE = 32  # 8 px patches -> 4x4 grid -> 2x2 = 4 LM tokens per frame
TINY_AUDIO_DIM = 32
QWEN2_VOCAB = 151936


def tiny_backbone_config(vocab_size: int, image_token_id: int, video_token_id: int) -> LlavaOnevisionConfig:
    """SigLIP 32 px / hidden 32 / 2 layers; Qwen2 hidden 64 / 2 layers / 4 heads / 2 kv heads."""
    return LlavaOnevisionConfig(
        vision_config=dict(
            model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, image_size=TINY_IMAGE_SIZE, patch_size=8, vision_use_head=False,
        ),
        text_config=dict(
            model_type="qwen2", vocab_size=vocab_size, hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        ),
        image_token_index=image_token_id,
        video_token_index=video_token_id,
        vision_feature_select_strategy="full",  # as llava-onevision-qwen2-0.5b-ov
        vision_feature_layer=-1,
    )


def tiny_whisper_config() -> WhisperConfig:
    """A 32-d, 2-layer Whisper that keeps the real input contract: 80 x 3000 log-mel -> 1500 positions."""
    return WhisperConfig(
        d_model=TINY_AUDIO_DIM, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, vocab_size=64,
        max_target_positions=16, num_mel_bins=80, max_source_positions=1500,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )


def paper_backbone_config(image_token_id: int, video_token_id: int, vocab_size: int = QWEN2_VOCAB) -> LlavaOnevisionConfig:
    """llava-onevision-qwen2-0.5b-ov: 384 px / 14 px patches -> 729 patches -> 196 LM tokens per frame."""
    return LlavaOnevisionConfig(
        vision_config=dict(
            model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304, num_hidden_layers=26,
            num_attention_heads=16, image_size=384, patch_size=14, vision_use_head=False,
        ),
        text_config=dict(
            model_type="qwen2", vocab_size=vocab_size, hidden_size=896, intermediate_size=4864,
            num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
            rope_theta=1_000_000.0, tie_word_embeddings=True,
        ),
        image_token_index=image_token_id,
        video_token_index=video_token_id,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )


def paper_whisper_config() -> WhisperConfig:
    """whisper-small: d_model 768, 12 encoder layers, 12 heads; 80 x 3000 log-mel -> 1500 x 768."""
    return WhisperConfig(
        d_model=768, encoder_layers=12, encoder_attention_heads=12, encoder_ffn_dim=3072,
        decoder_layers=12, decoder_attention_heads=12, decoder_ffn_dim=3072, num_mel_bins=80,
        max_source_positions=1500,
    )
