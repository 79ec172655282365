"""A tiny real corpus, rendered once per session (twice, for the determinism test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rci.training.corpus.generate import make_corpus
from rci.training.corpus.manifest import CorpusManifest

TINY = {"n_sources": 4, "seed": 11, "min_duration_s": 2.5, "max_duration_s": 4.0, "photo_share": 0.5,
        "workers": 2, "progress": False}


def _make(root: Path) -> CorpusManifest:
    return make_corpus(root, **TINY)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> CorpusManifest:
    return _make(tmp_path_factory.mktemp("corpus_a"))


@pytest.fixture(scope="session")
def tiny_corpus_again(tmp_path_factory: pytest.TempPathFactory) -> CorpusManifest:
    return _make(tmp_path_factory.mktemp("corpus_b"))
