"""The CLI's typed choices are exactly the values the library takes."""

from __future__ import annotations

import typing

from rci.cli.choices import Backbone, Device, ModelKind, ModelSize, Variant
from rci.core.settings import Settings


def test_variants_are_the_training_variants() -> None:
    from rci.training.stage1 import VARIANTS

    assert [v.value for v in Variant] == list(VARIANTS)


def test_devices_are_the_settings_devices() -> None:
    assert {d.value for d in Device} == set(typing.get_args(Settings.model_fields["device"].annotation))


def test_sizes_backbones_and_kinds() -> None:
    from rci.inference.encoders.bundle import Size
    from rci.training import runs

    assert {s.value for s in ModelSize} == set(typing.get_args(Size))
    assert {b.value for b in Backbone} == set(typing.get_args(runs.Backbone))
    assert {k.value for k in ModelKind} == {"matchlite", "matchlm"}
