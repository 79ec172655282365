"""Each encoder: shapes and dims per config, determinism, frozen, save/load round trip, versions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rci.inference.encoders import EncoderInputError, load_encoder, save_encoder
from rci.inference.encoders.audio import AudioEncoderConfig, WhisperAudioEncoder, WhisperClipEmbedder
from rci.inference.encoders.base import AudioEncoder, TextEncoder, VisualEncoder
from rci.inference.encoders.visual import SwinFrameEmbedder, SwinVisualEncoder, VisualEncoderConfig
from rci.core.errors import ModelError
from tests.inference.encoders.conftest import TINY_VISUAL, seeded

TEXTS = ["a cat plays the piano", "", "   ", "breaking news " * 40]


def frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def log_mels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 80, 3000)).astype(np.float32)


def run(encoder, seed: int = 0):
    if isinstance(encoder, SwinVisualEncoder):
        return encoder.encode_frames(frames(5, seed))
    if isinstance(encoder, WhisperAudioEncoder):
        return encoder.encode_log_mel(log_mels(3, seed))
    return encoder.encode_texts(TEXTS)[0]


@pytest.fixture(params=["tiny_visual", "tiny_audio", "tiny_text"])
def encoder(request):
    return request.getfixturevalue(request.param)


def test_protocols_are_satisfied(tiny_visual, tiny_audio, tiny_text):
    assert isinstance(tiny_visual, VisualEncoder)
    assert isinstance(tiny_audio, AudioEncoder)
    assert isinstance(tiny_text, TextEncoder)


def test_visual_shapes_and_unit_norm(tiny_visual):
    out = tiny_visual.encode_frames(frames(5))
    assert out.shape == (5, 128) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert tiny_visual.encode_frames(frames(0)).shape == (0, 128)


def test_audio_shapes_follow_config(tiny_audio):
    out = tiny_audio.encode_log_mel(log_mels(3))
    assert out.shape == (3, 32) and tiny_audio.output_dim == 32


def test_text_shapes_mask_and_padding(tiny_text):
    emb, mask = tiny_text.encode_texts(TEXTS)
    assert emb.shape == (4, 64, 32) and mask.shape == (4, 64) and mask.dtype == bool
    assert 2 < mask[0].sum() < 64  # [CLS] a cat plays the piano [SEP], then padding
    assert not mask[1].any() and not mask[2].any()  # no text -> no text modality
    assert mask[3].all()  # long text is truncated to exactly max_tokens
    assert np.all(emb[~mask] == 0) and np.all(np.abs(emb[mask]).sum(axis=-1) > 0)


def test_same_input_gives_identical_output(encoder):
    np.testing.assert_array_equal(run(encoder), run(encoder))


def test_different_input_gives_different_output(encoder):
    if isinstance(encoder, SwinVisualEncoder | WhisperAudioEncoder):
        assert not np.allclose(run(encoder, 0), run(encoder, 1))
    else:
        emb, _ = encoder.encode_texts(["a cat plays the piano", "stock markets fell sharply"])
        assert not np.allclose(emb[0, 1], emb[1, 1])


def test_batch_size_does_not_change_results(tiny_visual):
    x = frames(5)
    whole = tiny_visual.encode_frames(x)
    tiny_visual.batch_size = 2
    np.testing.assert_allclose(tiny_visual.encode_frames(x), whole, atol=1e-5)


def test_encoders_are_frozen(encoder):
    assert not encoder.module.training
    assert all(not p.requires_grad for p in encoder.module.parameters())
    before = {k: v.clone() for k, v in encoder.module.state_dict().items()}
    run(encoder)
    after = encoder.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no running statistics drift either


def test_save_load_round_trip_is_exact(encoder, tmp_path):
    save_encoder(encoder, tmp_path / "enc")
    loaded = load_encoder(tmp_path / "enc", device="cpu", batch_size=encoder.batch_size)
    assert type(loaded) is type(encoder)
    assert loaded.version == encoder.version and loaded.config == encoder.config
    np.testing.assert_array_equal(run(loaded), run(encoder))
    assert not any(p.requires_grad for p in loaded.module.parameters())


def test_version_names_architecture_and_changes_with_weights():
    a = SwinVisualEncoder(seeded(lambda: SwinFrameEmbedder(TINY_VISUAL), 0), device="cpu")
    b = SwinVisualEncoder(seeded(lambda: SwinFrameEmbedder(TINY_VISUAL), 0), device="cpu")
    c = SwinVisualEncoder(seeded(lambda: SwinFrameEmbedder(TINY_VISUAL), 1), device="cpu")
    assert a.version == b.version != c.version
    assert a.version.startswith("visual:swin16x11@56-")


def test_small_configs_dims():
    visual = SwinVisualEncoder(seeded(lambda: SwinFrameEmbedder(VisualEncoderConfig.small())), device="cpu")
    audio = WhisperAudioEncoder(seeded(lambda: WhisperClipEmbedder(AudioEncoderConfig.small())), device="cpu")
    assert visual.encode_frames(frames(2)).shape == (2, 128)
    assert audio.encode_log_mel(log_mels(1)).shape == (1, 64)


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (np.zeros((2, 224, 224), np.uint8), "no channel axis"),
        (np.zeros((2, 224, 224, 3), np.float32), "float frames"),
        (np.zeros((2, 224, 224, 4), np.uint8), "RGBA"),
    ],
)
def test_visual_rejects_wrong_input(tiny_visual, bad, what):
    with pytest.raises(EncoderInputError):
        tiny_visual.encode_frames(bad)


def test_audio_rejects_wrong_mel_length(tiny_audio):
    with pytest.raises(EncoderInputError, match="3000"):
        tiny_audio.encode_log_mel(np.zeros((1, 80, 1500), np.float32))


def test_load_refuses_weights_that_do_not_match_the_recorded_version(tiny_visual, tmp_path):
    directory = save_encoder(tiny_visual, tmp_path / "enc")
    meta = json.loads((directory / "encoder.json").read_text())
    meta["version"] = meta["version"][:-4] + "beef"
    (directory / "encoder.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="weights give version"):
        load_encoder(directory, device="cpu")


def test_load_refuses_weights_of_another_config(tiny_visual, tmp_path):
    directory = save_encoder(tiny_visual, tmp_path / "enc")
    meta = json.loads((directory / "encoder.json").read_text())
    meta["config"]["embed_dim"] = 32
    meta["config"]["num_heads"] = [2, 4]
    (directory / "encoder.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="do not load"):
        load_encoder(directory, device="cpu")


def test_load_refuses_a_directory_without_encoder_json(tmp_path):
    with pytest.raises(ModelError, match="not an encoder directory"):
        load_encoder(tmp_path, device="cpu")
