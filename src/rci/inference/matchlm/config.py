"""MatchLM hyper-parameters: what the checkpoint stores next to its weights.

The backbone's own shape (SigLIP, Qwen2, projector) lives in the LLaVA-OneVision `config.json`
of the model directory; this dataclass holds everything MatchLM adds on top of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

from rci.inference.matchlm.frames import Allocation

Objective = Literal["head", "ntp"]
AudioFusion = Literal["early", "late", "none"]

LM_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_INSTRUCTION = (
    "Decide whether Video 1 reproduces Video 2: a copy of it with trims, crops, filters, "
    "re-edits or re-voicing. Use the frames, the audio and the text of both videos."
)


@dataclass(frozen=True)
class MatchLMConfig:
    # ablations (paper Table 3): last-token head vs next-token multiple choice; early vs late audio
    objective: Objective = "head"
    audio_fusion: AudioFusion = "early"
    # frames: one budget for the pair, split dynamically (appendix A.2)
    frame_allocation: Allocation = "dynamic"
    frame_budget: int = 32
    min_frames: int = 4
    # audio: Whisper encoder width (768 for whisper-small)
    audio_dim: int = 768
    # text: title + sticker text of each video, truncated (as for MatchLite's text features)
    max_text_tokens: int = 64
    instruction: str = DEFAULT_INSTRUCTION
    audio_token: str = "<audio>"
    ntp_choices: tuple[str, str] = ("A", "B")  # "A) Normal B) Reproduced" (appendix B.1)
    # classification head: shared projection -> main RCI head (2-way) + auxiliary heads
    proj_dim: int = 512
    aux_heads: tuple[str, ...] = ("visual", "audio", "text")
    dropout: float = 0.1
    late_audio_dim: int = 128  # width of the late-fusion audio vector
    # LoRA on the LM's attention and MLP projections (appendix D.2)
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = LM_PROJECTIONS

    def __post_init__(self) -> None:
        if self.objective not in ("head", "ntp"):
            raise ValueError(f"objective must be 'head' or 'ntp', got {self.objective!r}")
        if self.audio_fusion not in ("early", "late", "none"):
            raise ValueError(f"audio_fusion must be 'early', 'late' or 'none', got {self.audio_fusion!r}")
        if self.objective == "ntp" and self.audio_fusion == "late":
            raise ValueError("late audio fusion feeds the head; the NTP objective has none")
        if self.frame_allocation not in ("dynamic", "static"):
            raise ValueError(f"frame_allocation must be 'dynamic' or 'static', got {self.frame_allocation!r}")
        if self.frame_budget < 2 or not 0 <= 2 * self.min_frames <= self.frame_budget:
            raise ValueError(f"need frame_budget >= 2 and 2 * min_frames <= frame_budget, got {self}")
        if self.lora_r < 0 or len(self.ntp_choices) != 2:
            raise ValueError("lora_r must be >= 0 and ntp_choices must hold two options")

    @classmethod
    def tiny(cls, **overrides: object) -> MatchLMConfig:
        """Same structure, CPU-sized: for tests and demos (pairs with build_tiny_matchlm)."""
        base = dict(frame_budget=8, min_frames=2, audio_dim=32, max_text_tokens=16, proj_dim=32,
                    late_audio_dim=16, lora_r=4, lora_alpha=8, dropout=0.0)
        return cls(**{**base, **overrides})

    @property
    def uses_audio_slot(self) -> bool:
        return self.audio_fusion == "early"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> MatchLMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown MatchLMConfig fields: {sorted(unknown)}")
        tuples = {"ntp_choices", "aux_heads", "lora_targets"}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})
