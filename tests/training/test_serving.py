"""The serving recipe's implied training pairs, on a tiny real corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rci.inference.features import VideoFeatures

from rci.training.corpus.generate import make_corpus
from rci.training.corpus.manifest import CorpusManifest
from rci.training.data import read_examples, video_ids_of
from rci.media.fingerprint import HOP_S
from rci.training.data import PairExample
from rci.training.serving import implied_examples, retrieval_negatives, template_negatives, trim_video, trimmed_positives


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CorpusManifest:
    return make_corpus(tmp_path_factory.mktemp("serving-corpus"), n_sources=4, seed=3, min_duration_s=2.5,
                       max_duration_s=3.0, workers=1, progress=False)  # fmt: skip


def test_implied_pairs_extend_the_labelled_ones_without_changing_them(corpus: CorpusManifest) -> None:
    base = read_examples(corpus, "train")
    examples = implied_examples(corpus, "train", seed=1)
    assert examples[: len(base)] == base
    implied = examples[len(base) :]
    assert {ex.subset for ex in implied} == {"implied_positive", "implied_repost", "implied_unrelated"}
    published = {e.video_id: e.published_at for e in corpus.events}
    copies_of: dict[str, set[str]] = {}
    for ex in base:
        if ex.label == 1:
            copies_of.setdefault(ex.candidate_id, set()).add(ex.query_id)
    reposts = [ex for ex in implied if ex.subset == "implied_repost"]
    assert sorted(ex.query_id for ex in reposts) == video_ids_of(base)  # every video re-posted once
    for ex in reposts:  # unchanged: the same video on both sides, every modality it has matches
        assert ex.query_id == ex.candidate_id and ex.label == 1
        assert ex.aux == {"visual": 1, "audio": 1 if corpus.videos[ex.query_id].has_audio else None, "text": 1}
    for ex in implied:
        if ex.subset == "implied_repost":
            continue
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


def features_pointing(vid: str, direction: np.ndarray) -> VideoFeatures:
    """Stand-in features (a unit test's boundary): two frames along `direction`, nothing else."""
    visual = np.zeros((4, 8), np.float32)
    visual[:2] = direction / np.linalg.norm(direction)
    return VideoFeatures(vid, "enc-test", visual, np.array([True, True, False, False]), np.zeros(4, np.float32), False,
                         np.zeros((2, 3), np.float32), np.zeros(2, bool), 2.0)


def test_retrieval_negatives_pair_each_video_with_its_nearest_earlier_unrelated_video(corpus: CorpusManifest) -> None:
    examples = implied_examples(corpus, "train", seed=1)
    videos = video_ids_of(examples)
    rng = np.random.default_rng(0)
    features = {vid: features_pointing(vid, rng.normal(size=8)) for vid in videos}
    mined = retrieval_negatives(corpus, examples, features)

    published = {e.video_id: e.published_at for e in corpus.events}
    family = {vid: corpus.videos[vid].source_id for vid in videos}
    embedding = {vid: features[vid].video_embedding() for vid in videos}
    assert mined and all(ex.label == 0 and ex.subset == "implied_nearest_unrelated" for ex in mined)
    for ex in mined:
        earlier_unrelated = [v for v in videos if published[v] < published[ex.query_id] and family[v] != family[ex.query_id]]
        best = max(float(embedding[ex.query_id] @ embedding[v]) for v in earlier_unrelated)
        assert float(embedding[ex.query_id] @ embedding[ex.candidate_id]) == pytest.approx(best)
        assert family[ex.candidate_id] != family[ex.query_id]
    # every video with an earlier unrelated one gets exactly one such negative
    with_candidates = [q for q in videos if any(published[v] < published[q] and family[v] != family[q] for v in videos)]
    assert sorted(ex.query_id for ex in mined) == sorted(with_candidates)


def video_with_sound(vid: str, rng: np.random.Generator, seconds: int = 6) -> VideoFeatures:
    """Stand-in features with `seconds` frames, a Chromaprint-shaped fingerprint and a text token."""
    visual = np.zeros((8, 8), np.float32)
    visual[:seconds] = rng.normal(size=(seconds, 8))
    return VideoFeatures(vid, "enc-test", visual, np.arange(8) < seconds, rng.normal(size=4).astype(np.float32), True,
                         rng.normal(size=(2, 3)).astype(np.float32), np.array([True, False]), float(seconds),
                         audio_fingerprint=rng.integers(0, 2**32, size=int(seconds / HOP_S), dtype=np.uint32))


def test_template_negatives_put_a_videos_sound_and_text_over_another_familys_pictures(corpus: CorpusManifest) -> None:
    examples = implied_examples(corpus, "train", seed=1)
    rng = np.random.default_rng(0)
    features = {vid: video_with_sound(vid, rng) for vid in video_ids_of(examples)}
    pairs, made = template_negatives(corpus, examples, features, seed=2)

    assert pairs and len(pairs) == len(made) == len(video_ids_of(examples))
    family = {vid: corpus.videos[vid].source_id for vid in video_ids_of(examples)}
    for ex in pairs:
        template, source = made[ex.query_id], features[ex.candidate_id]
        assert ex.label == 0 and ex.subset == "implied_template" and ex.aux == {"visual": 0, "audio": 1, "text": 1}
        pictures = ex.query_id.split(":")[2]
        assert family[pictures] != family[ex.candidate_id]
        np.testing.assert_array_equal(template.visual, features[pictures].visual)
        np.testing.assert_array_equal(template.audio_fingerprint, source.audio_fingerprint)
        np.testing.assert_array_equal(template.text, source.text)


def test_trimmed_positives_cut_frames_and_sound_alike() -> None:
    rng = np.random.default_rng(1)
    video = video_with_sound("v", rng, seconds=6)
    trim = trim_video(video, start_s=2, length_s=3, video_id="t")
    assert trim.visual_mask.sum() == 3 and trim.duration_s == 3.0
    np.testing.assert_array_equal(trim.visual[:3], video.visual[2:5])
    assert not trim.visual[3:].any()
    hop = int(2 / HOP_S)
    np.testing.assert_array_equal(trim.audio_fingerprint[:5], video.audio_fingerprint[hop : hop + 5])

    examples = [PairExample("v", "v", 1, "implied_repost", "train", {"visual": 1, "audio": 1, "text": 1}),
                PairExample("v", "w", 0, "implied_unrelated", "train", {"visual": 0, "audio": None, "text": None})]
    pairs, made = trimmed_positives(examples, {"v": video, "w": video}, per_positive=3, seed=0)
    assert len(pairs) == 3 and all(p.label == 1 and p.candidate_id == "v" for p in pairs)  # positives only
    assert all(2 <= made[p.query_id].visual_mask.sum() <= 6 for p in pairs)
