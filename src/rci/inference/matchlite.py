"""MatchLite: the compact student that scores a (query, candidate) video pair (paper 3.3, Alg. 1, A.1).

Shapes: B pairs, M query frames, N candidate frames, Lq/Lc text tokens, H = bixt_hidden,
C = fusion_channels. Frames and tokens are zero padded and masked; every padded grid cell is
kept at exactly zero through the 2-D stack (see src/rci/inference/layers.py), so a pair's score does not
depend on how far its batch was padded.

  1. Multimodal perception (per video, weights shared by query and candidate):
       [f^vt, f^tv] = BiXT(v <-> t),  [f^va, f^av] = BiXT(v <-> a)
  2. Paired feature fusion on one M x N grid:
       E^m = ResBlockConv(D^m), D^m[i,j] = concat(f_q^m[i], f_c^m[j])   for m in v, va, vt
       S^m = cosine maps for all 7 modalities, brought to M x N:
         v, va, vt   frame x frame cosine.
         a           audio_source "fingerprint" (default): the Chromaprint per-second agreement map of the
                     pair (an input, `audio_map`, computed by the collate from the two fingerprints;
                     rci.media.fingerprint.second_similarity), which tolerates offsets and trims.
         a, av       audio_source "embedding" (a Whisper clip vector per video, for users with Whisper
                     weights): one token per video, the single cosine broadcast over the valid cells,
                     and the va map from BiXT(v <-> a).
         t, tv       token x token cosine S_tok [Lq,Lc] pooled through the frames' attention over
                     their own text from BiXT(v <-> t): S[i,j] = p_q[i] . S_tok . p_c[j], where p_x[i]
                     is frame i's (head-mean) attention distribution over video x's text tokens.
       plus one presence channel per optional modality (1 where both videos have audio / text), so
       the network can tell "missing" from "dissimilar" (maps of a missing modality are zeroed).
  3. Compact decision: concat(E, S, presence) -> ResNet-34 (first conv takes that channel count)
       -> masked average pool -> z (student embedding for L_emb) -> main head (2 logits) + aux heads.

A pair where a video has no frames at all (audio-only) has an empty grid: z = 0 and the score is
the model's prior. Retrieval is visual, so such pairs are rare.

`use_audio` / `use_text` switch modalities off for the V, V+A, V+T, V+A+T ablations (paper Table 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from rci.inference.features import FeatureSpec
from rci.inference.layers import (
    BackgroundFrames,
    BiXTBlock,
    ResBlockConv,
    ResNetTrunk,
    background_level,
    chamfer_similarity,
    cosine_map,
    view_cosine_map,
)

# Input tensors of a batch of pairs, in the order of the ONNX graph inputs.
# Per side x in {q, c}: visual [B,M,Dv] f32, visual_mask [B,M] bool, audio [B,Da] f32,
# has_audio [B] bool, text [B,L,Dt] f32, text_mask [B,L] bool. Per pair: audio_map [B,M,N] f32.
# An input the configuration does not use is pruned from the ONNX graph (runtime passes only used ones).
VIDEO_INPUTS = ("visual", "visual_mask", "audio", "has_audio", "text", "text_mask")
PAIR_INPUTS = ("audio_map",)
INPUT_NAMES = tuple(f"{side}_{name}" for side in ("q", "c") for name in VIDEO_INPUTS) + PAIR_INPUTS
AUDIO_SOURCES = ("fingerprint", "embedding")


@dataclass(frozen=True)
class MatchLiteConfig:
    """Hyper-parameters; saved inside every checkpoint and ONNX file."""

    # feature widths and lengths: must equal the FeatureSpec the encoders produce
    visual_dim: int = 128
    visual_views: int = 1  # views of each frame side by side in visual_dim; S^v is their best pair (view_cosine_map)
    audio_dim: int = 768
    text_dim: int = 384
    max_frames: int = 32  # largest M / N accepted
    text_tokens: int = 64  # largest L accepted
    # modalities (ablations: V, V+A, V+T, V+A+T)
    use_audio: bool = True
    use_text: bool = True
    audio_source: str = "fingerprint"  # "fingerprint" (Chromaprint map, input audio_map) or "embedding"
    # True: the paper's model (E maps from the concatenated features, BiXT perception). False: the
    # decision sees only similarity maps (S^v, the audio map, the text cosine), never the features
    # themselves, so it cannot learn what its training pictures look like, only how copies align.
    pair_features: bool = True
    # SSCD's score normalisation (Pizzi et al. 2022): frame cosines are taken relative to how alike each
    # frame is to a background set of unrelated frames (a buffer of `background_frames` rows, set from
    # training media by `set_background`; 0 = raw cosines). Real photographs are all somewhat alike under
    # SSCD (unrelated pairs ~0.3), procedural frames far less: relative to a background, an unrelated pair
    # reads ~0 on either, so what the model learned on generated media carries to real uploads.
    background_frames: int = 0
    background_topk: int = 8  # a frame's background level: the mean of its top-k background cosines
    # The served score: sigmoid(a * clamp(logit_1 - logit_0, +-margin_limit) + b * chamfer + c), chamfer =
    # the symmetric Chamfer similarity of the two videos' frames (retrieval's own measure; raw, or relative
    # to the background with relative_chamfer). (1, 0, 0)
    # is the plain softmax (a margin past 20 is "sure", not "surer"); rci.training.calibration fits
    # (a, b, c) on validation pairs after training, so that the frame-set evidence, which carries to any
    # media, keeps its weight where the head has not learned it.
    calibration: tuple[float, float, float] = (1.0, 0.0, 0.0)
    # How far the head's margin may move the served score. A head trained on a generated corpus is often
    # sure and wrong on real media (hard copies with margins of -15 where SSCD's frame-set similarity says
    # copy): the serving recipe limits it to +-2 logits (88% sure), a bounded vote beside the similarity.
    margin_limit: float = 20.0
    # The calibration's frame-set similarity taken relative to the background (as the head's own maps are;
    # needs background_frames): unrelated real photographs read ~0.3 raw but ~0 relative, as generated
    # frames do, so a calibration fitted on generated validation pairs carries to real uploads.
    relative_chamfer: bool = False
    # multimodal perception
    bixt_heads: int = 8
    bixt_hidden: int = 64
    bixt_mlp_ratio: int = 4
    # paired feature fusion
    fusion_channels: int = 64  # C: ResBlockConv width per visual modality
    # compact decision: ResNet-34 by default
    resnet_layers: tuple[int, ...] = (3, 4, 6, 3)
    resnet_widths: tuple[int, ...] = (64, 128, 256, 512)
    aux_heads: tuple[str, ...] = ("visual", "audio", "text")  # training-only heads
    dropout: float = 0.1

    @classmethod
    def paper(cls, **overrides: object) -> MatchLiteConfig:
        """Appendix A.1: 8-head BiXT with hidden 64, ResNet-34."""
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides: object) -> MatchLiteConfig:
        """Same structure, narrow and shallow: for CPU tests and demos."""
        base = dict(
            bixt_heads=2,
            bixt_hidden=16,
            bixt_mlp_ratio=2,
            fusion_channels=8,
            resnet_layers=(1, 1, 1, 1),
            resnet_widths=(8, 16, 32, 32),
        )
        return cls(**{**base, **overrides})

    def __post_init__(self) -> None:
        if self.audio_source not in AUDIO_SOURCES:
            raise ValueError(f"audio_source must be one of {AUDIO_SOURCES}, not {self.audio_source!r}")

    @property
    def audio_tokens(self) -> bool:
        """Audio enters as one vector per video through BiXT (else as the pair's fingerprint map)."""
        return self.pair_features and self.use_audio and self.audio_source == "embedding"

    @property
    def modalities(self) -> tuple[str, ...]:
        """The similarity maps the model computes, in channel order."""
        if not self.pair_features:  # "vc": S^v's symmetric Chamfer similarity, broadcast over the grid
            return ("v", "vc") + (("a",) if self.use_audio else ()) + (("t",) if self.use_text else ())
        names = ["v"]
        if self.audio_tokens:
            names += ["va", "a", "av"]
        elif self.use_audio:
            names += ["a"]
        if self.use_text:
            names += ["vt", "t", "tv"]
        return tuple(names)

    @property
    def fused_channels(self) -> int:
        """Channels entering the ResNet stem: E maps + S maps + presence flags."""
        enhanced = (1 + int(self.audio_tokens) + int(self.use_text)) if self.pair_features else 0
        presence = int(self.use_audio) + int(self.use_text)
        return enhanced * self.fusion_channels + len(self.modalities) + presence

    @property
    def embedding_dim(self) -> int:
        return self.resnet_widths[-1]

    def check_spec(self, spec: FeatureSpec) -> None:
        """Raise ValueError when the features' widths differ from what the model was built for."""
        for name in ("visual_dim", "visual_views", "audio_dim", "text_dim"):
            if getattr(spec, name) != getattr(self, name):
                raise ValueError(f"{name}: features have {getattr(spec, name)}, model expects {getattr(self, name)}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> MatchLiteConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown MatchLiteConfig fields: {sorted(unknown)}")
        tuples = {"resnet_layers", "resnet_widths", "aux_heads", "calibration"}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


@dataclass
class MatchLiteOutput:
    logits: torch.Tensor  # [B,2] main RCI head (index 1 = reproduced), what training's losses see
    aux_logits: dict[str, torch.Tensor]  # name -> [B,2], training only
    embedding: torch.Tensor  # [B,d] pooled z, the student embedding of L_emb
    visual_similarity: torch.Tensor  # [B,M,N] S^v, zero on padded cells (evidence)
    score_logit: torch.Tensor  # [B] the calibrated logit (MatchLiteConfig.calibration)

    @property
    def score(self) -> torch.Tensor:
        """[B] probability that the query reproduces the candidate (calibrated)."""
        return torch.sigmoid(self.score_logit)


@dataclass
class _VideoStreams:
    """One side's per-modality features after multimodal perception."""

    v: torch.Tensor  # [B,M,Dv]
    frame_mask: torch.Tensor  # [B,M] bool
    va: torch.Tensor | None = None  # [B,M,H]
    a: torch.Tensor | None = None  # [B,Da]
    av: torch.Tensor | None = None  # [B,H]
    has_audio: torch.Tensor | None = None  # [B] bool
    vt: torch.Tensor | None = None  # [B,M,H]
    t: torch.Tensor | None = None  # [B,L,Dt]
    tv: torch.Tensor | None = None  # [B,L,H]
    frame_to_text: torch.Tensor | None = None  # [B,M,L] head-mean attention of frames over text
    has_text: torch.Tensor | None = None  # [B] bool


class MatchLite(BackgroundFrames, nn.Module):
    def __init__(self, config: MatchLiteConfig) -> None:
        super().__init__()
        self.config = config
        h = config.bixt_hidden
        bixt = dict(hidden=h, heads=config.bixt_heads, mlp_ratio=config.bixt_mlp_ratio, dropout=config.dropout)
        self.bixt_va = BiXTBlock(config.visual_dim, config.audio_dim, **bixt) if config.audio_tokens else None
        text_tokens = config.pair_features and config.use_text
        self.bixt_vt = BiXTBlock(config.visual_dim, config.text_dim, **bixt) if text_tokens else None
        c = config.fusion_channels
        self.enhance_v = ResBlockConv(config.visual_dim, c) if config.pair_features else None
        self.enhance_va = ResBlockConv(h, c) if config.audio_tokens else None
        self.enhance_vt = ResBlockConv(h, c) if text_tokens else None
        self.trunk = ResNetTrunk(config.fused_channels, config.resnet_layers, config.resnet_widths)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.embedding_dim, 2)
        self.aux_heads = nn.ModuleDict({name: nn.Linear(config.embedding_dim, 2) for name in config.aux_heads})
        self._register_background()

    def _relative(self, q: _VideoStreams, c: _VideoStreams, s_v: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """[B,M,N] frame similarities relative to each frame's background level (raw without a background)."""
        if not self.config.background_frames:
            return s_v
        level = 0.5 * (self._background_level(q.v)[:, :, None] + self._background_level(c.v)[:, None, :])
        return (s_v - level) * grid  # [B,M,N]

    def _background_level(self, v: torch.Tensor) -> torch.Tensor:
        """[B,M,Dv] -> [B,M] mean of each frame's top-k cosines with the background set."""
        return background_level(v, self.background, self.config.visual_views, self.config.background_topk)

    # --- 1. multimodal perception -----------------------------------------------------------

    def perceive(
        self,
        visual: torch.Tensor,  # [B,M,Dv]
        visual_mask: torch.Tensor,  # [B,M] bool
        audio: torch.Tensor,  # [B,Da]
        has_audio: torch.Tensor,  # [B] bool
        text: torch.Tensor,  # [B,L,Dt]
        text_mask: torch.Tensor,  # [B,L] bool
    ) -> _VideoStreams:
        out = _VideoStreams(v=visual, frame_mask=visual_mask, has_audio=has_audio, a=audio)
        if self.bixt_va is not None:
            audio_tokens = audio[:, None, :]  # [B,1,Da]
            va, av, _ = self.bixt_va(visual, visual_mask, audio_tokens, has_audio[:, None])
            out.va, out.av = va, av[:, 0]  # av: [B,H]
        if self.bixt_vt is not None:
            vt, tv, frame_to_text = self.bixt_vt(visual, visual_mask, text, text_mask)
            out.vt, out.t, out.tv, out.frame_to_text = vt, text, tv, frame_to_text
        elif self.config.use_text:  # similarity maps only: the masked mean of the token embeddings
            weights = text_mask.to(text.dtype)[..., None]  # [B,L,1]
            out.t = (text * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # [B,Dt]
        out.has_text = text_mask.any(dim=-1)
        return out

    # --- 2. paired feature fusion -------------------------------------------------------------

    def fuse(
        self, q: _VideoStreams, c: _VideoStreams, audio_map: torch.Tensor | None = None  # [B,M,N]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> fused F [B,Cf,M,N], grid mask [B,1,M,N], visual similarity S^v [B,M,N]."""
        dtype = q.v.dtype
        grid = (q.frame_mask[:, :, None] & c.frame_mask[:, None, :]).to(dtype)  # [B,M,N]
        mask = grid[:, None]  # [B,1,M,N]

        enhanced = [self.enhance_v(q.v, c.v, mask)] if self.enhance_v is not None else []  # each [B,C,M,N]
        s_v = view_cosine_map(q.v, c.v, self.config.visual_views) * grid  # [B,M,N], raw: segments are found on it
        s_rel = self._relative(q, c, s_v, grid)
        maps = [s_rel]  # each [B,M,N], order = config.modalities
        if not self.config.pair_features:
            maps.append(chamfer_similarity(s_rel, grid)[:, None, None] * grid)
        presence = []
        if self.bixt_va is not None:
            both = (q.has_audio & c.has_audio).to(dtype)[:, None, None]  # [B,1,1]
            enhanced.append(self.enhance_va(q.va, c.va, mask))
            maps.append(cosine_map(q.va, c.va) * grid)
            maps.append(_token_cosine(q.a, c.a) * grid * both)  # broadcast the single audio cosine
            maps.append(_token_cosine(q.av, c.av) * grid * both)
            presence.append(grid * both)
        elif self.config.use_audio:
            both = (q.has_audio & c.has_audio).to(dtype)[:, None, None]  # [B,1,1]
            if self.config.audio_source == "embedding":
                maps.append(_token_cosine(q.a, c.a) * grid * both)
            elif audio_map is None:
                raise ValueError("audio_source 'fingerprint' needs the audio_map input")
            else:
                maps.append(audio_map.to(dtype) * grid * both)
            presence.append(grid * both)
        if self.bixt_vt is not None:
            both = (q.has_text & c.has_text).to(dtype)[:, None, None]  # [B,1,1]
            enhanced.append(self.enhance_vt(q.vt, c.vt, mask))
            maps.append(cosine_map(q.vt, c.vt) * grid)
            maps.append(_text_on_grid(q.t, c.t, q.frame_to_text, c.frame_to_text) * grid * both)
            maps.append(_text_on_grid(q.tv, c.tv, q.frame_to_text, c.frame_to_text) * grid * both)
            presence.append(grid * both)
        elif self.config.use_text:
            both = (q.has_text & c.has_text).to(dtype)[:, None, None]  # [B,1,1]
            maps.append(_token_cosine(q.t, c.t) * grid * both)  # one title+sticker cosine, broadcast
            presence.append(grid * both)
        fused = torch.cat([*enhanced, torch.stack(maps + presence, dim=1)], dim=1)  # [B,Cf,M,N]
        return fused, mask, s_v

    # --- 3. compact decision ------------------------------------------------------------------

    def forward(self, inputs: dict[str, torch.Tensor]) -> MatchLiteOutput:
        """inputs: the tensors named in INPUT_NAMES (see `rci.inference.runtime.collate_pairs`)."""
        q = self.perceive(*(inputs[f"q_{name}"] for name in VIDEO_INPUTS))
        c = self.perceive(*(inputs[f"c_{name}"] for name in VIDEO_INPUTS))
        fused, mask, s_v = self.fuse(q, c, inputs.get("audio_map"))
        z = self.trunk(fused, mask)  # [B,d]
        zd = self.dropout(z)
        logits = self.head(zd)  # [B,2]
        a, b, bias = self.config.calibration  # (`c` is the candidate's streams)
        limit = self.config.margin_limit
        score_logit = a * (logits[:, 1] - logits[:, 0]).clamp(-limit, limit) + bias  # [B]; saturated = sure, no more
        if b:
            s = self._relative(q, c, s_v, mask[:, 0]) if self.config.relative_chamfer else s_v  # [B,M,N]
            score_logit = score_logit + b * chamfer_similarity(s, mask[:, 0])
        return MatchLiteOutput(
            logits=logits,
            aux_logits={name: head(zd) for name, head in self.aux_heads.items()},
            embedding=z,
            visual_similarity=s_v,
            score_logit=score_logit,
        )


def _token_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[B,d], [B,d] -> [B,1,1] cosine of one token per video, ready to broadcast over the grid."""
    return cosine_map(a[:, None, :], b[:, None, :])


def _text_on_grid(
    t_q: torch.Tensor,  # [B,Lq,d]
    t_c: torch.Tensor,  # [B,Lc,d]
    p_q: torch.Tensor,  # [B,M,Lq] frame -> own text attention
    p_c: torch.Tensor,  # [B,N,Lc]
) -> torch.Tensor:
    """Token x token cosine pooled through each frame's attention over its text -> [B,M,N]."""
    s_tok = cosine_map(t_q, t_c)  # [B,Lq,Lc]
    return p_q @ s_tok @ p_c.transpose(1, 2)  # [B,M,N]


def count_parameters(model: nn.Module, include_aux: bool = False) -> int:
    """Parameters used at inference (aux heads excluded unless asked)."""
    return sum(
        p.numel() for name, p in model.named_parameters() if include_aux or not name.startswith("aux_heads.")
    )
