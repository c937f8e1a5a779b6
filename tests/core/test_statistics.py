"""IQM, percentile-bootstrap intervals and the common step grid of thorndike.core.statistics, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from thorndike.core.statistics import bootstrap_ci, common_grid, interpolate, iqm, mean_and_stderr


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # drops 1, 2 and 7, 8
    assert iqm([100, -50, 0, 1, 2, 3, 4, 5]) == pytest.approx(2.5)  # the outliers go: mean of 1, 2, 3, 4
    assert iqm(list(range(10))) == pytest.approx(4.5)  # 10 // 4 = 2 dropped at each end: mean of 2..7
    assert iqm([1, 2, 9]) == pytest.approx(4.0)  # fewer than 4 values: nothing to drop
    rows = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [1000.0, -1000.0]])
    np.testing.assert_allclose(iqm(rows, axis=0), [2.5, 15.0])  # per column, over the seeds
    values = np.random.default_rng(1).normal(size=(13, 5))
    np.testing.assert_allclose(iqm(values), stats.trim_mean(values, 0.25, axis=0))  # rliable's definition


def test_bootstrap_of_identical_values_is_a_point() -> None:
    low, high = bootstrap_ci([3.0, 3.0, 3.0, 3.0])
    assert low == high == 3.0
    low, high = bootstrap_ci(np.full((5, 3), 7.0), statistic=iqm)
    np.testing.assert_array_equal(low, [7.0] * 3)
    np.testing.assert_array_equal(high, [7.0] * 3)


def test_bootstrap_of_two_seeds_spans_both() -> None:
    # Resampling {0, 1} twice gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5% quantile is 0 and
    # the 97.5% quantile is 1.
    low, high = bootstrap_ci([0.0, 1.0], resamples=4000)
    assert (low, high) == (0.0, 1.0)


def test_bootstrap_interval_contains_the_mean_narrows_with_seeds_and_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    few, many = rng.normal(5.0, 2.0, size=5), rng.normal(5.0, 2.0, size=200)
    for values in (few, many):
        low, high = bootstrap_ci(values)
        assert low < values.mean() < high
        low_iqm, high_iqm = bootstrap_ci(values, statistic=iqm)
        assert low_iqm < iqm(values) < high_iqm
    assert np.ptp(bootstrap_ci(many)) < np.ptp(bootstrap_ci(few))
    assert bootstrap_ci(few, seed=3) == bootstrap_ci(few, seed=3)
    assert bootstrap_ci(few, seed=3) != bootstrap_ci(few, seed=4)
    curves = rng.normal(size=(6, 4))
    low, high = bootstrap_ci(curves)
    assert low.shape == high.shape == (4,) and np.all(low <= curves.mean(axis=0)) and np.all(curves.mean(0) <= high)


def test_common_grid_is_the_shared_range_at_the_logged_steps() -> None:
    grid = common_grid([[0, 10, 20, 30], [5, 15, 25]])
    np.testing.assert_array_equal(grid, [5, 10, 15, 20, 25])
    np.testing.assert_array_equal(common_grid([[0, 64, 128], [0, 64, 128]]), [0, 64, 128])
    np.testing.assert_allclose(common_grid([np.arange(0, 1000, 3), np.arange(1, 999, 7)], max_points=5),
                               np.linspace(1, 995, 5))  # 1 is the latest start, 995 the earliest end (7 * 142 + 1)
    with pytest.raises(ValueError, match="share no steps"):
        common_grid([[0, 10], [20, 30]])


def test_interpolate_reads_between_logged_points_and_skips_missing_ones() -> None:
    np.testing.assert_allclose(interpolate([0, 10, 20], [0.0, 1.0, 3.0], [0, 5, 15, 20]), [0.0, 0.5, 2.0, 3.0])
    # the NaN at step 10 (a row without an evaluation) is not a point: 0 -> 20 is one straight line
    np.testing.assert_allclose(interpolate([0, 10, 20], [0.0, np.nan, 4.0], [10]), [2.0])


def test_mean_and_stderr_by_hand():
    # terms 1, 2, 3, 6: mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 14/3, standard error sqrt(14/3) / 2
    mean, stderr = mean_and_stderr(torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=torch.float64))
    assert mean == 3.0
    assert stderr == pytest.approx((14 / 3) ** 0.5 / 2, rel=1e-12)
