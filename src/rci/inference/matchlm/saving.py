"""What training writes into a MatchLM directory beyond `save_matchlm`, in the loader's layout.

The file names and the `matchlm.json` payload are the loader's (`rci.inference.matchlm.loader`);
this module only adds the writes a training run needs: the trained base weights, and the meta
evaluation amends (the threshold).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rci.inference.matchlm.loader import CONFIG_FILE, MATCHLM_SUBDIR, load_backbone
from rci.inference.matchlm.model import MatchLM

# peft's LoRA layer names: `<layer>.lora_A...` for the adapters, `<layer>.base_layer.<weight>` for
# the wrapped original weight
LORA_MARK = ".lora_"
LORA_BASE_LAYER = ".base_layer."


def is_lora_weight(name: str) -> bool:
    """True for a LoRA adapter tensor of a peft-wrapped backbone (not one of the base model's own)."""
    return LORA_MARK in name


def holds_matchlm(local_dir: Path) -> bool:
    """Whether `local_dir` already holds a saved MatchLM (a complete `matchlm/` part)."""
    return (Path(local_dir) / MATCHLM_SUBDIR / CONFIG_FILE).exists()


def write_backbone(model: MatchLM, base_dir: Path) -> None:
    """Write the backbone's current base weights (LoRA layers excluded) as `base_dir`'s LLaVA-OneVision."""
    state = {
        name.replace(LORA_BASE_LAYER, "."): tensor
        for name, tensor in model.llava.state_dict().items()
        if not is_lora_weight(name)
    }
    fresh = load_backbone(base_dir)
    fresh.load_state_dict(state, strict=True)
    fresh.save_pretrained(base_dir)


def update_matchlm_meta(local_dir: Path, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `updates` into a saved MatchLM's meta (e.g. its threshold); returns the new meta."""
    path = Path(local_dir) / MATCHLM_SUBDIR / CONFIG_FILE
    payload = json.loads(path.read_text())
    payload["meta"] = {**payload["meta"], **json.loads(json.dumps(dict(updates)))}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)  # atomic: a reader never sees half a matchlm.json
    return payload["meta"]
