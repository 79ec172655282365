"""Audio encoder: Whisper encoder on the 30 s log-mel, mean pooled over its 1500 positions.

Paper size (appendix A.1) is Whisper-small's encoder: d_model 768, 12 layers, 12 heads, 80 mel
bins, 1500 positions -> [1500, 768] -> mean -> [768]. The small size (d_model 64, 2 layers) keeps
the input contract ([80, 3000]) but makes audio features 64-d: the width travels with the features
(`FeatureSpec.audio_dim`) and MatchLite is configured from it.

The mean runs over all 1500 positions, silence padding included, as in the paper: a clip shorter
than 30 s is padded by the log-mel front end exactly as Whisper itself sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from rci.inference.encoders.base import EncoderInputError, FrozenEncoder, batches


@dataclass(frozen=True)
class AudioEncoderConfig:
    d_model: int = 768
    layers: int = 12
    heads: int = 12
    ffn_dim: int = 3072
    num_mel_bins: int = 80
    max_source_positions: int = 1500  # after the stride-2 conv: input is 2 x 1500 = 3000 mel frames

    @classmethod
    def paper(cls) -> AudioEncoderConfig:
        return cls()

    @classmethod
    def small(cls) -> AudioEncoderConfig:
        return cls(d_model=64, layers=2, heads=4, ffn_dim=256)

    @property
    def mel_frames(self) -> int:
        return 2 * self.max_source_positions

    @property
    def tag(self) -> str:
        return f"whisper{self.d_model}x{self.layers}"

    def whisper_config(self) -> WhisperConfig:
        return WhisperConfig(
            d_model=self.d_model,
            encoder_layers=self.layers,
            encoder_attention_heads=self.heads,
            encoder_ffn_dim=self.ffn_dim,
            num_mel_bins=self.num_mel_bins,
            max_source_positions=self.max_source_positions,
        )


class WhisperClipEmbedder(nn.Module):
    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        self.config = config
        self.encoder = WhisperEncoder(config.whisper_config())

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        # log_mel: [B, n_mels, 3000] -> [B, d_model]
        hidden = self.encoder(input_features=log_mel).last_hidden_state  # [B, 1500, d_model]
        return hidden.mean(dim=1)


class WhisperAudioEncoder(FrozenEncoder):
    """Frozen, batched `AudioEncoder` over a `WhisperClipEmbedder`."""

    modality = "audio"
    config: AudioEncoderConfig
    module: WhisperClipEmbedder

    def __init__(self, module: WhisperClipEmbedder, device: str = "auto", batch_size: int = 8):
        super().__init__(module, module.config, device, batch_size)

    @property
    def output_dim(self) -> int:
        return self.config.d_model

    def encode_log_mel(self, log_mel: np.ndarray) -> np.ndarray:
        expected = (self.config.num_mel_bins, self.config.mel_frames)
        if log_mel.ndim != 3 or log_mel.shape[1:] != expected:
            raise EncoderInputError(f"expected log-mel [B, {expected[0]}, {expected[1]}], got {log_mel.shape}")
        out = np.empty((len(log_mel), self.output_dim), dtype=np.float32)
        with torch.inference_mode():
            for part in batches(len(log_mel), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(log_mel[part], dtype=np.float32)).to(self.device)
                out[part] = self.module(x).float().cpu().numpy()
        return out
