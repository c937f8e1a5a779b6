"""plot.episode_curves: many runs' per-episode values as a mean with a band."""

import math

import torch

from thorndike import plot


def test_episode_curves_accepts_ragged_runs(tmp_path):
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, math.nan, math.nan]])
    path = plot.episode_curves({"a": values, "b": values * 2}, tmp_path / "e.png", smooth=2)
    assert path.stat().st_size > 5_000
