"""The real-media pairs (rci.training.realpairs): which pairs, with which labels.

The set is planned, not rendered (a unit test's boundary: stand-in features whose frames point where
the test says), so what is checked is the pairing rule: each later upload with its best few earlier
originals about as similar as the best (what the worker scores it on), plus each copy with its source
and each template with the original it borrows from; and the query-level score the threshold is chosen on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from rci.inference.features import VideoFeatures
from rci.training import realpairs
from rci.training.realpairs import ID_PREFIX, SUBSET, TRAINING_SUBSET, RealValidation, pairs_as_served
from rci.training.realset.modalities import AUDIO_SUBSET, TEXT_SUBSET, ModalityPair
from rci.training.realset.pools import TRAINING, MusicTrack, PoolPhoto
from rci.training.realset.sets import SIZES, HeldoutSet, plan_set


def _frames_along(vid: str, direction: np.ndarray) -> VideoFeatures:
    visual = np.zeros((4, 8), np.float32)
    visual[:2] = direction / np.linalg.norm(direction)
    return VideoFeatures(vid, "enc-test", visual, np.array([True, True, False, False]), np.zeros(4, np.float32), False,
                         np.zeros((2, 3), np.float32), np.zeros(2, bool), 2.0)


def _planned_set() -> HeldoutSet:
    photos = [PoolPhoto(f"/pool/p{i:03d}.png", f"x.rcc:p{i}", "lang") for i in range(60)]
    tracks = [MusicTrack(f"/pool/m{i}.mp3", 400.0) for i in range(3)]
    videos = plan_set(SIZES["small"], 3, photos, tracks, ("nl", "pl", "sv"))
    return HeldoutSet(Path("/set"), "small", 3, videos)


def _features(dataset: HeldoutSet, rng: np.random.Generator) -> dict[str, VideoFeatures]:
    """Originals point in random directions; a copy points where its source does (plus a little noise),
    a template somewhere new (its pictures are new)."""
    direction: dict[str, np.ndarray] = {}
    for video in dataset.videos:
        base = direction[video.source_id] if video.is_reproduction else rng.normal(size=8)
        direction[video.video_id] = base + (0.05 * rng.normal(size=8) if video.is_reproduction else 0)
    return {ID_PREFIX + vid: _frames_along(ID_PREFIX + vid, d) for vid, d in direction.items()}


def test_every_query_meets_its_nearest_earlier_original_and_copies_their_source() -> None:
    dataset = _planned_set()
    features = _features(dataset, np.random.default_rng(0))
    pairs, queries = pairs_as_served(dataset, features, margin=0.0)  # margin 0: only the most similar is served
    by_query: dict[str, dict[str, int]] = {}
    for ex in pairs:
        assert ex.query_id.startswith(ID_PREFIX) and ex.candidate_id.startswith(ID_PREFIX)
        by_query.setdefault(ex.query_id.removeprefix(ID_PREFIX), {})[ex.candidate_id.removeprefix(ID_PREFIX)] = ex.label

    assert set(by_query) == {q.video_id for q in dataset.queries()}
    assert len({(ex.query_id, ex.candidate_id) for ex in pairs}) == len(pairs)  # no pair twice
    for query in dataset.queries():
        candidates = by_query[query.video_id]
        earlier = {v.video_id for v in dataset.earlier_originals(query)}
        assert set(candidates) <= earlier
        if query.is_reproduction:
            assert candidates == {query.source_id: 1}  # the copy's frames point at its source: nearest
        elif query.kind == "template":
            assert candidates[query.source_id] == 0 and set(candidates.values()) == {0}
        else:
            assert len(candidates) == 1 and set(candidates.values()) == {0}
    assert [q.video_id for q in queries] == [ID_PREFIX + q.video_id for q in dataset.queries()]
    assert all(len(q.pairs) == 1 and pairs[q.pairs[0]].query_id == q.video_id for q in queries)


def test_a_copy_whose_nearest_is_another_video_is_a_negative_there_and_a_positive_with_its_source() -> None:
    dataset = _planned_set()
    features = _features(dataset, np.random.default_rng(1))
    copy = next(q for q in dataset.queries() if q.is_reproduction)
    decoy = next(v for v in dataset.earlier_originals(copy) if v.video_id != copy.source_id)
    features[ID_PREFIX + copy.video_id] = features[ID_PREFIX + decoy.video_id]  # looks exactly like the decoy
    pairs, _ = pairs_as_served(dataset, features, margin=0.0)
    labels = {(ex.query_id, ex.candidate_id): ex.label for ex in pairs}
    assert labels[(ID_PREFIX + copy.video_id, ID_PREFIX + decoy.video_id)] == 0
    assert labels[(ID_PREFIX + copy.video_id, ID_PREFIX + copy.source_id)] == 1


def test_a_query_is_served_its_best_few_about_as_similar_and_scored_by_the_best_of_them() -> None:
    dataset = _planned_set()
    features = _features(dataset, np.random.default_rng(2))
    pairs, queries = pairs_as_served(dataset, features, score_top=3, margin=2.0)  # margin 2: cosines all within
    for query in queries:
        later = next(q for q in dataset.queries() if ID_PREFIX + q.video_id == query.video_id)
        assert len(query.pairs) == min(3, len(dataset.earlier_originals(later)))
        assert query.label == int(later.is_reproduction)
    validation = RealValidation(pairs, features, queries, info={})
    pair_scores = np.linspace(0.0, 1.0, len(pairs))
    scores, labels = validation.query_scores(pair_scores)
    assert scores.tolist() == [max(pair_scores[i] for i in q.pairs) for q in queries]
    assert labels.tolist() == [q.label for q in queries]


def test_another_prefix_names_the_pairs_and_each_query_keeps_its_kind() -> None:
    dataset = _planned_set()
    features = {"bench7-" + vid.removeprefix(ID_PREFIX): f for vid, f in _features(dataset, np.random.default_rng(0)).items()}
    pairs, queries = pairs_as_served(dataset, features, margin=0.0, id_prefix="bench7-")
    assert all(ex.query_id.startswith("bench7-") and ex.candidate_id.startswith("bench7-") for ex in pairs)
    assert [(q.video_id, q.kind) for q in queries] == [("bench7-" + q.video_id, q.kind) for q in dataset.queries()]
    assert {q.kind for q in queries} == {"easy", "hard", "unrelated", "template"}


def test_training_pairs_are_the_same_pairs_marked_for_training() -> None:
    """The training pool's pairs (realmedia_training) are paired as served, only their subset and split differ."""
    dataset = _planned_set()
    features = _features(dataset, np.random.default_rng(0))
    served, _ = pairs_as_served(dataset, features)
    trained, _ = pairs_as_served(dataset, features, subset=TRAINING_SUBSET, split="train")
    assert {ex.subset for ex in served} == {SUBSET} and {ex.split for ex in served} == {"val"}
    assert {ex.subset for ex in trained} == {TRAINING_SUBSET} and {ex.split for ex in trained} == {"train"}
    assert [(e.query_id, e.candidate_id, e.label) for e in trained] == [(e.query_id, e.candidate_id, e.label) for e in served]


