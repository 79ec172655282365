"""What the serving parts check when they open (rci.streams.components)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rci.core.errors import ModelError
from rci.inference.features import FeatureSpec
from rci.inference.matchlite import MatchLiteConfig
from rci.streams.components import check_model_fits

TWO_VIEWS = FeatureSpec(visual_dim=1024, visual_views=2, audio_dim=768, text_dim=384)


def test_a_matchlite_built_for_the_features_is_served() -> None:
    check_model_fits(MatchLiteConfig.small(**TWO_VIEWS.widths()), TWO_VIEWS, Path("models"))


@pytest.mark.parametrize("built_for", [
    {"visual_dim": 1024, "visual_views": 1, "audio_dim": 768, "text_dim": 384},  # the same width, one view
    {"visual_dim": 512, "visual_views": 1, "audio_dim": 768, "text_dim": 384},  # the encoder before the whole frame
])  # fmt: skip
def test_a_matchlite_built_for_other_features_is_refused_at_start(built_for: dict[str, int]) -> None:
    with pytest.raises(ModelError, match="does not fit the encoders' features"):
        check_model_fits(MatchLiteConfig.small(**built_for), TWO_VIEWS, Path("models"))
