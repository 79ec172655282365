"""Shared layers (rci.inference.layers) that both pair models use."""

from __future__ import annotations

import torch

from rci.inference.layers import background_level, chamfer_similarity


def test_chamfer_channel_is_the_mean_best_match_both_ways():
    s = torch.tensor([[[0.9, 0.1, 0.0], [0.2, 0.5, 0.0], [0.0, 0.0, 0.0]]])  # 2 x 2 real frames, padded to 3 x 3
    grid = torch.zeros(1, 3, 3)
    grid[0, :2, :2] = 1
    expected = 0.5 * ((0.9 + 0.5) / 2 + (0.9 + 0.5) / 2)
    torch.testing.assert_close(chamfer_similarity(s * grid, grid), torch.tensor([expected]))


def test_a_frames_background_level_is_the_mean_of_its_top_k_cosines_with_the_background():
    frames = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # [1,2,2]
    background = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])  # unit rows
    level = background_level(frames, background, views=1, topk=2)
    torch.testing.assert_close(level, torch.tensor([[(1.0 + 0.6) / 2, (1.0 + 0.8) / 2]]))