def test_modality_pairs_label_the_deciding_modality_and_share_the_picture(monkeypatch) -> None:
    """A modality set's pairs (its rendering and encoding stood in for): the main label, the picture shared
    (visual 1), the deciding modality labelled and the other undefined; ids prefixed, split as asked."""
    pairs = [ModalityPair("a000-same", "a000", 1, AUDIO_SUBSET), ModalityPair("a000-other", "a000", 0, AUDIO_SUBSET),
             ModalityPair("t000-other", "t000", 0, TEXT_SUBSET)]  # fmt: skip
    ids = {v for p in pairs for v in (p.query_id, p.candidate_id)}
    dataset = SimpleNamespace(videos=[SimpleNamespace(video_id=v) for v in sorted(ids)], info={"templates": 2})
    monkeypatch.setattr(realpairs, "build_modality_set", lambda *a, **k: (dataset, pairs))
    monkeypatch.setattr(realpairs, "encoded_set", lambda model_dir, extractor, policy, dataset, videos, *, id_prefix, **k: {
        id_prefix + v.video_id: _frames_along(id_prefix + v.video_id, np.ones(8)) for v in videos})
    data, subsets, info = realpairs.modality_pairs(Path("/models"), None, None, TRAINING, sources=1, seed=0,  # type: ignore[arg-type]
                                                   id_prefix="m-", split="train", progress=False)  # fmt: skip
    assert [(e.query_id, e.candidate_id, e.label, e.split) for e in data.examples] == [
        ("m-a000-same", "m-a000", 1, "train"), ("m-a000-other", "m-a000", 0, "train"), ("m-t000-other", "m-t000", 0, "train")]
    assert [e.aux for e in data.examples] == [{"visual": 1, "audio": 1, "text": None}, {"visual": 1, "audio": 0, "text": None},
                                              {"visual": 1, "audio": None, "text": 0}]  # fmt: skip
    assert subsets.tolist() == [AUDIO_SUBSET, AUDIO_SUBSET, TEXT_SUBSET] and info == {"templates": 2}
    assert len(data[0].query.visual) == 4  # features joined
    assert len(realpairs.training_modality_pairs(Path("/models"), None, None, sources=0, seed=0)) == 0  # type: ignore[arg-type]
