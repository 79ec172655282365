"""All MatchLM file I/O: one directory in the llava-onevision-qwen2-0.5b layout plus MatchLM's extras.

    <dir>/config.json, model.safetensors        LLaVA-OneVision base (SigLIP + projector + Qwen2), as published
    <dir>/tokenizer.json, tokenizer_config.json  its tokenizer (`<audio>` is added at load when missing)
    <dir>/preprocessor_config.json               optional: image_mean / image_std (SigLIP: 0.5 / 0.5)
    <dir>/whisper/                               optional: Whisper (e.g. whisper-small) for log-mel input;
                                                 without it the model takes precomputed Whisper features
    <dir>/matchlm/matchlm.json                   {"format", "config": MatchLMConfig, "meta": {model_version, threshold}}
    <dir>/matchlm/adapter/                       the LoRA adapter (peft save_pretrained layout)
    <dir>/matchlm/extras.safetensors             audio fusion and heads

`init_matchlm` starts from a base directory (training); `save_matchlm` writes the `matchlm/` part;
`load_matchlm_model` reads it back; `load_frozen_matchlm` reads it for inference only (training's
teacher targets and evaluation); `load_matchlm` wraps that as a ready teacher (the shadow consumer).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, LlavaOnevisionForConditionalGeneration, PreTrainedTokenizerBase, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from rci.inference.matchlm.config import MatchLMConfig
from rci.inference.matchlm.frames import ImageSpec, tokens_per_frame
from rci.inference.matchlm.model import MatchLM
from rci.inference.matchlm.processor import MatchLMProcessor
from rci.inference.matchlm.prompt import resolve_special_tokens
from rci.inference.matchlm.teacher import MatchLMTeacher
from rci.core.errors import ModelError
from rci.core.logs import get_logger

log = get_logger(__name__)

FORMAT_VERSION = 1
MATCHLM_SUBDIR = "matchlm"
WHISPER_SUBDIR = "whisper"
CONFIG_FILE = "matchlm.json"
ADAPTER_SUBDIR = "adapter"
EXTRAS_FILE = "extras.safetensors"
PREPROCESSOR_FILE = "preprocessor_config.json"
DEFAULT_THRESHOLD = 0.5


# --- the base: backbone, tokenizer, image spec, Whisper ----------------------------------------


def load_tokenizer(base_dir: Path, config: MatchLMConfig) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer from {base_dir}: {exc}") from exc
    if config.audio_token not in tokenizer.get_vocab():
        # the published LLaVA-OneVision tokenizer has <image>/<video> but no <audio>: the slot is
        # replaced before embedding, so the LM's vocabulary does not need to grow
        tokenizer.add_special_tokens({"additional_special_tokens": [config.audio_token]})
    return tokenizer


def load_backbone(base_dir: Path, dtype: torch.dtype | None = None) -> LlavaOnevisionForConditionalGeneration:
    try:
        return LlavaOnevisionForConditionalGeneration.from_pretrained(base_dir, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load LLaVA-OneVision from {base_dir}: {exc}") from exc


def load_whisper_encoder(whisper_dir: Path, dtype: torch.dtype | None = None) -> WhisperEncoder:
    """The encoder of a Whisper checkpoint (WhisperModel or WhisperForConditionalGeneration layout)."""
    try:
        whisper = WhisperModel.from_pretrained(whisper_dir, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load Whisper from {whisper_dir}: {exc}") from exc
    return whisper.get_encoder()


def read_image_spec(base_dir: Path, backbone: LlavaOnevisionForConditionalGeneration) -> ImageSpec:
    size = backbone.config.vision_config.image_size
    path = base_dir / PREPROCESSOR_FILE
    if not path.exists():
        return ImageSpec(size=size)
    data = json.loads(path.read_text())
    mean, std = data.get("image_mean", ImageSpec.mean), data.get("image_std", ImageSpec.std)
    return ImageSpec(size=size, mean=tuple(mean), std=tuple(std))


def _assemble(
    base_dir: Path, config: MatchLMConfig, whisper_dir: Path | None, dtype: torch.dtype | None
) -> tuple[MatchLM, MatchLMProcessor]:
    tokenizer = load_tokenizer(base_dir, config)
    backbone = load_backbone(base_dir, dtype)
    try:
        tokens = resolve_special_tokens(tokenizer, config, backbone.config.video_token_index)
    except ValueError as exc:
        raise ModelError(f"{base_dir}: tokenizer does not fit MatchLM's prompt: {exc}") from exc
    whisper_dir = whisper_dir or (base_dir / WHISPER_SUBDIR if (base_dir / WHISPER_SUBDIR).is_dir() else None)
    encoder = load_whisper_encoder(whisper_dir, dtype) if whisper_dir and config.audio_fusion != "none" else None
    if encoder is not None and encoder.config.d_model != config.audio_dim:
        raise ModelError(f"Whisper in {whisper_dir} is {encoder.config.d_model}-d, config.audio_dim={config.audio_dim}")
    model = MatchLM(config, backbone, tokens, encoder)
    if dtype is not None:
        model = model.to(dtype)
    vision = backbone.config.vision_config
    processor = MatchLMProcessor(
        tokenizer, config, tokens, read_image_spec(base_dir, backbone), tokens_per_frame(vision.image_size, vision.patch_size)
    )
    return model, processor


# --- MatchLM's own part -------------------------------------------------------------------------


def init_matchlm(
    base_dir: str | Path,
    config: MatchLMConfig | None = None,
    *,
    whisper_dir: str | Path | None = None,
    dtype: torch.dtype | None = None,
    seed: int = 0,
) -> tuple[MatchLM, MatchLMProcessor]:
    """A fresh MatchLM on a base directory: new LoRA adapters, audio fusion and heads (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _assemble(Path(base_dir), config or MatchLMConfig(), _path(whisper_dir), dtype)


def weights_digest(model: MatchLM) -> str:
    """Short hash of what MatchLM trains (adapters, audio fusion, heads): a default model_version."""
    digest = hashlib.sha256()
    state = {**model.adapter_state_dict(), **model.extras_state_dict()}
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def save_matchlm(model: MatchLM, local_dir: str | Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write `<local_dir>/matchlm/` (config, adapter, extras, meta); the base stays as it is. -> meta."""
    meta = dict(meta or {})
    meta.setdefault("model_version", f"matchlm-{weights_digest(model)}")
    meta["threshold"] = float(meta.get("threshold", DEFAULT_THRESHOLD))
    out = Path(local_dir) / MATCHLM_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    if model.config.lora_r:
        model.backbone.save_pretrained(out / ADAPTER_SUBDIR)  # peft layout: adapter_config.json + weights
    save_file(_cpu(model.extras_state_dict()), out / EXTRAS_FILE)
    payload = {"format": FORMAT_VERSION, "config": model.config.to_dict(), "meta": meta}
    tmp = out / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(out / CONFIG_FILE)  # written last: a directory with matchlm.json is complete
    log.info("matchlm saved", path=str(out), model_version=meta["model_version"])
    return meta


def read_matchlm_config(local_dir: str | Path) -> tuple[MatchLMConfig, dict[str, Any]]:
    path = Path(local_dir) / MATCHLM_SUBDIR / CONFIG_FILE
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"no trained MatchLM in {local_dir} (cannot read {path}): {exc}") from exc
    if payload.get("format") != FORMAT_VERSION:
        raise ModelError(f"{path}: format {payload.get('format')} unsupported (expected {FORMAT_VERSION})")
    try:
        return MatchLMConfig.from_dict(payload["config"]), dict(payload["meta"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: invalid MatchLM config: {exc}") from exc


def load_matchlm_model(
    local_dir: str | Path, *, whisper_dir: str | Path | None = None, dtype: torch.dtype | None = None
) -> tuple[MatchLM, MatchLMProcessor, dict[str, Any]]:
    """A saved MatchLM (train mode, for further training or distillation) -> (model, processor, meta)."""
    local_dir = Path(local_dir)
    config, meta = read_matchlm_config(local_dir)
    model, processor = _assemble(local_dir, config, _path(whisper_dir), dtype)
    out = local_dir / MATCHLM_SUBDIR
    try:
        if config.lora_r:
            adapter = load_file(out / ADAPTER_SUBDIR / "adapter_model.safetensors")
            result = set_peft_model_state_dict(model.backbone, adapter)
            if result.unexpected_keys:
                raise ValueError(f"unexpected adapter weights: {result.unexpected_keys[:5]}")
        missing, unexpected = model.load_state_dict(load_file(out / EXTRAS_FILE), strict=False)
        missing = [k for k in missing if k in model.extras_state_dict()]
        if missing or unexpected:
            raise ValueError(f"extras missing {missing[:5]}, unexpected {unexpected[:5]}")
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{out}: weights do not match their config: {exc}") from exc
    return model, processor, meta


def load_frozen_matchlm(
    local_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    whisper_dir: str | Path | None = None,
) -> tuple[MatchLM, MatchLMProcessor, dict[str, Any]]:
    """A saved MatchLM for inference only: frozen, in eval mode, on `device` -> (model, processor, meta)."""
    model, processor, meta = load_matchlm_model(local_dir, whisper_dir=whisper_dir, dtype=dtype)
    return model.to(device).eval().requires_grad_(False), processor, meta


def load_matchlm(
    local_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    whisper_dir: str | Path | None = None,
) -> MatchLMTeacher:
    """The trained teacher, frozen, in eval mode on `device`."""
    model, processor, meta = load_frozen_matchlm(local_dir, device=device, dtype=dtype, whisper_dir=whisper_dir)
    return MatchLMTeacher(model, processor, meta["model_version"], meta["threshold"], device=device, dtype=dtype)


def _path(value: str | Path | None) -> Path | None:
    return Path(value) if value is not None else None


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}
