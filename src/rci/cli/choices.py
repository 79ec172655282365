"""Typed choices of the CLI's options: `--help` lists them (`<small|paper>`) and click refuses anything else.

Kept here, free of heavy imports, so `rci --help` stays quick; tests check each against the
values the library takes (rci.training.stage1.VARIANTS, the settings' device).
"""

from __future__ import annotations

from enum import StrEnum


class ModelSize(StrEnum):
    SMALL = "small"  # CPU demos and tests
    PAPER = "paper"  # the paper's sizes (appendix A.1)


class ModelKind(StrEnum):
    MATCHLITE = "matchlite"  # the student
    MATCHLM = "matchlm"  # the teacher


class Variant(StrEnum):
    """MatchLite's modality variants (paper Table 2)."""

    V = "V"
    VA = "V+A"
    VT = "V+T"
    VAT = "V+A+T"


class Backbone(StrEnum):
    LORA = "lora"  # adapters, audio fusion and heads train
    FULL = "full"  # the backbone trains too


class Device(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
