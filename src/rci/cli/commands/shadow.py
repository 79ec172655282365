"""`rci shadow`: re-score a sample of rci.scores with the teacher, write rci.shadow."""

from __future__ import annotations

import typer

from rci.cli.context import settings_from_env


def shadow() -> None:
    """Run the shadow consumer (its own consumer group on rci.scores) until SIGTERM.

    Samples RCI_SHADOW_SAMPLE_RATE of the scored pairs (by a hash of video_id), scores them with the
    teacher: the feature-level MatchLMF in <RCI_MODEL_DIR>/matchlmf/ when installed (`rci teacher`; it
    reads the features the worker stored), else MatchLM in <RCI_MODEL_DIR>/matchlm/ (it decodes the media);
    writes rci.shadow and serves agreement metrics on RCI_METRICS_HOST:RCI_METRICS_PORT. Every setting
    comes from RCI_* variables.
    """
    from rci.streams.shadow.service import run_shadow

    code = run_shadow(settings_from_env())
    raise typer.Exit(code)
