"""MatchLMFConfig: defaults, the checkpoint round trip, and what it refuses."""

from __future__ import annotations

import json

import pytest

from rci.inference.matchlmf.config import MatchLMFConfig


def test_defaults_read_two_sscd_views_and_minilm_tokens():
    config = MatchLMFConfig()
    assert (config.view_dim, config.visual_views, config.visual_dim, config.text_dim) == (512, 2, 1024, 384)
    assert (config.d_model, config.layers, config.heads) == (256, 6, 8)
    tiny = MatchLMFConfig.tiny(layers=3)
    assert (tiny.d_model, tiny.layers, tiny.heads, tiny.view_dim) == (32, 3, 4, 512)


@pytest.mark.parametrize("config", [MatchLMFConfig(), MatchLMFConfig.tiny(aux_heads=("visual",), dropout=0.2)])
def test_round_trip_through_json(config: MatchLMFConfig):
    data = json.loads(json.dumps(config.to_dict()))  # as a checkpoint's metadata stores it
    assert MatchLMFConfig.from_dict(data) == config


def test_missing_keys_take_defaults():
    assert MatchLMFConfig.from_dict({"layers": 3}) == MatchLMFConfig(layers=3)


def test_unknown_keys_are_an_error_not_dropped():
    data = {**MatchLMFConfig().to_dict(), "resnet_layers": [3, 4, 6, 3]}
    with pytest.raises(ValueError, match=r"not MatchLMFConfig fields: \['resnet_layers'\]"):
        MatchLMFConfig.from_dict(data)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 30, "heads": 4}, "divisible by heads"),
        ({"layers": 0}, "layers must be a positive int"),
        ({"view_dim": -1}, "view_dim must be a positive int"),
        ({"max_audio_seconds": 2.5}, "max_audio_seconds must be a positive int"),
        ({"visual_views": True}, "visual_views must be a positive int"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"aux_heads": ("visual", "visual")}, "duplicates"),
    ],
)
def test_invalid_values_are_refused(overrides: dict, message: str):
    with pytest.raises(ValueError, match=message):
        MatchLMFConfig(**overrides)
