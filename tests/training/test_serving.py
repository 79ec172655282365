"""The serving recipe's implied training pairs, on a tiny real corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.corpus.generate import make_corpus
from training.corpus.manifest import CorpusManifest
from training.data import read_examples
from training.serving import implied_examples


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CorpusManifest:
    return make_corpus(tmp_path_factory.mktemp("serving-corpus"), n_sources=4, seed=3, min_duration_s=2.5,
                       max_duration_s=3.0, workers=1, progress=False)  # fmt: skip


def test_implied_pairs_extend_the_labelled_ones_without_changing_them(corpus: CorpusManifest) -> None:
    base = read_examples(corpus, "train")
    examples = implied_examples(corpus, "train", seed=1)
    assert examples[: len(base)] == base
    implied = examples[len(base) :]
    assert {ex.subset for ex in implied} <= {"implied_positive", "implied_unrelated"}
    published = {e.video_id: e.published_at for e in corpus.events}
    copies_of: dict[str, set[str]] = {}
    for ex in base:
        if ex.label == 1:
            copies_of.setdefault(ex.candidate_id, set()).add(ex.query_id)
    for ex in implied:
        assert published[ex.candidate_id] < published[ex.query_id], "the candidate must be the earlier video"
        assert ex.split == "train"
        if ex.label == 1:  # both reproduce one source
            assert any({ex.query_id, ex.candidate_id} <= copies for copies in copies_of.values())
            assert ex.aux == {"visual": 1, "audio": None, "text": None}
        else:  # different source families
            assert corpus.videos[ex.query_id].source_id != corpus.videos[ex.candidate_id].source_id
    positives = sum(ex.label for ex in examples)
    assert sum(1 - ex.label for ex in implied) == positives  # one unrelated pair per positive by default


def test_implied_pairs_are_reproducible(corpus: CorpusManifest) -> None:
    assert implied_examples(corpus, "train", seed=5) == implied_examples(corpus, "train", seed=5)
