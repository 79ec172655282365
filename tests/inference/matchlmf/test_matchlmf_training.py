"""MatchLMF learns: a tiny model trained briefly tells noisy copies from unrelated videos it never saw."""

from __future__ import annotations

import time
from dataclasses import fields, replace

import torch
import torch.nn.functional as F
from tests.inference.matchlmf.matchlmf_inputs import CONFIG, make_video, noisy_copy

from rci.inference.matchlmf.batch import MatchLMFBatch, build_batch
from rci.inference.matchlmf.model import MatchLMF


def synthetic_pairs(count: int, seed: int) -> tuple[MatchLMFBatch, torch.Tensor]:
    """`count` pairs, alternately a noisy copy of the query (label 1) and an unrelated video (label 0).
    Titles are random on both sides, so only the frames carry the answer."""
    pairs, labels = [], []
    for i in range(count):
        base = seed * 100_000 + 3 * i
        frames = 3 + i % 6
        query = make_video(f"q{base}", base, frames=frames, tokens=2)
        if i % 2 == 0:
            candidate = noisy_copy(query, base + 1, noise=0.5)
        else:
            candidate = make_video(f"u{base}", base + 2, frames=3 + (i // 2) % 6, tokens=2)
        pairs.append((query, candidate))
        labels.append(1 - i % 2)
    return build_batch(pairs, CONFIG), torch.tensor(labels)


def rows(batch: MatchLMFBatch, index: torch.Tensor) -> MatchLMFBatch:
    return replace(batch, **{f.name: getattr(batch, f.name)[index] for f in fields(batch)})


def test_a_tiny_model_learns_to_tell_copies_from_unrelated_videos():
    started = time.monotonic()
    torch.manual_seed(0)
    train, train_labels = synthetic_pairs(1024, seed=1)  # enough distinct videos that memorising them does not pay
    held_out, held_out_labels = synthetic_pairs(128, seed=2)
    model = MatchLMF(CONFIG)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        index = torch.randint(0, len(train), (32,))
        loss = F.cross_entropy(model(rows(train, index)).logits, train_labels[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(held_out).logits.argmax(dim=1) == held_out_labels).float().mean().item()
    assert accuracy > 0.9
    assert time.monotonic() - started < 20
