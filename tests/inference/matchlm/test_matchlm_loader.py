"""The MatchLM directory: tiny build, save/load round trip, config in the checkpoint, clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from tests.inference.matchlm.matchlm_inputs import make_video

from rci.inference.matchlm.config import MatchLMConfig
from rci.inference.matchlm.loader import (
    CONFIG_FILE,
    MATCHLM_SUBDIR,
    init_matchlm,
    load_matchlm,
    load_matchlm_model,
    read_matchlm_config,
    save_matchlm,
)
from rci.core.errors import ModelError


def _pairs():
    return [(make_video(11, 6), make_video(12, 2)), (make_video(13, 3, audio=None), make_video(14, 9))]


def test_round_trip_gives_identical_scores(tiny_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(tiny_dir, target)
    model, processor = init_matchlm(target, MatchLMConfig.tiny(), seed=5)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):  # train-like weights: LoRA B is 0 at init
        torch.manual_seed(9)
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    meta = save_matchlm(model, target, {"threshold": 0.37})
    teacher = load_matchlm(target)
    assert teacher.model_version == meta["model_version"] and meta["model_version"].startswith("matchlm-")
    assert teacher.threshold == 0.37 and not teacher.model.training
    assert teacher.model.config == model.config
    with torch.no_grad():
        expected = model.eval()(processor(_pairs()))
    got = teacher.score_pairs(_pairs(), batch_size=2)  # same batching: bit-identical
    assert [g.score for g in got] == expected.score.tolist()
    torch.testing.assert_close(torch.from_numpy(np.stack([g.embedding for g in got])), expected.embedding, atol=0, rtol=0)
    # the perturbed adapter really is in use: a fresh model scores differently
    fresh, _ = init_matchlm(target, MatchLMConfig.tiny(), seed=5)
    with torch.no_grad():
        assert not torch.equal(fresh.eval()(processor(_pairs())).score, expected.score)


def test_tiny_build_is_deterministic_and_self_describing(tiny_dir, tmp_path):
    config, meta = read_matchlm_config(tiny_dir)
    assert config == MatchLMConfig.tiny() and meta == {"model_version": "matchlm-tiny-0", "threshold": 0.5}
    for name in ("config.json", "model.safetensors", "tokenizer.json", "whisper/config.json",
                 "matchlm/adapter/adapter_config.json", "matchlm/extras.safetensors"):
        assert (tiny_dir / name).is_file(), name
    from rci.inference.matchlm.tiny import build_tiny_matchlm

    again = build_tiny_matchlm(tmp_path / "again", seed=0)
    a, b = load_matchlm(tiny_dir), load_matchlm(again)
    pair = _pairs()[:1]
    assert a.score_pairs(pair)[0].score == b.score_pairs(pair)[0].score


def test_a_base_without_matchlm_part_is_not_a_teacher(tiny_dir, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_dir, base, ignore=shutil.ignore_patterns(MATCHLM_SUBDIR))
    with pytest.raises(ModelError, match="no trained MatchLM"):
        load_matchlm(base)
    model, _ = init_matchlm(base, MatchLMConfig.tiny(objective="ntp"))  # but training can start from it
    assert model.config.objective == "ntp"


def test_config_and_weights_that_disagree_raise_model_error(tiny_dir, tmp_path):
    target = tmp_path / "bad"
    shutil.copytree(tiny_dir, target)
    path = target / MATCHLM_SUBDIR / CONFIG_FILE
    payload = json.loads(path.read_text())
    payload["config"]["proj_dim"] = 48  # heads in extras.safetensors are 32 wide
    path.write_text(json.dumps(payload))
    with pytest.raises(ModelError, match="do not match"):
        load_matchlm_model(target)
    payload["config"]["audio_dim"] = 64  # the Whisper in <dir>/whisper is 32-d
    path.write_text(json.dumps(payload))
    with pytest.raises(ModelError, match="Whisper"):
        load_matchlm_model(target)
    payload["format"] = 99
    path.write_text(json.dumps(payload))
    with pytest.raises(ModelError, match="format"):
        load_matchlm_model(target)


def test_tokenizer_without_audio_token_gets_one(tiny_dir, tmp_path):
    # the published llava-onevision tokenizer has <image>/<video> but no <audio>
    from rci.inference.matchlm.tiny import build_tiny_tokenizer

    target = tmp_path / "noaudio"
    shutil.copytree(tiny_dir, target)
    config = MatchLMConfig.tiny(audio_token="<sound>")
    build_tiny_tokenizer(config).save_pretrained(target)
    model, processor = init_matchlm(target, config)
    assert processor.tokenizer.convert_tokens_to_ids("<sound>") == model.tokens.audio
    with torch.no_grad():
        score = model.eval()(processor(_pairs())).score
    assert torch.all(torch.isfinite(score))
