"""The generalisation benchmark: its parts on their own (fast) and the smallest set end to end (slow).

The end-to-end test builds the `small` held-out set from the real pools (installing them when
missing, as the benchmark does), runs the no-model scorers and checks what the set must be
(composition, publication order, templates that share the exact sound and text over new pictures,
no photo shared between originals) and claims that hold with a wide margin: SSCD Chamfer ranks and
retrieves easy copies far above chance, and scores templates (negatives) well below easy copies.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from rci.training.realset.phash import phash, similarity
from rci.training.realset.pools import check_heldout_media, read_rcc
from rci.training.corpus.errors import ReservedMediaError


def _smooth_picture(seed: int, size: int = 224) -> np.ndarray:
    """A picture of 7 x 7 random colour blocks: low frequencies only, like a scene at hash scale."""
    blocks = np.random.default_rng(seed).integers(0, 256, size=(7, 7, 3), dtype=np.uint8)
    return blocks.repeat(size // 7, axis=0).repeat(size // 7, axis=1)


def test_phash_is_stable_under_mild_changes_and_near_chance_between_pictures():
    a, b = _smooth_picture(1), _smooth_picture(2)
    brighter = np.clip(a.astype(int) + 12, 0, 255).astype(np.uint8)
    smaller = a[::2, ::2].repeat(2, axis=0).repeat(2, axis=1)
    hashes = phash(np.stack([a, brighter, smaller, b]))
    assert hashes.dtype == np.uint64 and hashes.shape == (4,)
    sim = similarity(hashes, hashes)
    assert np.allclose(np.diag(sim), 1.0)
    assert sim[0, 1] >= 0.9 and sim[0, 2] >= 0.9, sim
    assert sim[0, 3] <= 0.75, sim
    unrelated = similarity(phash(np.stack([_smooth_picture(s) for s in range(10, 30)])),
                           phash(np.stack([_smooth_picture(s) for s in range(30, 50)])))  # fmt: skip
    assert 0.35 <= unrelated.mean() <= 0.65  # about half the bits agree between unrelated pictures


def _rcc(files: dict[str, bytes]) -> bytes:
    """A format-2 Qt resource file holding `files` flat under its root (uncompressed)."""
    names = b""
    name_offsets = []
    for name in files:
        name_offsets.append(len(names))
        encoded = name.encode("utf-16-be")
        names += struct.pack(">HI", len(name), 0) + encoded
    data = b""
    data_offsets = []
    for content in files.values():
        data_offsets.append(len(data))
        data += struct.pack(">I", len(content)) + content
    tree = struct.pack(">IHII", 0, 0x2, len(files), 1) + bytes(8)
    for name_offset, data_offset in zip(name_offsets, data_offsets, strict=True):
        tree += struct.pack(">IHHHI", name_offset, 0, 0, 0, data_offset) + bytes(8)
    header_size = 20
    return (b"qres" + struct.pack(">IIII", 2, header_size, header_size + len(tree),
                                  header_size + len(tree) + len(data)) + tree + data + names)  # fmt: skip


def test_read_rcc_returns_every_file_with_its_bytes():
    files = {"a.webp": b"RIFF-one", "b.png": b"\x89PNG-two"}
    assert dict(read_rcc(_rcc(files))) == files
    with pytest.raises(ValueError):
        list(read_rcc(b"not a resource file"))


@pytest.mark.parametrize("path", [
    "/usr/share/games/hedgewars/Data/Sounds/voices/Default/Hello.ogg",
    "/usr/share/hedgewars/Data/Music/main_theme.ogg",
    "/usr/share/wallpapers/Next/contents/images/1920x1080.png",
    "/usr/share/backgrounds/mate/nature/Aqua.jpg",
    "/usr/share/ukui-wallpapers/forest.jpg",
    "/usr/share/backgrounds/lomiri/warty.png",
])  # fmt: skip
def test_reserved_pictures_and_sounds_are_refused(path: str):
    with pytest.raises(ReservedMediaError):
        check_heldout_media(path)


def test_held_out_pool_files_are_allowed():
    for path in ("/usr/share/hyperrogue/music/hr3-caves.ogg", "/usr/share/gcompris-qt/rcc/erase.rcc"):
        assert check_heldout_media(path) == Path(path)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_small_set_end_to_end(tmp_path: Path):
    from benchmarks import bench_quality
    from rci.training.realset.sets import SIZES, build_set, default_work_dir
    from benchmarks.quality.scorers import chromaprint_audio, extract_features
    from benchmarks.record import RESULTS_FILE

    results_before = RESULTS_FILE.read_bytes() if RESULTS_FILE.exists() else None
    out, plot = tmp_path / "quality.json", tmp_path / "quality.png"
    result = bench_quality.main(["--size", "small", "--no-record", "--json", str(out), "--plot", str(plot)])
    assert (RESULTS_FILE.read_bytes() if RESULTS_FILE.exists() else None) == results_before
    assert plot.read_bytes()[:4] == b"\x89PNG"
    saved = json.loads(out.read_text())

    # the set: the mix asked for, in publication order, templates that are not reproductions
    size = SIZES["small"]
    dataset = build_set(default_work_dir(), "small", 0)  # cached by the run above
    assert dataset.counts() == {"library": size.library, "easy": size.easy, "hard": size.hard,
                                "unrelated": size.unrelated, "template": size.template}  # fmt: skip
    assert saved["set"]["counts"] == dataset.counts()
    by_id = dataset.by_id
    times = [v.published_at for v in dataset.videos]
    assert times == sorted(times) and len(set(times)) == len(times)
    photos = [p for v in dataset.videos if v.is_original for p in v.photos]
    assert len(photos) == len(set(photos)), "a photo is shared between two originals"
    assert not {v.background for v in dataset.videos if v.background} & set(photos)
    for video in dataset.queries():
        assert Path(video.path).stat().st_size > 10_000
        if video.source_id is not None:
            source = by_id[video.source_id]
            assert source.kind == "library" and source.published_at < video.published_at
        if video.kind == "template":
            assert not video.is_reproduction
            assert (video.sound, video.title, video.sticker) == (source.sound, source.title, source.sticker)
            assert not set(video.photos) & set(source.photos)
    assert {e["op"] for v in dataset.videos if v.kind == "hard" for e in v.edits} == {
        "vertical_recrop", "duet", "pip", "zoom", "speed"}

    features = extract_features(dataset, default_work_dir())
    for template in (v for v in dataset.videos if v.kind == "template"):  # the exact sound, really
        assert chromaprint_audio(features[template.video_id], features[template.source_id]) > 0.8

    # the figures: one row per scorer, SSCD far above chance on easy copies, templates scored low
    scorers = {f["scorer"]: f for f in saved["scorers"]}
    assert set(scorers) == {"pHash + Chromaprint", "pHash + Chromaprint (mean)", "pHash alone", "Chromaprint alone",
                            "SSCD Chamfer"}
    for figures in scorers.values():
        for subset in ("all", "hard", "easy"):
            assert 0.0 <= figures[subset]["ap"] <= 1.0 and 0.0 <= figures[subset]["source_retrieval"] <= 1.0
    sscd = scorers["SSCD Chamfer"]
    assert sscd["easy"]["ap"] >= sscd["easy"]["chance_ap"] + 0.3, sscd["easy"]
    assert sscd["easy"]["source_retrieval"] >= 0.75, sscd["easy"]
    assert sscd["mean_score"]["template"] + 0.3 < sscd["mean_score"]["easy"], sscd["mean_score"]
    # a sound-only matcher cannot tell a template from a copy: Chromaprint scores them as high as copies
    assert scorers["Chromaprint alone"]["mean_score"]["template"] > scorers["Chromaprint alone"]["mean_score"]["unrelated"] + 0.3
    assert result["matchlite"].startswith("not run")


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_small_set_through_the_real_worker(tmp_path: Path, trained_model_dir: Path):
    """(c): the small set's events through the local stack and `rci worker` serving the demo's models;
    every query comes back scored against an earlier video, at the model's stored threshold."""
    from benchmarks import bench_quality
    from rci.training.realset.sets import build_set, default_work_dir

    out = tmp_path / "quality.json"
    result = bench_quality.main(["--size", "small", "--no-record", "--matchlite-models", str(trained_model_dir),
                                 "--json", str(out), "--plot", str(tmp_path / "quality.png")])  # fmt: skip
    assert result["matchlite"] == "run"
    [matchlite] = [f for f in json.loads(out.read_text())["scorers"] if f["scorer"].startswith("MatchLite")]
    assert 0.0 < matchlite["threshold"] < 1.0 and matchlite["all"]["f1_at_threshold"] is not None
    assert matchlite["all"]["queries"] == 16 and 0.0 <= matchlite["all"]["ap"] <= 1.0

    dataset = build_set(default_work_dir(), "small", 0)
    scores = [json.loads(line) for line in (dataset.root / "worker-scores.jsonl").read_text().splitlines()]
    by_id = dataset.by_id
    assert sorted(s["video_id"] for s in scores) == sorted(by_id)  # every event scored once, none dead-lettered
    for score in scores:
        assert 0.0 <= score["score"] <= 1.0 and score["threshold"] == matchlite["threshold"]
        if score["candidate_id"] is not None:  # retrieval only ever returns an earlier video
            assert by_id[score["candidate_id"]].published_at < by_id[score["video_id"]].published_at
    assert all(s["candidate_id"] is not None for s in scores if by_id[s["video_id"]].kind != "library")

    # The ordering benchmarks/RESULTS.md records on the default set (44 copies), asserted as far as this
    # size resolves it: 9 copies, 5 hard, so one copy ranked differently moves AP by up to (1 - P/N) / P
    # (a copy falling from the top to the bottom: 0.05 overall, 0.12 on hard copies) and R@P80 by a whole
    # copy. Two trainings of the demo's models landed on either side of SSCD Chamfer by exactly one copy
    # (a small picture-in-picture that MatchLite scores 0: AP 0.951 vs 0.956). So: MatchLite through the
    # worker within one copy of SSCD Chamfer alone and clearly better than the hash + fingerprint, overall
    # and on the hard copies; every easy copy flagged at the stored threshold.
    figures = {f["scorer"]: f for f in json.loads(out.read_text())["scorers"]}
    sscd, hashes = figures["SSCD Chamfer"], figures["pHash + Chromaprint"]
    for subset in ("all", "hard"):
        positives, queries = matchlite[subset]["positives"], matchlite[subset]["queries"]
        one_copy, one_copy_ap = 1.0 / positives, (1.0 - positives / queries) / positives
        assert matchlite[subset]["ap"] >= sscd[subset]["ap"] - one_copy_ap, (subset, matchlite[subset], sscd[subset])
        assert matchlite[subset]["r_at_p80"] >= sscd[subset]["r_at_p80"] - one_copy, (subset, matchlite[subset], sscd[subset])
        assert matchlite[subset]["ap"] > hashes[subset]["ap"] and matchlite[subset]["r_at_p80"] > hashes[subset]["r_at_p80"]
    easy = [s for s in scores if by_id[s["video_id"]].kind == "easy"]
    assert easy and all(s["deboost"] for s in easy), [(s["video_id"], s["score"]) for s in easy]


def test_a_versioned_sibling_of_a_reserved_package_is_refused_by_dpkg_ownership(tmp_path: Path):
    """lomiri-wallpapers-20.04 puts its pictures in /usr/share/backgrounds/ (no path marker): refused because
    dpkg says a reserved package's versioned sibling installed them. (The test's name keeps "lomiri", a path
    marker, out of tmp_path.)"""
    from rci.training.corpus.sources import check_photo_allowed, reserved_files

    picture = tmp_path / "backgrounds" / "Fossa_by_Jasper_Roks.jpg"
    picture.parent.mkdir()
    picture.write_bytes(b"\xff\xd8\xff")
    dpkg = tmp_path / "dpkg-info"
    dpkg.mkdir()
    (dpkg / "lomiri-wallpapers-20.04.list").write_text(f"/.\n{picture.parent}\n{picture}\n")
    reserved_files.cache_clear()
    try:
        with pytest.raises(ReservedMediaError, match="reserved package"):
            check_photo_allowed(picture, dpkg_info_dir=dpkg)
        assert check_photo_allowed(picture, dpkg_info_dir=tmp_path / "no-dpkg") == picture
    finally:
        reserved_files.cache_clear()
