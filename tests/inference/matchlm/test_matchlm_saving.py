"""What training writes into a saved MatchLM directory, read back by the loader."""

from __future__ import annotations

import shutil

import torch

from rci.inference.matchlm.loader import MATCHLM_SUBDIR, load_backbone, load_matchlm_model, read_matchlm_config
from rci.inference.matchlm.saving import holds_matchlm, is_lora_weight, update_matchlm_meta, write_backbone


def test_meta_updates_merge_into_the_saved_meta(tiny_dir, tmp_path):
    target = tmp_path / "teacher"
    shutil.copytree(tiny_dir, target)
    before_config, before = read_matchlm_config(target)

    meta = update_matchlm_meta(target, {"threshold": 0.625, "threshold_reached": True})

    config, after = read_matchlm_config(target)
    assert meta == after == {**before, "threshold": 0.625, "threshold_reached": True}
    assert config == before_config


def test_trained_base_weights_are_written_without_the_adapters(tiny_dir, tmp_path):
    target = tmp_path / "teacher"
    shutil.copytree(tiny_dir, target)
    model, _, _ = load_matchlm_model(target)
    assert any(is_lora_weight(name) for name, _ in model.llava.named_parameters())
    base = next(p for name, p in model.llava.named_parameters() if not is_lora_weight(name) and p.ndim == 2)
    with torch.no_grad():
        base.add_(1.0)  # as training the backbone would

    write_backbone(model, target)

    written = {name.replace(".base_layer.", "."): t for name, t in model.llava.state_dict().items()
               if not is_lora_weight(name)}
    reloaded = load_backbone(target).state_dict()
    assert set(reloaded) == set(written)
    assert all(torch.equal(reloaded[name], tensor) for name, tensor in written.items())


def test_a_directory_holds_a_matchlm_only_with_its_matchlm_part(tiny_dir, tmp_path):
    assert holds_matchlm(tiny_dir)
    base = tmp_path / "base"
    shutil.copytree(tiny_dir, base, ignore=shutil.ignore_patterns(MATCHLM_SUBDIR))
    assert not holds_matchlm(base)
