"""MatchLMF hyper-parameters: what a checkpoint stores next to the weights.

The feature widths (view_dim, visual_views, text_dim) must equal those of the VideoFeatures the
model reads (build_batch checks them); the lengths are the largest inputs the learned time
embeddings cover, and build_batch clamps longer videos to them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# Fields that must be positive integers (dropout is checked on its own).
_POSITIVE = ("view_dim", "visual_views", "text_dim", "d_model", "layers", "heads", "ff_mult", "max_frames",
             "text_tokens", "max_audio_seconds", "embedding_dim", "background_topk")


@dataclass(frozen=True)
class MatchLMFConfig:
    # features: one frame holds visual_views descriptors of view_dim side by side (SSCD: centre | whole frame)
    view_dim: int = 512
    visual_views: int = 2
    text_dim: int = 384  # MiniLM token embeddings
    # the joint transformer over both videos' tokens
    d_model: int = 256
    layers: int = 6
    heads: int = 8
    ff_mult: int = 4
    dropout: float = 0.1
    # longest inputs (learned time embeddings): frames at 1 fps, text tokens, seconds of audio
    max_frames: int = 32
    text_tokens: int = 64
    max_audio_seconds: int = 64
    # SSCD's score normalisation, as MatchLite's (rci.inference.matchlite): frame cosines taken relative to
    # each frame's likeness to a background set of unrelated frames (a buffer of `background_frames` rows,
    # set_background; 0 = raw cosines), so an unrelated real pair reads ~0 as an unrelated generated one does
    background_frames: int = 0
    background_topk: int = 8
    # pair representation and heads
    embedding_dim: int = 256
    aux_heads: tuple[str, ...] = ("visual", "audio", "text")  # training-only heads

    def __post_init__(self) -> None:
        for name in _POSITIVE:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"MatchLMFConfig.{name} must be a positive int, got {value!r}")
        if self.d_model % self.heads:
            raise ValueError(f"MatchLMFConfig.d_model {self.d_model} must be divisible by heads {self.heads}")
        if self.background_frames < 0:
            raise ValueError(f"MatchLMFConfig.background_frames must be >= 0, got {self.background_frames!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MatchLMFConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if len(set(self.aux_heads)) != len(self.aux_heads):
            raise ValueError(f"MatchLMFConfig.aux_heads has duplicates: {self.aux_heads}")

    @property
    def visual_dim(self) -> int:
        """Width of one frame's row in VideoFeatures.visual: all views side by side."""
        return self.view_dim * self.visual_views

    @classmethod
    def tiny(cls, **overrides: object) -> MatchLMFConfig:
        """Same structure, CPU-sized, no dropout: for tests and demos (feature widths stay unless overridden)."""
        return cls(**{"d_model": 32, "layers": 2, "heads": 4, "embedding_dim": 32, "dropout": 0.0, **overrides})

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: tuples become lists (from_dict turns them back)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> MatchLMFConfig:
        """Inverse of to_dict; a key this version does not know is an error (a checkpoint of another model
        or a newer version), never silently dropped. Missing keys take their defaults."""
        names = {f.name for f in fields(cls)}
        if extra := sorted(set(data) - names):
            raise ValueError(f"not MatchLMFConfig fields: {extra} (a checkpoint of another model or version?)")
        values = dict(data)
        if "aux_heads" in values:
            values["aux_heads"] = tuple(values["aux_heads"])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]
