"""benchmarks.bench_modalities' tables: each subset compared on its own pairs, the deciding modality's variant
against the visual-only one. (The whole run renders a set and trains four models: a benchmark, not a test.)"""

from __future__ import annotations

import re

import numpy as np

from benchmarks import bench_modalities
from rci.training.realset.modalities import AUDIO_SUBSET, TEXT_SUBSET


def test_a_variant_that_separates_only_its_own_subset_wins_only_there():
    rng = np.random.default_rng(0)
    labels = np.tile(np.repeat([1, 0], 60), 2)
    subsets = np.repeat([AUDIO_SUBSET, TEXT_SUBSET], 120)
    blind = rng.random(240)  # the picture is the same on both sides: no variant without the modality can tell
    knows = np.where(labels == 1, 0.9, 0.1) + 0.01 * rng.random(240)
    audio_only = np.where(subsets == AUDIO_SUBSET, knows, blind)
    text_only = np.where(subsets == TEXT_SUBSET, knows, blind)
    scores = {"V": blind, "V+A": audio_only, "V+T": text_only, "V+A+T": knows}
    per_variant, rows = bench_modalities.tables(scores, labels, subsets)
    assert "| audio_dependent | V+A | 100.0 |" in per_variant
    found = {(subset, comparison, metric): cell for subset, comparison, metric, _, _, cell in rows}
    assert set(found) == {(s, c, m) for s, c in ((AUDIO_SUBSET, "V+A vs V"), (AUDIO_SUBSET, "V+A+T vs V"),
                                                 (TEXT_SUBSET, "V+T vs V"), (TEXT_SUBSET, "V+A+T vs V"))
                          for m in ("AP", "R@P80")}  # fmt: skip
    for cell in found.values():  # each comparison is on the subset its modality decides: a clear gain
        low = float(re.fullmatch(r"[+-][0-9.]+ \[([+-][0-9.]+), [+-][0-9.]+\]", cell).group(1))
        assert low > 0, cell
