"""Tiny synthetic pair sets for training tests: features built directly, no media, no encoders.

A reproduced pair's query is its candidate's frames with noise (and the same audio and text);
a normal pair's videos are unrelated. Widths are tiny so a MatchLite step takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from rci.inference.features import VideoFeatures
from rci.inference.matchlite import MatchLiteConfig
from rci.training.data import PairDataset, PairExample, TeacherPairDataset, TeacherVideo

DIMS = dict(visual_dim=8, audio_dim=6, text_dim=5, max_frames=4, text_tokens=3)


def tiny_config(**overrides: object) -> MatchLiteConfig:
    return MatchLiteConfig.small(**{**DIMS, "dropout": 0.0, **overrides})


def _video(video_id: str, rng: np.random.Generator, base: VideoFeatures | None = None) -> VideoFeatures:
    frames = int(rng.integers(2, DIMS["max_frames"] + 1))
    visual_mask = np.arange(DIMS["max_frames"]) < frames
    if base is None:
        visual = rng.normal(size=(DIMS["max_frames"], DIMS["visual_dim"])).astype(np.float32)
        audio = rng.normal(size=DIMS["audio_dim"]).astype(np.float32)
        text = rng.normal(size=(DIMS["text_tokens"], DIMS["text_dim"])).astype(np.float32)
    else:
        visual = base.visual + 0.1 * rng.normal(size=base.visual.shape).astype(np.float32)
        audio, text = base.audio.copy(), base.text.copy()
    visual = visual * visual_mask[:, None]
    return VideoFeatures(
        video_id=video_id,
        encoder_version="enc-test",
        visual=visual.astype(np.float32),
        visual_mask=visual_mask,
        audio=audio,
        has_audio=True,
        text=text,
        text_mask=np.ones(DIMS["text_tokens"], bool),
        duration_s=float(frames),
    )


def synthetic_dataset(n_pairs: int = 16, seed: int = 0, split: str = "train") -> PairDataset:
    """Half reproduced, half normal pairs; the subset name says which."""
    rng = np.random.default_rng(seed)
    features: dict[str, VideoFeatures] = {}
    examples = []
    for k in range(n_pairs):
        label = k % 2
        cand = _video(f"{split}-c{k}", rng)
        query = _video(f"{split}-q{k}", rng, base=cand if label else None)
        features[cand.video_id], features[query.video_id] = cand, query
        aux = {"visual": label, "audio": label, "text": None if k % 4 == 0 else label}
        examples.append(PairExample(query.video_id, cand.video_id, label, "copy" if label else "unrelated", split, aux))
    return PairDataset(examples, features)


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Import into a test module: one intra-op thread. The CPU is shared; torch's default thread
    pool oversubscribes it and tiny models then run tens of times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _teacher_video(rng: np.random.Generator, base: TeacherVideo | None = None) -> TeacherVideo:
    if base is None:
        frames = rng.integers(0, 256, (int(rng.integers(2, 5)), 32, 32, 3), dtype=np.uint8)
        audio = rng.normal(size=(50, 32)).astype(np.float32)
        title = str(rng.choice(["the cat plays", "a dog jumps", "chef cooks", "drone films"]))
    else:
        noise = rng.integers(-8, 9, base.frames.shape)
        frames = np.clip(base.frames.astype(int) + noise, 0, 255).astype(np.uint8)
        audio, title = base.audio_features.copy(), base.title
    return TeacherVideo(frames=frames, duration_s=float(len(frames)), title=title, audio_features=audio)


def synthetic_teacher_dataset(n_pairs: int = 8, seed: int = 0) -> TeacherPairDataset:
    """The same layout as `synthetic_dataset`, as MatchLM inputs (32 px frames, Whisper-like states)."""
    rng = np.random.default_rng(seed)
    videos: dict[str, TeacherVideo] = {}
    examples = []
    for k in range(n_pairs):
        label = k % 2
        videos[f"c{k}"] = _teacher_video(rng)
        videos[f"q{k}"] = _teacher_video(rng, base=videos[f"c{k}"] if label else None)
        aux = {"visual": label, "audio": label, "text": label}
        examples.append(PairExample(f"q{k}", f"c{k}", label, "copy" if label else "unrelated", "train", aux))
    return TeacherPairDataset(examples, videos)
