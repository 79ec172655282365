"""Source material: the reserved-package deny list, procedural generators, soundtracks, edit semantics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rci.training.corpus.audio import SAMPLE_RATE, AudioRecipe, render_audio, synth_music
from rci.training.corpus.errors import ReservedMediaError
from rci.training.corpus.ffmpeg import require_tools
from rci.training.corpus.generate import CorpusConfig, plan_corpus
from rci.training.corpus.sources import (
    GENERATORS,
    RESERVED_PACKAGES,
    Photo,
    VisualRecipe,
    check_photo_allowed,
    discover_photos,
    frames_for,
    reserved_files,
)
from rci.training.corpus.transforms import Crop, Mute, NewAudio, Speed, Trim, content_matches


@pytest.fixture(autouse=True)
def _fresh_dpkg_cache():
    reserved_files.cache_clear()
    yield
    reserved_files.cache_clear()


def _png(path: Path, width: int = 640, height: int = 480) -> Path:
    """A real image file, written by ffmpeg."""
    import subprocess

    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={width}x{height}",
                    "-frames:v", "1", str(path)], check=True)
    return path


# ------------------------------------------------------------------------------- reserved packages

RESERVED_PATHS = [
    "/usr/share/wallpapers/Next/contents/images/1920x1080.png",  # plasma-workspace-wallpapers
    "/usr/share/backgrounds/mate/nature/Aqua.jpg",  # mate-backgrounds
    "/usr/share/backgrounds/ukui/default.jpg",  # ukui-wallpapers
    "/usr/share/wallpapers/lomiri-default-background.png",  # lomiri-wallpapers
    "/usr/share/games/hedgewars/Data/Graphics/Hedgehog.png",  # hedgewars-data
]


@pytest.mark.parametrize("path", RESERVED_PATHS)
def test_reserved_package_paths_are_refused(path: str) -> None:
    with pytest.raises(ReservedMediaError):
        check_photo_allowed(path)


def test_every_reserved_package_is_on_the_deny_list() -> None:
    assert set(RESERVED_PACKAGES) == {"plasma-workspace-wallpapers", "mate-backgrounds", "ukui-wallpapers",
                                      "lomiri-wallpapers", "hedgewars-data"}


def test_files_a_reserved_package_installed_are_refused_wherever_they_live(tmp_path: Path) -> None:
    innocent_looking = _png(tmp_path / "pictures" / "sunset.png")
    dpkg = tmp_path / "dpkg-info"
    dpkg.mkdir()
    (dpkg / "mate-backgrounds.list").write_text(f"/.\n{innocent_looking.parent}\n{innocent_looking}\n")
    with pytest.raises(ReservedMediaError, match="reserved package"):
        check_photo_allowed(innocent_looking, dpkg_info_dir=dpkg)
    assert check_photo_allowed(innocent_looking, dpkg_info_dir=tmp_path / "no-dpkg") == innocent_looking


def test_a_symlink_into_reserved_media_is_refused(tmp_path: Path) -> None:
    target = _png(tmp_path / "usr/share/backgrounds/mate/desktop/Ubuntu-Mate-Cold.png")
    link = tmp_path / "training-pictures" / "cold.png"
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(ReservedMediaError):
        check_photo_allowed(link)


def test_discovery_skips_reserved_files_and_refuses_reserved_roots(tmp_path: Path) -> None:
    root = tmp_path / "pictures"
    allowed = _png(root / "lake-d.png")
    _png(root / "lake-l.png")
    _png(root / "icon.png", 64, 64)  # too small to be a scene
    reserved = _png(root / "hedgewars-map.png")
    photos = discover_photos((str(root),), dpkg_info_dir=tmp_path)
    assert [p.path for p in photos] == [str(allowed), str(root / "lake-l.png")]
    assert {p.family for p in photos} == {"pictures/lake"}  # light and dark variants: one picture
    assert str(reserved) not in {p.path for p in photos}
    with pytest.raises(ReservedMediaError):
        discover_photos(("/usr/share/backgrounds/mate",))


def test_plans_and_renders_refuse_reserved_photos() -> None:
    reserved = Photo("/usr/share/wallpapers/Kite/contents/images/1280x800.jpg", "kde", "kde/kite")
    with pytest.raises(ReservedMediaError):
        plan_corpus(CorpusConfig(n_sources=2, photo_share=1.0), [reserved])
    with pytest.raises(ReservedMediaError):
        next(frames_for(VisualRecipe("photo", 1, photo=reserved.path, category="kde"), 2, 64, 64))


# ------------------------------------------------------------------------------------- generators


@pytest.mark.parametrize("family", sorted(GENERATORS))
def test_procedural_families_are_seeded(family: str) -> None:
    def clip(seed: int) -> np.ndarray:
        return np.stack(list(frames_for(VisualRecipe(family, seed), 6, 64, 48)))

    a, b, other = clip(7), clip(7), clip(8)
    assert a.shape == (6, 48, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, other)
    if family != "scroll_text":  # scroll_text's motion is the text ffmpeg draws over a calm background
        assert np.abs(a[0].astype(int) - a[-1].astype(int)).mean() > 0.5, "the picture moves"


def test_ken_burns_moves_across_a_photo(tmp_path: Path) -> None:
    require_tools()
    photo = _png(tmp_path / "scene.png")
    frames = np.stack(list(frames_for(VisualRecipe("photo", 3, photo=str(photo), category="t"), 8, 64, 64)))
    assert frames.shape == (8, 64, 64, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1.0


# ------------------------------------------------------------------------------------ soundtracks


def test_music_is_seeded_and_exactly_as_long_as_asked() -> None:
    a, b, c = synth_music(5, 2.5), synth_music(5, 2.5), synth_music(6, 2.5)
    assert a.shape == (int(2.5 * SAMPLE_RATE),) and a.dtype == np.float32
    # numpy's SIMD sin takes a scalar path for unaligned heads and tails, so the same recipe can
    # differ by an ulp between two buffers (seen once in CI): the same samples to float32 rounding.
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert np.abs(a - c).max() > 0.1
    assert 0.5 < np.abs(a).max() <= 1.0


def test_speech_fills_the_clip_and_differs_by_sentences(tmp_path: Path) -> None:
    require_tools()
    one = AudioRecipe("speech", 1, ("The coach fixed a wooden boat.",), "en-us+f3", bed_seed=4)
    other = AudioRecipe("speech", 1, ("A sleepy fox sold a jar of honey.",), "en-us+f3", bed_seed=4)
    a, b = render_audio(one, 3.0, tmp_path), render_audio(other, 3.0, tmp_path)
    assert a.shape == b.shape == (3 * SAMPLE_RATE,)
    np.testing.assert_allclose(a, render_audio(one, 3.0, tmp_path), rtol=0, atol=1e-5)  # see the music test
    assert np.abs(a[: SAMPLE_RATE]).mean() > 0.01, "speech starts at once"
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.5


# ---------------------------------------------------------------------------------- edit semantics


def test_edits_know_their_output_length() -> None:
    assert Trim(start=1.0, length=2.5).duration(6.0) == 2.5
    assert Trim(start=5.0, length=2.5).duration(6.0) == 1.0
    assert Speed(factor=1.25).duration(5.0) == 4.0


def test_auxiliary_labels_follow_the_transform_list() -> None:
    copy = [Crop(0.1, 0.1, 0.8, 0.8).to_dict()]
    assert content_matches(copy, True, True) == {"visual_match": 1, "audio_match": 1, "text_match": 1}
    rescored = [*copy, NewAudio(AudioRecipe("music", 3)).to_dict()]
    assert content_matches(rescored, True, True)["audio_match"] == 0
    assert content_matches([Mute().to_dict()], False, True)["audio_match"] is None
    unrelated = [{"op": "new_visuals"}, {"op": "new_audio"}, {"op": "new_title"}]
    assert content_matches(unrelated, True, True) == {"visual_match": 0, "audio_match": 0, "text_match": 0}
