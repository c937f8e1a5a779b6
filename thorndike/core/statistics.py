"""Statistics over seeds: the interquartile mean, percentile-bootstrap confidence intervals, and putting curves
logged at different steps onto one grid.

Following Agarwal et al. (2021, "Deep RL at the edge of the statistical precipice", the rliable library), a few
seeds are summarised by the mean and by the interquartile mean (IQM, the mean of the middle half of the seeds,
robust to one seed that fails or shoots up), each with a 95% percentile-bootstrap interval over seeds.
:func:`mean_and_stderr` is the sample mean of i.i.d. terms (paths, logged rows) with its standard error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike

__all__ = ["bootstrap_ci", "common_grid", "interpolate", "iqm", "mean_and_stderr"]


def mean_and_stderr(terms: torch.Tensor) -> tuple[float, float]:
    """(mean, standard error) of i.i.d. terms: the sample mean and std (ddof 1) / sqrt(n), over all elements."""
    return float(terms.mean()), float(terms.std() / np.sqrt(terms.numel()))


def iqm(values: ArrayLike, axis: int = 0) -> np.ndarray:
    """The interquartile mean along ``axis``: sort, drop ``floor(n / 4)`` values at each end, average the rest (as
    rliable does with ``scipy.stats.trim_mean(x, 0.25)``). For fewer than 4 values nothing is dropped: the mean."""
    values = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    n = values.shape[axis]
    if n == 0:
        raise ValueError("iqm of no values")
    cut = n // 4
    return np.take(values, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def bootstrap_ci(values: ArrayLike, statistic: Callable[..., np.ndarray] = np.mean,
                 confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The percentile-bootstrap interval of ``statistic`` over the seeds (axis 0) of ``values`` (``[seeds]`` or
    ``[seeds, points]``): draw ``resamples`` sets of seeds with replacement, compute the statistic of each, take the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles. One resample of seeds serves every point of a
    curve, so the band is that of whole curves. ``statistic(x, axis=0)``; ``seed`` fixes the draws."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if n == 0:
        raise ValueError("bootstrap of no values")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))
    stats = np.stack([statistic(values[p], axis=0) for p in picks])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha], axis=0)
    return low, high


def common_grid(steps: Sequence[ArrayLike], max_points: int = 200) -> np.ndarray:
    """The steps at which every curve can be read without extrapolating: from the latest first step to the earliest
    last step, at the steps the curves were logged at (their union) or, when that is more than ``max_points``,
    at ``max_points`` evenly spaced steps. Curves logged at the same steps (PPO's seeds) keep exactly those."""
    if not steps:
        raise ValueError("no curves")
    steps = [np.asarray(s, dtype=np.float64) for s in steps]
    if any(len(s) == 0 for s in steps):
        raise ValueError("a curve has no points")
    start, end = max(float(s.min()) for s in steps), min(float(s.max()) for s in steps)
    if start > end:
        raise ValueError(f"the curves share no steps (the latest starts at {start:g}, the earliest ends at {end:g})")
    union = np.unique(np.concatenate([s[(s >= start) & (s <= end)] for s in steps]))
    if len(union) <= max_points:
        return union
    return np.linspace(start, end, max_points)


def interpolate(steps: ArrayLike, values: ArrayLike, grid: ArrayLike) -> np.ndarray:
    """A curve read at ``grid`` by linear interpolation between its logged points (NaN points, such as rows without
    an evaluation, are left out first)."""
    steps, values = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    keep = ~np.isnan(values)
    order = np.argsort(steps[keep], kind="stable")
    return np.interp(np.asarray(grid, dtype=np.float64), steps[keep][order], values[keep][order])
