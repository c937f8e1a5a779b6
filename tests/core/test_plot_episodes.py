"""plot.episode_curves and runs_mean: many runs' per-episode values as a mean with a standard-error band."""

import math

import numpy as np
import torch

from thorndike import plot


def test_runs_mean_by_hand_with_a_run_that_has_fewer_episodes():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [3.0, 4.0, math.nan, math.nan]])
    episodes, mean, sem = plot.runs_mean(values)
    assert episodes.tolist() == [1, 2, 3, 4]
    assert np.allclose(mean, [2.0, 3.0, 3.0, 4.0])  # the missing episodes average over the one run that has them
    assert np.allclose(sem, [1 / math.sqrt(2), 1 / math.sqrt(2), 0.0, 0.0])  # population std 1 over 2 runs
    episodes, mean, _ = plot.runs_mean(values, smooth=2)
    assert episodes.tolist() == [2, 3, 4] and np.allclose(mean, [2.5, 3.0, 3.5])


def test_episode_curves_draws_ragged_runs(tmp_path):
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, math.nan, math.nan]])
    path = plot.episode_curves({"a": values, "b": values * 2}, tmp_path / "e.png", smooth=2)
    assert path.stat().st_size > 5_000
