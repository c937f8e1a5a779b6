"""The Almgren-Chriss closed forms against hand computations, the optimality conditions, and the notes' errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thorndike.envs.finance import (
    almgren_chriss,
    continuous_holdings,
    continuous_kappa,
    continuous_rate,
    discrete_kappa,
    efficient_frontier,
    notes_holdings,
    notes_rate,
    schedule_cost,
    twap,
    vwap,
)
from thorndike.envs.finance.almgren_chriss import sinh_ratio

AC = {"X": 1e6, "T": 5.0, "N": 10, "sigma": 0.95, "eta": 2.5e-6, "gamma": 2.5e-7}  # the AC paper's market, N = 10
COST = {k: AC[k] for k in ("T", "sigma", "eta", "gamma")}


def test_two_steps_by_hand():
    # N = 2: only x_1 is free. E + lam Var = (eta/tau) ((X - x1)^2 + x1^2) + lam sigma^2 tau x1^2 (gamma = 0) is
    # minimised at x1 = X / (2 + lam sigma^2 tau^2 / eta): with X=1, T=2 (tau=1), sigma=1, eta=1, lam=2, x1 = 1/4.
    s = almgren_chriss(X=1.0, T=2.0, N=2, sigma=1.0, eta=1.0, gamma=0.0, lam=2.0)
    np.testing.assert_allclose(s.holdings, [1.0, 0.25, 0.0], atol=1e-15)
    np.testing.assert_allclose(s.trades, [0.75, 0.25], atol=1e-15)
    assert s.expected_cost == pytest.approx(0.75**2 + 0.25**2, abs=1e-15)  # (eta/tau) sum n^2
    assert s.variance == pytest.approx(0.25**2, abs=1e-15)                  # sigma^2 tau x_1^2
    assert s.objective(2.0) == pytest.approx(0.625 + 2 * 0.0625)


def test_expected_cost_and_variance_by_hand_with_permanent_impact():
    # TWAP, X=2, N=2, T=1 (tau=1/2), gamma=0.4, eta=1: eta_tilde = 1 - 0.4 * 0.25 / 2... = 0.9,
    # E = 1/2 0.4 4 + (0.9 / 0.5)(1 + 1) = 0.8 + 3.6 = 4.4; Var = sigma^2 tau x_1^2 = 9 * 0.5 * 1 = 4.5 (sigma=3).
    expected, variance = schedule_cost(twap(2.0, 2), T=1.0, sigma=3.0, eta=1.0, gamma=0.4)
    assert expected == pytest.approx(4.4)
    assert variance == pytest.approx(4.5)


def test_boundary_conditions_trades_and_discrete_kappa():
    lam = 1e-6
    s = almgren_chriss(**AC, lam=lam)
    assert s.holdings[0] == AC["X"] and s.holdings[-1] == 0.0
    assert np.all(np.diff(s.holdings) < 0)
    np.testing.assert_allclose(s.trades, -np.diff(s.holdings))
    assert s.trades.sum() == pytest.approx(AC["X"])
    tau = AC["T"] / AC["N"]
    eta_tilde = AC["eta"] - AC["gamma"] * tau / 2
    # the defining equation of the discrete kappa, and x_k = X sinh(kappa (T - t_k)) / sinh(kappa T) as written
    assert 2 * (math.cosh(s.kappa * tau) - 1) / tau**2 == pytest.approx(lam * AC["sigma"] ** 2 / eta_tilde)
    direct = AC["X"] * np.sinh(s.kappa * (AC["T"] - s.times)) / math.sinh(s.kappa * AC["T"])
    np.testing.assert_allclose(s.holdings, direct, rtol=1e-12, atol=1e-6)
    assert (s.expected_cost, s.variance) == pytest.approx(schedule_cost(s.holdings, **COST))


@pytest.mark.parametrize("lam", [1e-8, 1e-7, 1e-6, 5e-6])
def test_closed_form_beats_twap_and_every_perturbation(lam):
    s = almgren_chriss(**AC, lam=lam)
    e, v = schedule_cost(twap(AC["X"], AC["N"]), **COST)
    assert s.objective(lam) < e + lam * v
    rng = np.random.default_rng(0)
    for _ in range(200):
        x = s.holdings.copy()
        x[1:-1] += rng.normal(0.0, 2e3, AC["N"] - 1)  # 0.2% of X per step
        e, v = schedule_cost(x, **COST)
        assert s.objective(lam) < e + lam * v


def test_lambda_zero_is_twap_exactly_and_tiny_lambda_close():
    s = almgren_chriss(**AC, lam=0.0)
    assert s.kappa == 0.0
    np.testing.assert_allclose(s.holdings, twap(AC["X"], AC["N"]), rtol=1e-15, atol=1e-9)
    tiny = almgren_chriss(**AC, lam=1e-20)
    np.testing.assert_allclose(tiny.holdings, twap(AC["X"], AC["N"]), rtol=1e-9)
    assert 0.0 < tiny.kappa < 1e-6


def test_discrete_kappa_tends_to_continuous_and_holdings_to_continuous_schedule():
    lam = 1e-6
    kappa = continuous_kappa(AC["sigma"], AC["eta"], lam)
    for N in (10, 100, 10_000):
        tau = AC["T"] / N
        eta_tilde = AC["eta"] - AC["gamma"] * tau / 2
        k = discrete_kappa(tau, AC["sigma"], eta_tilde, lam)
        assert abs(k - kappa) / kappa < 2.0 / N  # O(tau): eta_tilde -> eta and the cosh's curvature
    s = almgren_chriss(**AC | {"N": 10_000}, lam=lam)
    np.testing.assert_allclose(s.holdings, continuous_holdings(s.times, AC["X"], AC["T"], kappa), atol=AC["X"] * 1e-4)


def test_sinh_ratio_has_no_overflow_for_large_kappa():
    x = sinh_ratio(2000.0, 1.0, np.array([0.0, 0.001, 0.5, 1.0]))
    assert np.all(np.isfinite(x)) and x[0] == 1.0 and x[-1] == 0.0
    assert x[1] == pytest.approx(math.exp(-2.0))


def test_notes_cosh_schedule_never_finishes_and_sinh_does():
    # INVENTORY C71: x0 = T = 1, kappa = 2
    assert continuous_holdings(0.5, 1.0, 1.0, 2.0) == pytest.approx(0.324027, abs=1e-6)
    assert continuous_holdings(1.0, 1.0, 1.0, 2.0) == 0.0
    assert notes_holdings(0.5, 1.0, 1.0, 2.0) == pytest.approx(0.410154, abs=1e-6)
    assert notes_holdings(1.0, 1.0, 1.0, 2.0) == pytest.approx(1 / math.cosh(2.0)) == pytest.approx(0.265802, abs=1e-6)
    t = np.array([0.25, 0.5, 0.75])
    np.testing.assert_allclose(continuous_holdings(t, 1.0, 1.0, 1e-6), [0.75, 0.5, 0.25], atol=1e-9)
    np.testing.assert_allclose(continuous_holdings(t, 1.0, 1.0, 1.0), [0.6997, 0.4434, 0.2150], atol=1e-4)
    np.testing.assert_allclose(continuous_holdings(t, 1.0, 1.0, 3.0), [0.4683, 0.2125, 0.0821], atol=1e-4)


def test_notes_tanh_rate_is_not_the_sinh_schedules_rate():
    # INVENTORY C72: x0 = T = 1, kappa = 2, t = 0.3; the right rate is -dx/dt of the sinh schedule
    kappa, t, h = 2.0, 0.3, 1e-6
    left = continuous_holdings(t, 1.0, 1.0, kappa)
    numeric = -(continuous_holdings(t + h, 1.0, 1.0, kappa) - continuous_holdings(t - h, 1.0, 1.0, kappa)) / (2 * h)
    assert continuous_rate(left, 1 - t, kappa) == pytest.approx(numeric, rel=1e-8)
    assert continuous_rate(left, 1 - t, kappa) == pytest.approx(1.186094, abs=1e-6)
    assert notes_rate(left, 1 - t, kappa) == pytest.approx(0.929717, abs=1e-6)
    # the notes' rate is the derivative of the notes' cosh schedule instead
    notes_left = notes_holdings(t, 1.0, 1.0, kappa)
    notes_numeric = -(notes_holdings(t + h, 1.0, 1.0, kappa) - notes_holdings(t - h, 1.0, 1.0, kappa)) / (2 * h)
    assert notes_rate(notes_left, 1 - t, kappa) == pytest.approx(notes_numeric, rel=1e-8)
    # trading at the right rate from the current holdings sells exactly x0 by T; kappa -> 0 is TWAP's rate
    grid = np.linspace(0.0, 1.0, 200_001)[:-1]
    v = continuous_rate(continuous_holdings(grid, 1.0, 1.0, kappa), 1.0 - grid, kappa)
    assert np.sum(v) * (grid[1] - grid[0]) == pytest.approx(1.0, abs=1e-4)
    assert continuous_rate(0.6, 0.4, 0.0) == pytest.approx(1.5)
    assert continuous_rate(0.6, 0.4, 1e-7) == pytest.approx(1.5)


def test_twap_and_vwap():
    np.testing.assert_allclose(twap(100.0, 4), [100, 75, 50, 25, 0])
    x = vwap(100.0, [1.0, 3.0, 0.0, 4.0])
    np.testing.assert_allclose(-np.diff(x), [12.5, 37.5, 0.0, 50.0])
    assert x[0] == 100.0 and x[-1] == 0.0
    np.testing.assert_allclose(vwap(100.0, np.ones(4)), twap(100.0, 4))
    with pytest.raises(ValueError, match="volume_profile"):
        vwap(100.0, [0.0, 0.0])


def test_efficient_frontier_trades_cost_for_variance():
    f = efficient_frontier(**AC, lams=[0.0, 1e-7, 1e-6, 1e-5])
    assert np.all(np.diff(f.expected_cost) > 0) and np.all(np.diff(f.variance) < 0)
    e, v = schedule_cost(twap(AC["X"], AC["N"]), **COST)
    assert f.expected_cost[0] == pytest.approx(e) and f.variance[0] == pytest.approx(v)


@pytest.mark.parametrize("bad, match", [
    ({"eta": 5e-8}, "eta - gamma tau / 2"),
    ({"N": 0}, "N"),
    ({"X": -1.0}, "X"),
    ({"lam": -1.0}, "lam"),
    ({"eta": 0.0}, "eta"),
    ({"T": float("nan")}, "T"),
])
def test_bad_input_is_named(bad, match):
    with pytest.raises(ValueError, match=match):
        almgren_chriss(**(AC | {"lam": 1e-6} | bad))


def test_schedule_cost_refuses_unfinished_schedule():
    with pytest.raises(ValueError, match="end at 0"):
        schedule_cost(notes_holdings(np.linspace(0, 5, 11), 1e6, 5.0, 0.6), **COST)
