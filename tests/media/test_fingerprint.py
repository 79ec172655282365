"""Chromaprint sub-fingerprints: copies of a sound align, unrelated sounds stay at chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rci.media.fingerprint import HOP_S, agreement, best_alignment, fingerprint, second_similarity
from rci.training.corpus.audio import SAMPLE_RATE, AudioRecipe, render_audio, synth_music


def noisy(samples: np.ndarray, gain: float, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (gain * samples + noise * rng.standard_normal(len(samples))).astype(np.float32)


@pytest.fixture(scope="module")
def tune() -> np.ndarray:
    return synth_music(1, 20.0)


def test_fingerprints_are_uint32_at_the_chromaprint_rate(tune: np.ndarray) -> None:
    fp = fingerprint(tune, SAMPLE_RATE)
    assert fp.dtype == np.uint32
    assert 15.0 < len(fp) * HOP_S <= 20.0  # chromaprint's filters eat the last ~2.5 s
    assert np.array_equal(fp, fingerprint(tune, SAMPLE_RATE))
    assert len(fingerprint(np.zeros(SAMPLE_RATE // 2, np.float32), SAMPLE_RATE)) == 0  # too short: nothing


def test_a_trimmed_quieter_noisy_copy_aligns_at_its_trim(tune: np.ndarray) -> None:
    trim_s = 3.3
    copy = noisy(tune[int(trim_s * SAMPLE_RATE) :], gain=0.5, noise=0.01)
    found = best_alignment(fingerprint(tune, SAMPLE_RATE), fingerprint(copy, SAMPLE_RATE))
    assert found.agreement > 0.85
    assert abs(found.offset_s - trim_s) < HOP_S


def test_unrelated_music_and_speech_stay_near_chance(tune: np.ndarray, tmp_path: Path) -> None:
    other = best_alignment(fingerprint(tune, SAMPLE_RATE), fingerprint(synth_music(2, 20.0), SAMPLE_RATE))
    assert other.agreement < 0.7
    one = render_audio(AudioRecipe("speech", 1, ("The coach fixed a wooden boat near the river.",), "en-us+f3"), 6.0, tmp_path)
    two = render_audio(AudioRecipe("speech", 2, ("A sleepy fox sold a jar of honey.",), "en-gb"), 6.0, tmp_path)
    same = best_alignment(fingerprint(one, SAMPLE_RATE), fingerprint(noisy(one[5000:], 0.8, 0.0), SAMPLE_RATE))
    different = best_alignment(fingerprint(one, SAMPLE_RATE), fingerprint(two, SAMPLE_RATE))
    assert same.agreement > 0.85 > 0.75 > different.agreement


def test_the_second_map_peaks_on_the_trim_diagonal(tune: np.ndarray) -> None:
    copy = noisy(tune[int(3.3 * SAMPLE_RATE) :], gain=0.7, noise=0.005)
    a, b = fingerprint(tune, SAMPLE_RATE), fingerprint(copy, SAMPLE_RATE)
    grid = second_similarity(a, b, 20, 20)
    assert grid.shape == (20, 20) and grid.dtype == np.float32
    rows = [i for i in range(4, 14)]  # seconds of the original that the copy holds, away from the ends
    assert all(int(np.argmax(grid[i])) in (i - 4, i - 3) for i in rows), grid.argmax(axis=1)
    assert np.mean([grid[i].max() for i in rows]) > 0.6
    unrelated = second_similarity(a, fingerprint(synth_music(2, 20.0), SAMPLE_RATE), 20, 20)
    assert unrelated.max() < 0.5
    assert not second_similarity(a, np.zeros(0, np.uint32), 20, 20).any()  # no audio: all zero


def test_agreement_counts_equal_bits() -> None:
    a = np.array([0, 0xFFFFFFFF, 0x0000FFFF], dtype=np.uint32)
    b = np.array([0, 0, 0xFFFF0000], dtype=np.uint32)
    np.testing.assert_allclose(agreement(a, b), [1.0, 0.0, 0.0])


@pytest.mark.parametrize("speed", [0.87, 1.18])
def test_a_sped_up_or_slowed_copy_still_lines_up(tune: np.ndarray, tmp_path: Path, speed: float) -> None:
    """atempo keeps the pitch and changes the tempo, as re-uploaders do; the map follows the slope."""
    import subprocess

    from rci.training.corpus.audio import read_wav, write_wav

    write_wav(tmp_path / "tune.wav", tune)
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(tmp_path / "tune.wav"), "-af", f"atempo={speed}",
                    str(tmp_path / "copy.wav")], check=True)
    copy = fingerprint(read_wav(tmp_path / "copy.wav"), SAMPLE_RATE)
    grid = second_similarity(copy, fingerprint(tune, SAMPLE_RATE), 20, 20)
    rows = range(1, 10)
    expected = [round(i * speed) for i in rows]  # copy second i plays the source's second i * speed
    assert sum(abs(int(np.argmax(grid[i])) - e) <= 1 for i, e in zip(rows, expected)) >= 7, grid.argmax(axis=1)
    unrelated = second_similarity(copy, fingerprint(synth_music(2, 20.0), SAMPLE_RATE), 20, 20)
    assert np.mean([grid[i].max() for i in rows]) > unrelated.max(axis=1)[: len(rows)].mean() + 0.25
