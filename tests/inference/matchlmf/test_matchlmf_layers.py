"""The biased attention block: biases reach the right logits, padding reaches none."""

from __future__ import annotations

import torch

from rci.inference.matchlmf.layers import BiasedSelfAttention, key_padding_bias, place_cross_block


def test_cross_block_and_its_transpose_are_placed():
    grid = torch.zeros(1, 6, 6)
    block = torch.arange(1.0, 7.0).reshape(1, 2, 3)  # rows 1-2 x cols 3-5
    place_cross_block(grid, block, rows=1, cols=3)
    torch.testing.assert_close(grid[0, 1:3, 3:6], block[0])
    torch.testing.assert_close(grid[0, 3:6, 1:3], block[0].T)
    assert grid.sum() == 2 * block.sum()


def test_bias_steers_each_head_by_its_own_weight_and_padding_gets_nothing():
    torch.manual_seed(0)
    attn = BiasedSelfAttention(width=8, heads=2, bias_maps=1, dropout=0.0).eval()
    with torch.no_grad():
        attn.qkv.weight.zero_()  # q = k = 0: the logits are the biases alone
        attn.qkv.bias.zero_()
        attn.map_weight.copy_(torch.tensor([[20.0, 0.0]]))  # head 0 follows the map, head 1 ignores it
    maps = torch.zeros(1, 1, 4, 4)
    maps[0, 0, 0, 2] = 1.0  # token 0 resembles token 2
    mask = torch.tensor([[True, True, True, False]])  # token 3 is padding
    weights = (attn.logit_bias(maps, key_padding_bias(mask))).softmax(dim=-1)  # [1,h,T,T] with zero q.k
    assert weights[0, 0, 0, 2] > 0.99  # head 0: token 0 attends to its match
    torch.testing.assert_close(weights[0, 1, 0, :3], torch.full((3,), 1 / 3))  # head 1: uniform over real keys
    assert weights[..., 3].max() == 0.0  # padding: exactly no weight


def test_rows_with_every_key_masked_stay_finite():
    attn = BiasedSelfAttention(width=8, heads=2, bias_maps=1, dropout=0.0)
    out = attn(torch.randn(2, 3, 8), torch.zeros(2, 1, 3, 3), key_padding_bias(torch.zeros(2, 3, dtype=torch.bool)))
    assert torch.isfinite(out).all()
