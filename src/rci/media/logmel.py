"""Whisper's audio front end in numpy: 16 kHz mono -> [80, 3000] log-mel of the first 30 s.

The same computation as OpenAI Whisper's `log_mel_spectrogram` (and transformers'
`WhisperFeatureExtractor`, the reference the tests compare against):

1. pad with zeros / trim to 30 s = 480 000 samples;
2. STFT with a periodic Hann window, n_fft 400 (25 ms), hop 160 (10 ms), centred frames with
   reflect padding -> 3001 frames, of which the last is dropped -> 3000;
3. power spectrum |X|^2 through 80 triangular mel filters on the Slaney scale with Slaney area
   normalisation (librosa's default, which Whisper's filter bank was built with);
4. log10 (floored at 1e-10), clamped to (max - 8), then (x + 4) / 4.

Kept in numpy (float64 inside, float32 out) so decoding workers need no torch thread pool.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
CHUNK_S = 30
N_SAMPLES = CHUNK_S * SAMPLE_RATE  # 480 000
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3 000


def log_mel_spectrogram(audio: np.ndarray) -> np.ndarray:
    """[S] float mono 16 kHz -> [N_MELS, N_FRAMES] float32 Whisper log-mel of the first 30 s."""
    samples = pad_or_trim(np.asarray(audio, dtype=np.float64))
    power = _power_spectrum(samples)  # [N_FFT // 2 + 1, N_FRAMES]
    mel = mel_filters() @ power  # [N_MELS, N_FRAMES]
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)  # 80 dB dynamic range below the loudest bin
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def pad_or_trim(audio: np.ndarray, length: int = N_SAMPLES) -> np.ndarray:
    """Zero-pad at the end or cut to exactly `length` samples."""
    if len(audio) >= length:
        return audio[:length]
    return np.pad(audio, (0, length - len(audio)))


def _power_spectrum(samples: np.ndarray) -> np.ndarray:
    half = N_FFT // 2
    padded = np.pad(samples, (half, half), mode="reflect")  # centre each frame on its hop
    n_frames = 1 + (len(padded) - N_FFT) // HOP_LENGTH  # 3001
    starts = np.arange(n_frames) * HOP_LENGTH
    frames = padded[starts[:, None] + np.arange(N_FFT)[None, :]]  # [3001, N_FFT]
    spectrum = np.fft.rfft(frames * _hann_window(), axis=1)  # [3001, N_FFT // 2 + 1]
    power = np.abs(spectrum) ** 2
    return power[:-1].T  # Whisper drops the last frame -> [N_FFT // 2 + 1, 3000]


@lru_cache(maxsize=1)
def _hann_window() -> np.ndarray:
    n = np.arange(N_FFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)  # periodic (torch.hann_window's default)


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """[N_MELS, N_FFT // 2 + 1] float64 Slaney-scale, Slaney-normalised triangular filters, 0..8 kHz."""
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_edges = np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2)
    hz_edges = _mel_to_hz(mel_edges)  # N_MELS + 2 edges: filter m spans edges m .. m+2
    lower, centre, upper = hz_edges[:-2, None], hz_edges[1:-1, None], hz_edges[2:, None]
    rising = (fft_freqs[None, :] - lower) / (centre - lower)
    falling = (upper - fft_freqs[None, :]) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (upper - lower))  # Slaney norm: every filter has unit area


# Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15 mel
_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return np.where(hz >= _MIN_LOG_HZ, log, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    linear = mel * _F_SP
    log = _MIN_LOG_HZ * np.exp(_LOG_STEP * (mel - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, linear)
