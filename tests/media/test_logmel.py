from __future__ import annotations

import numpy as np
import pytest
from transformers import WhisperFeatureExtractor
from transformers.audio_utils import mel_filter_bank

from rci.media.logmel import N_FRAMES, N_MELS, N_SAMPLES, SAMPLE_RATE, log_mel_spectrogram, mel_filters, pad_or_trim


@pytest.fixture(scope="module")
def whisper() -> WhisperFeatureExtractor:
    # The reference front end; it needs no weights, only its default Whisper configuration.
    return WhisperFeatureExtractor(feature_size=N_MELS)


def speechlike(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    chirp = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    return (chirp + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize(("seconds", "seed"), [(3.0, 0), (29.99, 1), (42.0, 2), (0.01, 3)])
def test_log_mel_matches_whisper_reference(whisper: WhisperFeatureExtractor, seconds: float, seed: int) -> None:
    audio = speechlike(seconds, seed)
    ours = log_mel_spectrogram(audio)
    reference = whisper(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
    assert ours.shape == reference.shape == (N_MELS, N_FRAMES)
    assert ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-3


def test_silence_matches_whisper_reference(whisper: WhisperFeatureExtractor) -> None:
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    reference = whisper(silence, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
    assert np.abs(log_mel_spectrogram(silence) - reference).max() < 1e-3


def test_mel_filters_are_slaney_like_librosa() -> None:
    reference = mel_filter_bank(
        num_frequency_bins=201, num_mel_filters=N_MELS, min_frequency=0.0, max_frequency=SAMPLE_RATE / 2,
        sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney",
    )  # [201, 80]
    np.testing.assert_allclose(mel_filters(), reference.T, atol=1e-9)


def test_pad_or_trim_gives_exactly_30_seconds() -> None:
    assert len(pad_or_trim(np.ones(10))) == N_SAMPLES
    assert pad_or_trim(np.ones(10))[10:].sum() == 0
    assert len(pad_or_trim(np.ones(N_SAMPLES + 5))) == N_SAMPLES


def test_only_the_first_30_seconds_count() -> None:
    audio = speechlike(30.0, 4)
    longer = np.concatenate([audio, np.ones(SAMPLE_RATE, dtype=np.float32)])
    np.testing.assert_array_equal(log_mel_spectrogram(audio), log_mel_spectrogram(longer))
