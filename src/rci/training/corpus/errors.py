"""Errors of the corpus generator, on the project's `RCIError` tree."""

from __future__ import annotations

from rci.core.errors import RCIError


class CorpusError(RCIError):
    """The corpus cannot be generated: bad parameters, a missing tool, or a failed render."""


class ReservedMediaError(CorpusError):
    """An image belongs to a package reserved for held-out evaluation and must never enter a training corpus."""


class RenderError(CorpusError):
    """An external tool (ffmpeg, espeak-ng) failed on one video; the message ends with its stderr."""
