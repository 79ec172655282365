"""The plan and its labels, without rendering: splits, label policy, publish order, determinism."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from rci.training.corpus.generate import CorpusConfig, assign_splits, label_pairs, plan_corpus
from rci.training.corpus.manifest import SPLITS, Subset
from rci.training.corpus.sources import Photo
from rci.training.corpus.specs import Derived

# Plans never read the photos, so invented paths are enough here (two categories, several pictures each).
PHOTOS = [Photo(f"/srv/pictures/{cat}/{name}-{variant}.jpg", cat, f"{cat}/{name}")
          for cat, names in (("forest", "oak pine fern moss".split()), ("city", "tram bridge tower".split()))
          for name in names for variant in "dl"]


def _plan(seed: int, n: int = 20, **overrides):
    return plan_corpus(CorpusConfig(n_sources=n, seed=seed, photo_share=0.5, **overrides), PHOTOS)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_no_source_and_nothing_made_from_it_crosses_splits(seed: int) -> None:
    plan = _plan(seed)
    split_of_source: dict[str, set[str]] = defaultdict(set)
    for video in plan.videos:
        split_of_source[video.source_id].add(video.split)
    assert all(len(splits) == 1 for splits in split_of_source.values())
    videos = {v.video_id: v for v in plan.videos}
    for pair in label_pairs(plan):
        assert videos[pair.query_id].split == videos[pair.candidate_id].split == pair.split
    for video in plan.videos:  # a derived video sits with what it was made from
        if isinstance(video.origin, Derived):
            assert videos[video.origin.base_id].source_id == video.source_id
    assert {v.split for v in plan.videos} == set(SPLITS)


@pytest.mark.parametrize("seed", [0, 5])
def test_a_photo_picture_is_never_shared_between_splits(seed: int) -> None:
    family_of = {p.path: p.family for p in PHOTOS}
    splits_of_family: dict[str, set[str]] = defaultdict(set)
    for video in _plan(seed, n=30).videos:
        photo = getattr(video.origin, "visual", None) and video.origin.visual.photo
        if photo:
            splits_of_family[family_of[photo]].add(video.split)
    assert splits_of_family, "the plan used no photo at all"
    assert all(len(s) == 1 for s in splits_of_family.values())


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 20, 41])
def test_split_quotas(n: int) -> None:
    kinds = ["scene", "voiceover", "caption"] * n
    splits = assign_splits(kinds[:n], (0.7, 0.15, 0.15), np.random.default_rng(0))
    assert len(splits) == n and set(splits) <= set(SPLITS)
    if n >= 3:
        assert splits.count("val") >= 1 and splits.count("test") >= 1 and splits.count("train") >= 1
    if n >= 20:
        assert splits.count("train") > splits.count("val") + splits.count("test")


# The labelling policy, restated independently of the code under test: which modalities a pair
# shares follows from its transform list, and the label from the subset and what is shared.
_REPLACES = {"new_visuals": "visual", "new_audio": "audio", "new_title": "text", "new_sticker": "text"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_pair_label_agrees_with_its_subset_and_transforms(seed: int) -> None:
    plan = _plan(seed)
    videos = {v.video_id: v for v in plan.videos}
    for pair in label_pairs(plan):
        query, candidate = videos[pair.query_id], videos[pair.candidate_id]
        replaced = {_REPLACES[t["op"]] for t in pair.transforms if t["op"] in _REPLACES}
        assert pair.visual_match == ("visual" not in replaced)
        assert pair.text_match == ("text" not in replaced)
        if query.has_audio and candidate.has_audio:
            assert pair.audio_match == ("audio" not in replaced)
        else:
            assert pair.audio_match is None
        match pair.subset:
            case Subset.VISUAL_COPY:
                assert pair.label == 1 and pair.visual_match == 1
                assert query.origin == Derived(candidate.video_id, candidate.has_audio, candidate.duration_s)
                assert pair.transforms, "a copy is edited somehow"
            case Subset.AUDIO_DEPENDENT:
                assert pair.visual_match == 1 and pair.text_match == 1 and pair.audio_match is not None
                assert pair.label == pair.audio_match
            case Subset.TEXT_DEPENDENT:
                assert pair.visual_match == 1 and pair.audio_match == 1
                assert pair.label == pair.text_match
            case Subset.HARD_NEGATIVE_AUDIO:
                assert (pair.label, pair.visual_match, pair.audio_match) == (0, 0, 1)
                assert query.origin.audio == candidate.origin.audio
            case Subset.HARD_NEGATIVE_STYLE:
                assert (pair.label, pair.visual_match, pair.text_match) == (0, 0, 0)
                assert query.style == candidate.style
            case Subset.HARD_NEGATIVE_TITLE:
                assert (pair.label, pair.visual_match, pair.text_match) == (0, 0, 1)
                assert (query.title, query.sticker_text) == (candidate.title, candidate.sticker_text)
                assert query.style != candidate.style
            case Subset.UNRELATED:
                assert pair.label == 0 and pair.visual_match == 0
                assert query.source_id != candidate.source_id


def test_dependent_subsets_hold_both_labels_over_identical_pictures() -> None:
    """Figure 4: within the audio- (text-) dependent subset only the audio (text) separates the labels."""
    plan = _plan(4)
    pairs = label_pairs(plan)
    videos = {v.video_id: v for v in plan.videos}
    for subset in (Subset.AUDIO_DEPENDENT, Subset.TEXT_DEPENDENT):
        members = [p for p in pairs if p.subset is subset]
        assert {p.label for p in members} == {0, 1}
        for p in members:
            query, candidate = videos[p.query_id], videos[p.candidate_id]
            edits = [t for t in p.transforms if t["op"] not in _REPLACES]
            assert len(edits) == 1, "one light edit on either side"
            picture = query.origin.visual if not isinstance(query.origin, Derived) else candidate.origin.visual
            assert picture == candidate.origin.visual  # the same template, drawn from the same recipe


def test_every_subset_appears_from_a_handful_of_sources() -> None:
    subsets = {p.subset for p in _plan(seed=11, n=5).pairs}
    assert subsets == set(Subset)


@pytest.mark.parametrize("seed", [0, 9])
def test_sources_are_published_before_what_is_made_from_them(seed: int) -> None:
    plan = _plan(seed)
    videos = {v.video_id: v for v in plan.videos}
    for pair in plan.pairs:
        assert videos[pair.candidate_id].published_at < videos[pair.query_id].published_at
    for video in plan.videos:
        if video.role != "source":
            assert video.published_at > videos[f"{video.source_id}-src"].published_at


def test_plan_is_a_function_of_the_seed() -> None:
    assert _plan(3) == _plan(3)
    assert _plan(3) != _plan(4)


def test_video_ids_are_unique_and_contract_safe() -> None:
    ids = [v.video_id for v in _plan(2, n=40).videos]
    assert len(ids) == len(set(ids))
    assert all(len(i) <= 128 and all(c.isalnum() or c in "._:-" for c in i) for i in ids)
