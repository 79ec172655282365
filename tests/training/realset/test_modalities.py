"""The modality set: in every pair both sides show the same template picture with the same motion, and only
the deciding modality (the voice-over's words, or the caption) differs between a reproduced and a normal pair."""

from __future__ import annotations

from collections import Counter

from rci.training.realset.modalities import AUDIO_SUBSET, PER_TEMPLATE, TEXT_SUBSET, plan_modality_set


def test_pairs_differ_only_in_the_deciding_modality() -> None:
    videos, pairs, info = plan_modality_set(sources=6, seed=3)
    by_id = {v.video_id: v for v in videos}
    assert Counter((p.subset, p.label) for p in pairs) == {(AUDIO_SUBSET, 1): 6, (AUDIO_SUBSET, 0): 6,
                                                           (TEXT_SUBSET, 1): 6, (TEXT_SUBSET, 0): 6}  # fmt: skip
    assert info["sources_per_subset"] == 6
    for pair in pairs:
        query, source = by_id[pair.query_id], by_id[pair.candidate_id]
        made_from = by_id[query.source_id]  # the upload is an edit of this original
        assert len(query.edits) == 1 and source.is_original and made_from.is_original
        assert (made_from.photos, made_from.seed, made_from.duration_s) == (source.photos, source.seed, source.duration_s)
        assert made_from.title == source.title
        assert (made_from is source) == bool(pair.label)
        if pair.subset == AUDIO_SUBSET:
            assert made_from.sticker == source.sticker and made_from.sound.voice == source.sound.voice
            assert made_from.sound.bed_track == source.sound.bed_track
            assert (made_from.sound.text == source.sound.text) == bool(pair.label)
        else:
            assert made_from.sound == source.sound and source.sound.kind == "music"
            assert (made_from.sticker == source.sticker) == bool(pair.label)
            assert query.sticker == made_from.sticker  # the event carries the caption it shows


def test_templates_are_shared_by_several_sources_and_uploads_come_after_their_originals() -> None:
    videos, pairs, _ = plan_modality_set(sources=8, seed=0)
    sources = [v for v in videos if v.kind == "library"]
    per_photo = Counter(v.photos for v in sources)
    assert set(per_photo.values()) == {PER_TEMPLATE}
    audio_photos = {v.photos for v in sources if v.video_id.startswith("a")}
    assert audio_photos.isdisjoint({v.photos for v in sources if v.video_id.startswith("t")})
    published = {v.video_id: v.published_at for v in videos}
    assert all(published[v.source_id] < v.published_at for v in videos if v.source_id)
    assert len(published) == len(videos)


def test_a_templates_sources_share_its_sound_and_a_hundred_sources_fit_the_bench_music() -> None:
    videos, pairs, _ = plan_modality_set(sources=100, seed=0)
    assert sum(p.label for p in pairs) == 200
    captions = [v for v in videos if v.kind == "library" and v.video_id.startswith("t")]
    by_template: dict[tuple[str, ...], set] = {}
    for v in captions:
        by_template.setdefault(v.photos, set()).add((v.sound.track, v.sound.offset_s))
    assert all(len(sounds) == 1 for sounds in by_template.values())
    assert len({next(iter(s)) for s in by_template.values()}) == len(by_template)  # one segment per template
