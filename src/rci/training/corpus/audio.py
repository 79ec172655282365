"""Soundtracks: seeded procedural music synthesised in numpy, and voice-overs spoken by espeak-ng.

Like the visuals, a soundtrack is a pure function of its `AudioRecipe` and the clip duration, so two
videos that share a recipe share the same samples, to float32 rounding (the "same audio over different visuals" hard
negatives and the shared music beds of templates rely on this).
"""

from __future__ import annotations

import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from rci.training.corpus.ffmpeg import espeak

SAMPLE_RATE = 22_050  # espeak-ng's native rate; encoders resample to 16 kHz anyway

_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "pentatonic": (0, 2, 4, 7, 9),
}
_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 4), (5, 3, 0, 4), (0, 2, 3, 4))  # scale degrees
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "f5")


@dataclass(frozen=True)
class AudioRecipe:
    """A soundtrack: music from `seed`, or `sentences` spoken by `voice` over an optional quiet music bed."""

    kind: Literal["music", "speech"]
    seed: int
    sentences: tuple[str, ...] = ()
    voice: str = ""
    bed_seed: int | None = None

    @property
    def content(self) -> str:
        """What a listener would call "the same audio": equal for recipes that sound the same."""
        return f"music:{self.seed}" if self.kind == "music" else f"speech:{self.voice}:{' '.join(self.sentences)}"


def random_voice(rng: np.random.Generator) -> str:
    return f"{VOICES[int(rng.integers(len(VOICES)))]}+{VARIANTS[int(rng.integers(len(VARIANTS)))]}"


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _tone(freq: float, length: int, timbre: np.ndarray, attack: float, release: float) -> np.ndarray:
    """One note: a few harmonics weighted by `timbre`, with a linear attack and exponential release."""
    t = np.arange(length, dtype=np.float32) / SAMPLE_RATE
    wave_ = sum(w * np.sin(2 * np.pi * freq * (h + 1) * t) for h, w in enumerate(timbre) if w > 0)
    env = np.minimum(1.0, t / max(attack, 1e-3)) * np.exp(-t / max(release, 1e-3))
    return (wave_ * env).astype(np.float32)


def synth_music(seed: int, duration_s: float) -> np.ndarray:
    """A short seeded tune: chord pads, a bass line, a melody on a random scale, optional percussion.

    Returns float32 mono samples in [-1, 1], exactly `duration_s` long.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * SAMPLE_RATE))
    out = np.zeros(n + SAMPLE_RATE * 2, dtype=np.float32)  # room for release tails
    beat = int(SAMPLE_RATE * 60 / rng.uniform(80, 140))
    root = int(rng.integers(48, 60))
    scale = list(_SCALES.values())[int(rng.integers(len(_SCALES)))]
    progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    timbre = rng.dirichlet(np.ones(4)) * np.array([1.0, 0.6, 0.35, 0.2])
    drums = rng.random() < 0.6

    def degree(d: int) -> int:
        return root + scale[d % len(scale)] + 12 * (d // len(scale))

    melody_degree = int(rng.integers(len(scale), 2 * len(scale)))
    for bar_start in range(0, n, beat * 4):
        chord_root = progression[(bar_start // (beat * 4)) % len(progression)]
        for d in (chord_root, chord_root + 2, chord_root + 4):  # the triad, held for the bar
            _add(out, bar_start, 0.10 * _tone(_midi_hz(degree(d)), beat * 4, timbre, 0.2, 1.5))
        for b in range(4):
            start = bar_start + b * beat
            _add(out, start, 0.22 * _tone(_midi_hz(degree(chord_root) - 12), beat, timbre[:2], 0.01, 0.25))
            if drums:
                _add(out, start, 0.3 * _kick(beat))
                _add(out, start + beat // 2, 0.06 * _hat(rng, beat // 4))
            for half in (0, beat // 2):  # melody in eighths, random walk on the scale, some rests
                melody_degree = int(np.clip(melody_degree + rng.integers(-2, 3), len(scale), 3 * len(scale)))
                if rng.random() < 0.8:
                    _add(out, start + half, 0.18 * _tone(_midi_hz(degree(melody_degree)), beat // 2, timbre, 0.01, 0.2))
    out = out[:n]
    peak = float(np.max(np.abs(out))) or 1.0
    return (0.8 * out / peak).astype(np.float32)


def _kick(length: int) -> np.ndarray:
    t = np.arange(length, dtype=np.float32) / SAMPLE_RATE
    return (np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 30)) * t) * np.exp(-t * 12)).astype(np.float32)


def _hat(rng: np.random.Generator, length: int) -> np.ndarray:
    t = np.arange(length, dtype=np.float32) / SAMPLE_RATE
    return (rng.uniform(-1, 1, size=length) * np.exp(-t * 60)).astype(np.float32)


def _add(buffer: np.ndarray, start: int, signal: np.ndarray) -> None:
    end = min(len(buffer), start + len(signal))
    if end > start:
        buffer[start:end] += signal[: end - start]


def read_wav(path: Path) -> np.ndarray:
    """16-bit mono WAV -> float32 samples (espeak-ng writes SAMPLE_RATE; asserted by the caller's use)."""
    with wave.open(str(path)) as wav:
        frames = wav.readframes(wav.getnframes())
    return np.frombuffer(frames, dtype=np.int16).astype(np.float32) / 32768.0


def write_wav(path: Path, samples: np.ndarray) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm.tobytes())


def speak(recipe: AudioRecipe, duration_s: float, workdir: Path) -> np.ndarray:
    """The recipe's sentences, spoken, cut or padded with silence to `duration_s`."""
    rng = np.random.default_rng(recipe.seed)
    wpm, pitch = int(rng.integers(140, 190)), int(rng.integers(25, 75))
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=workdir) as tmp:
        espeak(" ".join(recipe.sentences), recipe.voice, wpm, pitch, Path(tmp.name))
        speech = read_wav(Path(tmp.name))
    return _fit(speech, duration_s)


def _fit(samples: np.ndarray, duration_s: float) -> np.ndarray:
    n = int(round(duration_s * SAMPLE_RATE))
    return np.pad(samples[:n], (0, max(0, n - len(samples)))).astype(np.float32)


def render_audio(recipe: AudioRecipe, duration_s: float, workdir: Path) -> np.ndarray:
    """The soundtrack of `recipe`, `duration_s` long, float32 mono at SAMPLE_RATE."""
    if recipe.kind == "music":
        return synth_music(recipe.seed, duration_s)
    speech = speak(recipe, duration_s, workdir)
    if recipe.bed_seed is not None:  # a quiet music bed under the voice, as template videos have
        speech = 0.85 * speech + 0.12 * synth_music(recipe.bed_seed, duration_s)
    return speech
