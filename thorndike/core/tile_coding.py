"""Tile coding: binary features of a continuous observation, for linear function approximation.

Notes: 000 L141-L143 (approximate Q-learning with a linear function of features instead of a table); the method is
Sutton & Barto (2nd ed.) section 9.5.4. The notes give no feature construction; this is the standard one for
low-dimensional Box observations such as MountainCar's (position, velocity).

A tiling is a grid over the observation box with ``tiles`` tiles per dimension, tile width
``w_d = (high_d - low_d) / tiles``. ``n_tilings`` such grids are each shifted by a fraction of a tile, so a point
lies in exactly one tile of every tiling and its feature vector has exactly ``n_tilings`` ones. The shifts are
asymmetric (S&B 9.5.4): tiling ``k`` is displaced by ``k * (1, 3, 5, ...)`` units of ``w / n_tilings`` (taken modulo
one tile), which avoids the diagonal artefacts of shifting every dimension by the same amount.

Coordinates. In tile units ``u_d = (x_d - low_d) / w_d`` lies in ``[0, tiles]``; tiling ``k`` puts the point in
column ``floor(u_d + o_kd)`` with ``o_kd = ((2d + 1) k mod n) / n``. Since ``u + o`` reaches ``tiles + o < tiles + 1``,
each tiling needs ``tiles + 1`` columns per dimension (the extra one catches the shifted edge), so a tiling has
``(tiles + 1)^d`` tiles and there are ``n_features = n_tilings * (tiles + 1)^d`` features. Tiling ``k``'s features are
numbered ``k * tiles_per_tiling + ravel(columns)``, so indices are global and can index one weight vector.

Hand check (1-D, low=0, high=1, tiles=2, n_tilings=2): w = 0.5, offsets 0 and 1/2 tile, 3 features per tiling.
x=0.1 (u=0.2): columns 0 and floor(0.7)=0, features [0, 3]; x=0.3 (u=0.6): [0, 3 + floor(1.1)] = [0, 4];
x=0.6 (u=1.2): [1, 4]; x=1.0 (u=2): [2, 3 + floor(2.5)] = [2, 5]. Points closer than w / n_tilings = 0.25 inside the
same strip share both features, points one tile apart share none.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["TileCoder"]


class TileCoder:
    """``n_tilings`` offset grids of ``tiles`` tiles per dimension over the box ``[low, high]``.

    ``coder(obs)`` maps observations ``[N, d]`` (any float dtype, any device) to the active feature indices
    ``[N, n_tilings]`` (int64), one per tiling; observations outside the box are clipped to it first. The
    computation is a handful of tensor ops on the whole batch (no Python loop over samples).
    """

    def __init__(self, low: Sequence[float] | Tensor, high: Sequence[float] | Tensor, tiles: int = 8,
                 n_tilings: int = 8, device: torch.device | str = "cpu") -> None:
        low_t = torch.as_tensor(low, dtype=torch.float64, device=device).reshape(-1)
        high_t = torch.as_tensor(high, dtype=torch.float64, device=device).reshape(-1)
        if low_t.shape != high_t.shape or low_t.numel() == 0:
            raise ValueError(f"low and high must be non-empty and of the same length, got {low_t.shape} and "
                             f"{high_t.shape}")
        if not (torch.isfinite(low_t).all() and torch.isfinite(high_t).all()):
            raise ValueError(f"tile coding needs finite bounds, got low={low_t.tolist()} high={high_t.tolist()}; "
                             "give the range the observations actually cover")
        if not bool((high_t > low_t).all()):
            raise ValueError(f"every high must exceed its low, got low={low_t.tolist()} high={high_t.tolist()}")
        if not isinstance(tiles, int) or tiles < 1:
            raise ValueError(f"tiles must be a positive int, got {tiles!r}")
        if not isinstance(n_tilings, int) or n_tilings < 1:
            raise ValueError(f"n_tilings must be a positive int, got {n_tilings!r}")
        self.low, self.high = low_t, high_t
        self.tiles = tiles
        self.n_tilings = n_tilings
        self.dims = low_t.numel()
        self.tile_width = (high_t - low_t) / tiles
        columns = tiles + 1  # one extra column per dimension for the shifted edge (see the module docstring)
        self.tiles_per_tiling = columns**self.dims
        k = torch.arange(n_tilings, dtype=torch.int64, device=device)
        displacement = 2 * torch.arange(self.dims, dtype=torch.int64, device=device) + 1  # (1, 3, 5, ...)
        # Offsets in tile units, in [0, 1): exact multiples of 1 / n_tilings.
        self.offsets = ((k[:, None] * displacement[None, :]) % n_tilings).double() / n_tilings  # [n_tilings, d]
        # Row-major strides turn a tiling's d columns into one index; tiling k's block starts at k * tiles_per_tiling.
        # Both are kept as float64 so that the index is one matmul (exact: indices are far below 2**53).
        self.strides = (columns ** torch.arange(self.dims - 1, -1, -1, device=device)).double()
        self.tiling_start = (k * self.tiles_per_tiling).double()
        self.inv_width = 1.0 / self.tile_width
        self.shift = -self.low * self.inv_width

    @property
    def n_features(self) -> int:
        """The length of the (binary) feature vector: ``n_tilings * (tiles + 1)^d``."""
        return self.n_tilings * self.tiles_per_tiling

    def __call__(self, obs: Tensor) -> Tensor:
        """Active feature indices ``[N, n_tilings]`` of observations ``[N, d]`` (a single ``[d]`` gives ``[n]``)."""
        single = obs.dim() == 1
        x = obs.reshape(1, -1) if single else obs
        if x.shape[-1] != self.dims:
            raise ValueError(f"expected observations with {self.dims} components, got shape {tuple(obs.shape)}")
        # Tile units u = (x - low) / w as one fused multiply-add, clipped to the box: [N, d].
        u = torch.addcmul(self.shift, x.to(self.low), self.inv_width).clamp_(0.0, float(self.tiles))
        # Columns floor(u + o) <= tiles + (n - 1) / n < tiles + 1, so no column leaves its tiling: [N, n_tilings, d].
        columns = (u.unsqueeze(1) + self.offsets).floor_()
        active = torch.matmul(columns, self.strides).add_(self.tiling_start).long()
        return active[0] if single else active

    def dense(self, obs: Tensor) -> Tensor:
        """The binary feature vectors ``[N, n_features]`` (float64): ones at the active indices. For inspection
        and tests; learners use the indices directly."""
        active = self(obs.reshape(-1, self.dims))
        out = torch.zeros(active.shape[0], self.n_features, dtype=torch.float64, device=active.device)
        return out.scatter_(1, active, 1.0)

    def __repr__(self) -> str:
        return (f"TileCoder(dims={self.dims}, tiles={self.tiles}, n_tilings={self.n_tilings}, "
                f"n_features={self.n_features})")
