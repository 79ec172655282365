"""MatchLMF: a feature-level teacher, one transformer over both videos' feature tokens (pure torch).

Shapes: B pairs; per side M frames, S seconds of audio, L text tokens (query and candidate may be
padded differently); D = d_model, h = heads, V*Dv = visual_views * view_dim, E = embedding_dim;
T = 1 + (Mq + Sq + Lq) + (Mc + Sc + Lc) tokens in one sequence.

  tokens   per side x in {q, c}:
             frames  Linear(V*Dv -> D) of each frame's views (each view L2-normalised first)
             audio   Linear(32 -> D) of per-second Chromaprint bit vectors
             text    Linear(Dt -> D) of MiniLM token embeddings
           + modality embedding (frame / audio / text) + side embedding (q / c)
           + learned time embedding (frame index, second, token position: one table per modality)
  sequence [CLS] + q frames + q audio + q text + c frames + c audio + c text; padding masked as keys
  biases   in every layer, head h adds  w_v[h] * S_v  to the logits of the q-frame x c-frame block (and
           its transpose), S_v [B,Mq,Mc] the frames' cosine map (best pair of views), and  w_a[h] * A  to
           the q-audio x c-audio block, A [B,Sq,Sc] the pair's centred per-second audio agreement:
           the similarities the student's grid sees steer which tokens of the other video each attends to
  evidence the pair's summary [B,6] (EVIDENCE): the symmetric Chamfer similarity and the best cell of
           S_v, the best audio agreement and whether both have audio, the cosine of the two texts' mean
           tokens and whether both have text; an MLP of it is added to the pair representation, so
           retrieval's own measure enters the decision directly, not only through attention
  output   CLS state -> LayerNorm -> Linear (+ evidence MLP) -> embedding [B,E] -> main head [B,2]
           (+ aux heads [B,2])

With a background (config.background_frames), S_v is taken relative to each frame's background level
(rci.inference.layers.background_level), in the biases and the evidence alike.

Only the CLS row is read at the end and it has no pair bias, so the last layer's bias weights get no
gradient; they are kept so that every layer is alike (and a checkpoint's layout does not depend on depth).

Every row of attention keeps at least the CLS key, so a side without frames, audio or text still
gives finite outputs. In eval mode a pair's outputs do not depend on how far its batch was padded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rci.inference.layers import BackgroundFrames, background_level, chamfer_similarity, view_cosine_map
from rci.inference.matchlm.model import MatchLMOutput
from rci.inference.matchlmf.batch import MatchLMFBatch
from rci.inference.matchlmf.config import MatchLMFConfig
from rci.inference.matchlmf.layers import BiasedTransformerBlock, key_padding_bias, place_cross_block
from rci.media.fingerprint import BITS

MODALITIES = ("frames", "audio", "text")  # rows of the modality embedding, in sequence order per side
BIAS_MAPS = ("visual", "audio")  # channels of the pair maps, in the order of each block's map weights
EVIDENCE = ("chamfer", "best_frame", "best_audio", "both_audio", "text_cosine", "both_text")


class MatchLMF(BackgroundFrames, nn.Module):
    def __init__(self, config: MatchLMFConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.project = nn.ModuleDict({
            "frames": nn.Linear(config.visual_dim, d),
            "audio": nn.Linear(BITS, d),
            "text": nn.Linear(config.text_dim, d),
        })
        self.time = nn.ModuleDict({
            "frames": nn.Embedding(config.max_frames, d),
            "audio": nn.Embedding(config.max_audio_seconds, d),
            "text": nn.Embedding(config.text_tokens, d),
        })
        self.modality = nn.Embedding(len(MODALITIES), d)
        self.side = nn.Embedding(2, d)  # 0 = query, 1 = candidate
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            BiasedTransformerBlock(d, config.heads, config.ff_mult, len(BIAS_MAPS), config.dropout)
            for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(d)
        self.embed = nn.Linear(d, config.embedding_dim)
        self.evidence = nn.Sequential(nn.Linear(len(EVIDENCE), config.embedding_dim), nn.GELU(),
                                      nn.Linear(config.embedding_dim, config.embedding_dim))
        self.head = nn.Linear(config.embedding_dim, 2)
        self.aux_heads = nn.ModuleDict({name: nn.Linear(config.embedding_dim, 2) for name in config.aux_heads})
        self._init_embeddings()
        self._register_background()

    def _init_embeddings(self) -> None:
        # nn.Embedding's N(0, 1) would drown the projected features (Linear outputs are ~0.5 wide)
        for table in [self.modality, self.side, *self.time.values()]:
            nn.init.normal_(table.weight, std=0.02)
        nn.init.normal_(self.cls, std=0.02)

    def forward(self, batch: MatchLMFBatch) -> MatchLMOutput:
        self._check_lengths(batch)
        q_tokens, q_mask = self._side_tokens(batch, "q", 0)  # [B,Tq,D], [B,Tq]
        c_tokens, c_mask = self._side_tokens(batch, "c", 1)  # [B,Tc,D], [B,Tc]
        b = q_tokens.shape[0]
        x = torch.cat([self.cls.expand(b, -1, -1), q_tokens, c_tokens], dim=1)  # [B,T,D]
        mask = torch.cat([q_mask.new_ones(b, 1), q_mask, c_mask], dim=1)  # [B,T]: CLS always real
        s_v = self._frame_similarity(batch)  # [B,Mq,Mc], zero at padding
        maps = self._pair_maps(batch, s_v, x.shape[1]).to(x.dtype)  # [B,2,T,T]
        key_bias = key_padding_bias(mask).to(x.dtype)  # [B,1,1,T]
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, maps, key_bias)  # [B,T,D]
        evidence = pair_evidence(batch, s_v).to(x.dtype)  # [B,6]
        embedding = self.embed(self.norm(x[:, 0])) + self.evidence(evidence)  # [B,E]
        aux = {name: head(embedding) for name, head in self.aux_heads.items()}  # name -> [B,2]
        return MatchLMOutput(logits=self.head(embedding), embedding=embedding, aux_logits=aux)

    def _check_lengths(self, batch: MatchLMFBatch) -> None:
        cfg = self.config
        for side in ("q", "c"):
            m = getattr(batch, f"{side}_visual").shape[1]
            s = getattr(batch, f"{side}_audio").shape[1]
            n = getattr(batch, f"{side}_text").shape[1]
            if m > cfg.max_frames or s > cfg.max_audio_seconds or n > cfg.text_tokens:
                raise ValueError(f"{side} side has {m} frames / {s} s / {n} tokens, the model at most "
                                 f"{cfg.max_frames} / {cfg.max_audio_seconds} / {cfg.text_tokens} (build_batch clamps)")
        if batch.audio_map.shape[1:] != (batch.q_audio.shape[1], batch.c_audio.shape[1]):
            raise ValueError(f"audio_map {tuple(batch.audio_map.shape)} does not match the sides' seconds")

    def _side_tokens(self, batch: MatchLMFBatch, prefix: str, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One video's tokens [B, M+S+L, D] (frames, audio, text) and their mask [B, M+S+L] bool."""
        inputs = {
            "frames": _unit_views(getattr(batch, f"{prefix}_visual"), self.config.visual_views),  # [B,M,V*Dv]
            "audio": getattr(batch, f"{prefix}_audio"),  # [B,S,32]
            "text": getattr(batch, f"{prefix}_text"),  # [B,L,Dt]
        }
        masks = [getattr(batch, f"{prefix}_{name}_mask") for name in ("visual", "audio", "text")]
        side_vec = self.side.weight[side]  # [D]
        tokens = []
        for index, (name, values) in enumerate(inputs.items()):
            time = self.time[name].weight[: values.shape[1]]  # [len,D]
            tokens.append(self.project[name](values) + time + self.modality.weight[index] + side_vec)  # [B,len,D]
        return torch.cat(tokens, dim=1), torch.cat(masks, dim=1).bool()

    def _frame_similarity(self, batch: MatchLMFBatch) -> torch.Tensor:
        """[B,Mq,Mc] frame cosines (best pair of views), relative to the background when there is one;
        zero at padded cells."""
        q, c, views = batch.q_visual.float(), batch.c_visual.float(), self.config.visual_views
        s_v = view_cosine_map(q, c, views)  # [B,Mq,Mc]
        if self.config.background_frames:
            top = self.config.background_topk
            level = 0.5 * (background_level(q, self.background, views, top)[:, :, None]
                           + background_level(c, self.background, views, top)[:, None, :])  # fmt: skip
            s_v = s_v - level
        return s_v * _frame_grid(batch)

    def _pair_maps(self, batch: MatchLMFBatch, s_v: torch.Tensor, total: int) -> torch.Tensor:
        """[B,2,T,T]: channel 0 the frame similarity map s_v in the q-frame x c-frame block (and its
        transpose), channel 1 the audio map in the q-audio x c-audio block; zero elsewhere, padding included."""
        q_frames, c_frames = batch.q_visual.shape[1], batch.c_visual.shape[1]
        q_len = q_frames + batch.q_audio.shape[1] + batch.q_text.shape[1]
        q_start, c_start = 1, 1 + q_len  # CLS is token 0
        audio_valid = batch.q_audio_mask[:, :, None] & batch.c_audio_mask[:, None, :]  # [B,Sq,Sc]
        maps = batch.q_visual.new_zeros(len(batch), len(BIAS_MAPS), total, total, dtype=torch.float32)
        place_cross_block(maps[:, 0], s_v, q_start, c_start)
        place_cross_block(maps[:, 1], batch.audio_map.float() * audio_valid, q_start + q_frames, c_start + c_frames)
        return maps


