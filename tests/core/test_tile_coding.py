"""Tile coding (S&B 9.5.4) against hand-computed features: one feature per tiling, shared cells, no sharing one
tile apart, linear generalisation, asymmetric offsets, batching."""

from __future__ import annotations

import pytest
import torch

from thorndike.core.tile_coding import TileCoder

MOUNTAIN_CAR = ([-1.2, -0.07], [0.6, 0.07])


def test_one_dimension_two_tilings_by_hand() -> None:
    # low=0, high=1, tiles=2 -> w=0.5, u = 2x; tiling 0 offset 0, tiling 1 offset 1/2 tile; 3 features per tiling.
    # x=0.1: u=0.2 -> columns 0, floor(0.7)=0 -> [0, 3]; x=0.3: u=0.6 -> 0, floor(1.1)=1 -> [0, 4];
    # x=0.6: u=1.2 -> 1, floor(1.7)=1 -> [1, 4]; x=1.0: u=2 -> 2, floor(2.5)=2 -> [2, 5];
    # x=-5 and x=7 are clipped to 0 and 1.
    coder = TileCoder([0.0], [1.0], tiles=2, n_tilings=2)
    assert coder.n_features == 6
    x = torch.tensor([[0.1], [0.3], [0.6], [1.0], [-5.0], [7.0]])
    assert coder(x).tolist() == [[0, 3], [0, 4], [1, 4], [2, 5], [0, 3], [2, 5]]


def test_two_dimensions_by_hand() -> None:
    # tiles=1, 2 tilings over [0,1]^2: w=1, 2 columns per dimension -> 4 tiles per tiling, 8 features.
    # Offsets: tiling 0 (0, 0); tiling 1 (1*1 mod 2, 1*3 mod 2) / 2 = (1/2, 1/2).
    # (0.3, 0.7): tiling 0 columns (0, 0) -> 0; tiling 1 (floor 0.8, floor 1.2) = (0, 1) -> 0*2 + 1 + 4 = 5.
    # (0.6, 0.2): tiling 0 -> 0; tiling 1 (floor 1.1, floor 0.7) = (1, 0) -> 1*2 + 0 + 4 = 6.
    coder = TileCoder([0.0, 0.0], [1.0, 1.0], tiles=1, n_tilings=2)
    assert coder.n_features == 8
    assert coder(torch.tensor([[0.3, 0.7], [0.6, 0.2]])).tolist() == [[0, 5], [0, 6]]


def test_asymmetric_offsets_follow_one_three_five() -> None:
    # S&B 9.5.4: tiling k is displaced by k * (1, 3, 5) units of w / n (mod one tile); n = 8.
    coder = TileCoder([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], tiles=4, n_tilings=8)
    expected = torch.tensor([[(k * d) % 8 / 8 for d in (1, 3, 5)] for k in range(8)], dtype=torch.float64)
    torch.testing.assert_close(coder.offsets, expected, rtol=0, atol=0)
    # 1, 3 and 5 are odd, hence coprime with 8: along each dimension the 8 tilings have 8 different offsets, so
    # the tile edges of the tilings split every tile into 8 strips of width w / 8.
    assert [len(set(column.tolist())) for column in coder.offsets.T] == [8, 8, 8]


def test_each_point_activates_exactly_one_feature_per_tiling() -> None:
    coder = TileCoder(*MOUNTAIN_CAR, tiles=8, n_tilings=8)
    assert coder.n_features == 8 * 9 * 9
    g = torch.Generator().manual_seed(0)
    low, high = torch.tensor(MOUNTAIN_CAR[0]), torch.tensor(MOUNTAIN_CAR[1])
    x = low + (high - low) * torch.rand(5000, 2, generator=g) * 1.2 - 0.1 * (high - low)  # some outside the box
    active = coder(x)
    assert active.shape == (5000, 8) and active.dtype == torch.int64
    k = torch.arange(8)
    assert bool(((active >= k * 81) & (active < (k + 1) * 81)).all())  # tiling k's feature lies in its block
    dense = coder.dense(x)
    assert dense.sum(1).tolist() == [8.0] * 5000


def test_points_in_the_same_smallest_cell_share_all_features() -> None:
    # Every offset is a multiple of w / n in every dimension, so the cells of width w / n in each dimension are
    # the regions of constant features: draw a cell, then two points inside it.
    coder = TileCoder(*MOUNTAIN_CAR, tiles=8, n_tilings=8)
    g = torch.Generator().manual_seed(1)
    cell_width = coder.tile_width / 8
    cells = torch.randint(0, 64, (2000, 2), generator=g).double()
    a = coder.low + (cells + 0.05 + 0.9 * torch.rand(2000, 2, generator=g, dtype=torch.float64)) * cell_width
    b = coder.low + (cells + 0.05 + 0.9 * torch.rand(2000, 2, generator=g, dtype=torch.float64)) * cell_width
    assert torch.equal(coder(a), coder(b))


def test_a_point_one_tile_away_shares_no_feature() -> None:
    # Moving by one tile width w_d along dimension d moves the point one column over in every tiling.
    coder = TileCoder(*MOUNTAIN_CAR, tiles=8, n_tilings=8)
    g = torch.Generator().manual_seed(2)
    for d in range(2):
        x = coder.low + torch.rand(1000, 2, generator=g, dtype=torch.float64) * 7 * coder.tile_width
        y = x.clone()
        y[:, d] += coder.tile_width[d]
        assert not bool((coder(x) == coder(y)).any())


def test_generalisation_falls_linearly_with_distance_in_one_dimension() -> None:
    # 1-D, n tilings with offsets k/n: the strip boundaries are the multiples of w/n, so moving m strips (m <= n)
    # crosses m boundaries, each changing exactly one tiling's tile: n - m features stay shared.
    n = 8
    coder = TileCoder([0.0], [1.0], tiles=4, n_tilings=n)
    x = torch.tensor([[0.3 + 0.5 / (4 * n)]], dtype=torch.float64)  # the centre of a strip
    for m in range(n + 3):
        y = x + m / (4 * n)
        shared = len(set(coder(x)[0].tolist()) & set(coder(y)[0].tolist()))
        assert shared == max(n - m, 0)


def test_batch_equals_one_point_at_a_time() -> None:
    coder = TileCoder(*MOUNTAIN_CAR, tiles=5, n_tilings=4)
    x = torch.tensor([[-1.0, 0.01], [0.5, -0.06], [-0.3, 0.0]], dtype=torch.float32)
    assert torch.equal(coder(x), torch.stack([coder(row) for row in x]))


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        TileCoder([0.0, -float("inf")], [1.0, float("inf")])
    with pytest.raises(ValueError, match="exceed"):
        TileCoder([1.0], [1.0])
    with pytest.raises(ValueError, match="components"):
        TileCoder([0.0], [1.0])(torch.zeros(3, 2))
