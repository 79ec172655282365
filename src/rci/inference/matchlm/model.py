"""MatchLM: the teacher that scores a (query, candidate) pair with a multimodal LM (paper 3.2).

Shapes: B pairs, V = 2B videos (pair0 query, pair0 candidate, pair1 query, ...), F frames in
the batch, P audio positions, S prompt tokens, H the LM width, Da the Whisper width.

  frames   [F,3,s,s] -> SigLIP -> LLaVA projector -> 2x2 pool -> [F, frame_tokens, H]
           -> per video: its frames' tokens + the image-newline token -> the `<video>` slots
  audio    log-mel [V,80,3000] -> Whisper encoder -> [V,P,Da]   (or precomputed [V,P,Da])
           early: saliency softmax pooling -> MLP projector -> [V,H] -> the `<audio>` slots
           late:  mean pool -> concat(video 1, video 2) -> linear -> joins the pair state
  text     prompt + titles/stickers -> the LM's input embeddings
  LM       Qwen2 (LoRA adapters) on inputs_embeds [B,S,H] -> final state of the last real token
           = pair representation -> head:  shared projection -> main RCI head [B,2] + aux heads
                                    NTP:   lm_head -> logits of the two answer tokens [B,2]

Only the LoRA adapters, the audio fusion and the heads train; SigLIP, the projector, the LM's
own weights and Whisper stay frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from torch import nn
from transformers import LlavaOnevisionForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from rci.inference.matchlm.audio import EarlyAudioFusion, LateAudioFusion
from rci.inference.matchlm.config import MatchLMConfig
from rci.inference.matchlm.processor import MatchLMBatch
from rci.inference.matchlm.prompt import SpecialTokens
from rci.core.errors import ModelError

BACKBONE = "backbone"  # attribute names, used to split checkpoint state
AUDIO_ENCODER = "audio_encoder"


@dataclass
class MatchLMOutput:
    logits: torch.Tensor  # [B,2] main RCI task, index 1 = reproduced (NTP: the two answer-token logits)
    embedding: torch.Tensor  # [B,E] pair representation z_t, the teacher side of L_emb
    aux_logits: dict[str, torch.Tensor]  # name -> [B,2], training only (head objective)
    audio_weights: torch.Tensor | None = None  # [V,P] saliency weights (early fusion)
    vocab_logits: torch.Tensor | None = None  # [B,vocab] NTP: next-token logits, for its training loss

    @property
    def score(self) -> torch.Tensor:
        """[B] probability that the query reproduces the candidate."""
        return self.logits.float().softmax(dim=-1)[:, 1]


def lora_config(config: MatchLMConfig) -> LoraConfig:
    # only the language model's projections: SigLIP also has q/k/v_proj and must stay untouched
    targets = "|".join(config.lora_targets)
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=rf".*\.language_model\..*\.({targets})$",
        bias="none",
    )


class MatchLM(nn.Module):
    def __init__(
        self,
        config: MatchLMConfig,
        backbone: LlavaOnevisionForConditionalGeneration,
        tokens: SpecialTokens,
        audio_encoder: WhisperEncoder | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.tokens = tokens
        backbone.requires_grad_(False)
        self.backbone: nn.Module = get_peft_model(backbone, lora_config(config)) if config.lora_r else backbone
        self.audio_encoder = audio_encoder.requires_grad_(False) if audio_encoder is not None else None
        hidden = backbone.config.text_config.hidden_size
        self.early_audio = EarlyAudioFusion(config.audio_dim, hidden) if config.audio_fusion == "early" else None
        self.late_audio = LateAudioFusion(config.audio_dim, config.late_audio_dim) if config.audio_fusion == "late" else None
        self.shared: nn.Module | None = None
        self.head: nn.Module | None = None
        self.aux_heads = nn.ModuleDict()
        if config.objective == "head":
            pair_dim = hidden + (config.late_audio_dim if self.late_audio is not None else 0)
            self.shared = nn.Sequential(nn.Linear(pair_dim, config.proj_dim), nn.GELU(), nn.Dropout(config.dropout))
            self.head = nn.Linear(config.proj_dim, 2)
            self.aux_heads.update({name: nn.Linear(config.proj_dim, 2) for name in config.aux_heads})

    # --- parts of the backbone ----------------------------------------------------------------

    @property
    def llava(self) -> LlavaOnevisionForConditionalGeneration:
        """The LLaVA-OneVision model (LoRA layers injected in place when the adapters are on)."""
        return self.backbone.get_base_model() if isinstance(self.backbone, PeftModel) else self.backbone

    @property
    def embedding_dim(self) -> int:
        hidden = self.llava.config.text_config.hidden_size
        return hidden + (self.config.late_audio_dim if self.late_audio is not None else 0)

    # --- inputs -> embeddings ----------------------------------------------------------------

    def video_tokens(self, batch: MatchLMBatch) -> torch.Tensor:
        """[sum over videos of (frames * frame_tokens + 1), H]: what fills the `<video>` slots, in order."""
        llava = self.llava
        if batch.pixel_values.shape[0] == 0:
            return batch.pixel_values.new_zeros(0, llava.config.text_config.hidden_size)
        features = llava.model.get_video_features(
            batch.pixel_values[None],  # [1,F,3,s,s]: the tower runs over all frames at once
            vision_feature_layer=llava.config.vision_feature_layer,
            vision_feature_select_strategy=llava.config.vision_feature_select_strategy,
            return_dict=True,
        ).pooler_output  # [1, F*frame_tokens, H]
        per_frame = features.reshape(batch.pixel_values.shape[0], -1, features.shape[-1])  # [F,frame_tokens,H]
        newline = llava.model.image_newline.to(features.dtype)[None]  # [1,H]
        pieces = []
        for frames in per_frame.split(batch.frames_per_video.tolist()):
            if len(frames):
                pieces += [frames.flatten(0, 1), newline]
        return torch.cat(pieces)

    def audio_states(self, batch: MatchLMBatch) -> torch.Tensor:
        """[V,P,Da] Whisper encoder states (run here from log-mel, or given precomputed)."""
        if batch.log_mel is None:
            return batch.audio_features
        if self.audio_encoder is None:
            raise ModelError("this MatchLM has no Whisper encoder: feed audio_features instead of log-mel")
        has = batch.has_audio
        states = batch.log_mel.new_zeros(len(has), batch.audio_mask.shape[1], self.config.audio_dim)
        if has.any():  # encode only the videos that have audio
            states[has] = self.audio_encoder(input_features=batch.log_mel[has]).last_hidden_state
        return states

    def input_embeddings(self, batch: MatchLMBatch) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """-> (inputs_embeds [B,S,H], audio saliency weights [V,P] | None, late audio vector [B,A] | None)."""
        ids = batch.input_ids
        video_slot = ids == self.tokens.video  # [B,S]
        audio_slot = ids == self.tokens.audio
        # placeholders are filled below; embed them as padding so no placeholder vector leaks in
        text_ids = ids.masked_fill(video_slot | audio_slot, self.tokens.pad)
        embeds = self.llava.get_input_embeddings()(text_ids)  # [B,S,H]
        embeds = _fill_slots(embeds, video_slot, self.video_tokens(batch).to(embeds.dtype), "video")
        weights = late = None
        if self.early_audio is not None:
            audio, weights = self.early_audio(self.audio_states(batch), batch.audio_mask, batch.has_audio)  # [V,H]
            embeds = _fill_slots(embeds, audio_slot, audio.to(embeds.dtype), "audio")
        elif self.late_audio is not None:
            late = self.late_audio(self.audio_states(batch), batch.audio_mask, batch.has_audio)  # [B,A]
        return embeds, weights, late

    # --- forward -------------------------------------------------------------------------------

    def last_token_state(self, embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B,S,H] embeddings -> [B,H] final hidden state of each row's last real token."""
        hidden = self.llava.model.language_model(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (positions * attention_mask).argmax(dim=1)  # [B]: index of the last 1 in each row
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def forward(self, batch: MatchLMBatch) -> MatchLMOutput:
        embeds, weights, late = self.input_embeddings(batch)
        state = self.last_token_state(embeds, batch.attention_mask)  # [B,H]
        if self.config.objective == "ntp":
            vocab_logits = self.llava.lm_head(state)  # [B,vocab]
            logits = vocab_logits[:, list(self.tokens.answers)]  # [B,2]: (Normal, Reproduced)
            return MatchLMOutput(logits, state, {}, weights, vocab_logits)
        pair = state if late is None else torch.cat([state, late.to(state.dtype)], dim=-1)  # [B,E]
        shared = self.shared(pair)
        aux = {name: head(shared) for name, head in self.aux_heads.items()}
        return MatchLMOutput(self.head(shared), pair, aux, weights)

    # --- what trains, what a checkpoint stores ---------------------------------------------------

    def trainable_parameter_names(self) -> list[str]:
        return [name for name, p in self.named_parameters() if p.requires_grad]

    def extras_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights MatchLM adds outside the backbone (audio fusion, heads); Whisper stays in its own dir."""
        return {
            name: tensor
            for name, tensor in self.state_dict().items()
            if not name.startswith((BACKBONE + ".", AUDIO_ENCODER + "."))
        }

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        return get_peft_model_state_dict(self.backbone) if isinstance(self.backbone, PeftModel) else {}


def _fill_slots(embeds: torch.Tensor, slots: torch.Tensor, values: torch.Tensor, what: str) -> torch.Tensor:
    # slots [B,S] bool, values [n,H]: the n slot positions, row-major, take the n rows in order
    if int(slots.sum()) != values.shape[0]:
        raise ValueError(f"{int(slots.sum())} <{what}> slots but {values.shape[0]} {what} tokens")
    return embeds.masked_scatter(slots[..., None], values)