def _frame_grid(batch: MatchLMFBatch) -> torch.Tensor:
    """[B,Mq,Mc] float: 1 where both frames are real."""
    return (batch.q_visual_mask[:, :, None] & batch.c_visual_mask[:, None, :]).float()


def pair_evidence(batch: MatchLMFBatch, s_v: torch.Tensor) -> torch.Tensor:
    """[B,6] the pair's summary in EVIDENCE order; 0 for what a pair lacks (no frames, audio or text)."""
    grid = _frame_grid(batch)  # [B,Mq,Mc]
    chamfer = chamfer_similarity(s_v, grid)  # [B]
    best_frame = s_v.masked_fill(grid == 0, -2.0).amax(dim=(1, 2)) * grid.amax(dim=(1, 2))  # [B]
    audio_grid = (batch.q_audio_mask[:, :, None] & batch.c_audio_mask[:, None, :]).float()  # [B,Sq,Sc]
    both_audio = audio_grid.amax(dim=(1, 2))  # [B]
    best_audio = batch.audio_map.float().masked_fill(audio_grid == 0, -2.0).amax(dim=(1, 2)) * both_audio
    both_text = (batch.q_text_mask.any(dim=1) & batch.c_text_mask.any(dim=1)).float()  # [B]
    text_cosine = F.cosine_similarity(_masked_mean(batch.q_text, batch.q_text_mask),
                                      _masked_mean(batch.c_text, batch.c_text_mask), dim=-1, eps=1e-6) * both_text
    return torch.stack([chamfer, best_frame, best_audio, both_audio, text_cosine, both_text], dim=-1)


def _masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B,L,d], [B,L] -> [B,d] mean of the real tokens (0 without any)."""
    weights = mask.float()[..., None]  # [B,L,1]
    return (tokens.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _unit_views(frames: torch.Tensor, views: int) -> torch.Tensor:
    """[B,M,V*Dv] -> same shape, each view L2-normalised (zero rows stay zero): descriptors are compared
    by direction (SSCD is trained for cosine), so their norm, which varies by encoder, carries nothing."""
    return torch.cat([F.normalize(v, dim=-1, eps=1e-6) for v in frames.chunk(views, dim=-1)], dim=-1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
