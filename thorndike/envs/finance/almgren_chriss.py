"""The Almgren-Chriss optimal liquidation schedule, its cost and risk, and the static baselines (TWAP, VWAP).

The model (Almgren & Chriss 2000, "Optimal execution of portfolio transactions"; notes 004 L2673-L2764). A seller
holds ``X`` shares at time 0 and must hold none at ``T``; trading happens in ``N`` steps of length ``tau = T / N``.
With ``x_k`` the holdings after the k-th trade (``x_0 = X``, ``x_N = 0``) and ``n_k = x_{k-1} - x_k`` the shares sold
in step k:

    execution price     S_{k-1} - eta n_k / tau              (temporary impact: selling faster sells lower)
    price after step k  S_k = S_{k-1} + sigma sqrt(tau) xi_k - gamma n_k     (xi_k ~ N(0, 1); permanent impact)
    cost                C = X S_0 - sum_k n_k (S_{k-1} - eta n_k / tau)      (the implementation shortfall)

Summing by parts, ``C = sum_k [(eta / tau) n_k^2 - x_k (sigma sqrt(tau) xi_k - gamma n_k)]``, so for a schedule fixed
in advance (a *static* one)

    E[C]   = 1/2 gamma X^2 + (eta_tilde / tau) sum_k n_k^2,     eta_tilde = eta - gamma tau / 2
    Var[C] = sigma^2 tau sum_{k=1}^{N} x_k^2

(``gamma sum x_k n_k = 1/2 gamma (X^2 - sum n_k^2)``). Minimising ``E[C] + lam Var[C]`` over the ``x_k`` is a
tridiagonal linear system whose solution is ``x_k = X sinh(kappa (T - t_k)) / sinh(kappa T)`` with the *discrete*
kappa of ``2 (cosh(kappa tau) - 1) / tau^2 = lam sigma^2 / eta_tilde``; as ``tau -> 0`` it becomes the continuous
``kappa = sqrt(lam sigma^2 / eta)``. ``lam = 0`` gives ``kappa = 0``: the straight line, TWAP.

The notes' schedule ``x(t) = x_0 cosh(kappa (T - t)) / cosh(kappa T)`` (L2713) and rate
``shares_left kappa tanh(kappa time_left)`` (L2738-L2740) solve the same equation ``x'' = kappa^2 x`` with the wrong
boundary condition at T (``x'(T) = 0`` instead of ``x(T) = 0``): they never finish selling. They are kept here under
their own names (:func:`notes_holdings`, :func:`notes_rate`) so that the tests can show the difference. Two sign
conventions differ from the notes as well: their price ``S_0 + sigma B + gamma (x - x_0) + eta v`` (L2691) raises the
price a seller gets with her own trading rate, where the temporary impact lowers it (``- eta v`` here); and their
shortfall ``sum (P_t - P_0) v_t + sum eta(v_t)`` (L2583) is a buyer's, and counts the temporary impact twice when
P_t is already the execution price (here C = sum n_k (S_0 - execution price_k)).

Everything is float64 NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "Frontier",
    "Schedule",
    "almgren_chriss",
    "continuous_holdings",
    "continuous_kappa",
    "continuous_rate",
    "discrete_kappa",
    "efficient_frontier",
    "notes_holdings",
    "notes_rate",
    "schedule_cost",
    "sinh_ratio",
    "twap",
    "vwap",
]


class Schedule(NamedTuple):
    """A static liquidation schedule and its cost: holdings ``x_0..x_N`` (``x_0 = X``, ``x_N = 0``), the trade list
    ``n_1..n_N`` (shares sold in each step), E[C], Var[C], and the kappa that generated it (nan for a schedule not
    from the closed form)."""

    times: np.ndarray
    holdings: np.ndarray
    trades: np.ndarray
    expected_cost: float
    variance: float
    kappa: float

    def objective(self, lam: float) -> float:
        """E[C] + lam Var[C]."""
        return self.expected_cost + lam * self.variance


class Frontier(NamedTuple):
    """The efficient frontier: for each risk aversion ``lams[i]``, the optimal schedule's E[C] and Var[C]."""

    lams: np.ndarray
    expected_cost: np.ndarray
    variance: np.ndarray


def _check_model(X: float, T: float, N: int, sigma: float, eta: float, gamma: float, lam: float) -> float:
    """Validate the model's parameters and return eta_tilde = eta - gamma tau / 2."""
    for name, value in (("X", X), ("T", T), ("sigma", sigma), ("eta", eta), ("gamma", gamma), ("lam", lam)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if X <= 0:
        raise ValueError(f"X (the shares to sell) must be > 0, got {X!r}")
    if T <= 0:
        raise ValueError(f"T (the horizon) must be > 0, got {T!r}")
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise ValueError(f"N (the number of trading steps) must be an int >= 1, got {N!r}")
    if sigma < 0 or gamma < 0 or lam < 0:
        raise ValueError(f"sigma, gamma and lam must be >= 0, got sigma={sigma!r}, gamma={gamma!r}, lam={lam!r}")
    if eta <= 0:
        raise ValueError(f"eta (the temporary impact) must be > 0, got {eta!r}")
    eta_tilde = eta - gamma * (T / N) / 2
    if eta_tilde <= 0:
        # E[C] would not be convex in the trades: selling everything at once would look free or better.
        raise ValueError(f"eta - gamma tau / 2 must be > 0 (here {eta!r} - {gamma!r} * {T / N!r} / 2 = {eta_tilde!r}):"
                         " the permanent impact outweighs the temporary one, so the problem has no interior optimum; "
                         "use more steps N or a smaller gamma")
    return eta_tilde


def discrete_kappa(tau: float, sigma: float, eta_tilde: float, lam: float) -> float:
    """The kappa of the discrete schedule: the root of 2 (cosh(kappa tau) - 1) / tau^2 = lam sigma^2 / eta_tilde.

    Written as kappa = 2 asinh(sqrt(lam sigma^2 tau^2 / (4 eta_tilde))) / tau (cosh(2u) - 1 = 2 sinh(u)^2), which
    keeps full precision when the right side is tiny (acosh(1 + eps) loses half the digits of eps)."""
    kappa_tilde_sq = lam * sigma**2 / eta_tilde
    return 2.0 * math.asinh(math.sqrt(kappa_tilde_sq) * tau / 2.0) / tau


def continuous_kappa(sigma: float, eta: float, lam: float) -> float:
    """The continuous-time kappa = sqrt(lam sigma^2 / eta) (notes L2717)."""
    return math.sqrt(lam * sigma**2 / eta)


def sinh_ratio(kappa: float, T: float, t: np.ndarray | float) -> np.ndarray:
    """sinh(kappa (T - t)) / sinh(kappa T), the fraction still held at time t; (T - t) / T at kappa = 0.

    Computed as exp(-kappa t) (1 - exp(-2 kappa (T - t))) / (1 - exp(-2 kappa T)) with expm1: no overflow for large
    kappa T (sinh(800) is inf) and no loss of digits for small kappa; kappa = 0 itself is the limit, not 0/0."""
    t = np.asarray(t, dtype=np.float64)
    if kappa == 0.0:
        return (T - t) / T
    return np.exp(-kappa * t) * np.expm1(-2.0 * kappa * (T - t)) / math.expm1(-2.0 * kappa * T)


def schedule_cost(holdings: Sequence[float] | np.ndarray, T: float, sigma: float, eta: float, gamma: float
                  ) -> tuple[float, float]:
    """(E[C], Var[C]) of any static schedule given as holdings ``x_0..x_N`` that end at 0 (TWAP, VWAP, a learned
    one): E[C] = 1/2 gamma X^2 + (eta_tilde / tau) sum n_k^2, Var[C] = sigma^2 tau sum_{k>=1} x_k^2."""
    x = np.asarray(holdings, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"holdings must be x_0..x_N with N >= 1, got shape {x.shape}")
    if abs(x[-1]) > 1e-9 * max(abs(x[0]), 1.0):
        raise ValueError(f"holdings must end at 0 (everything sold by T), got x_N = {x[-1]!r}")
    N = x.size - 1
    eta_tilde = _check_model(float(x[0]), T, N, sigma, eta, gamma, 0.0)
    tau = T / N
    n = -np.diff(x)
    expected = 0.5 * gamma * x[0] ** 2 + eta_tilde / tau * float(np.sum(n**2))
    variance = sigma**2 * tau * float(np.sum(x[1:] ** 2))
    return float(expected), float(variance)


def _schedule(holdings: np.ndarray, T: float, sigma: float, eta: float, gamma: float, kappa: float) -> Schedule:
    holdings = holdings.copy()
    holdings[-1] = 0.0  # exactly: sinh(0) = 0, but exp/expm1 round
    N = holdings.size - 1
    expected, variance = schedule_cost(holdings, T, sigma, eta, gamma)
    return Schedule(np.linspace(0.0, T, N + 1), holdings, -np.diff(holdings), expected, variance, kappa)


def almgren_chriss(X: float, T: float, N: int, sigma: float, eta: float, gamma: float, lam: float) -> Schedule:
    """The discrete-time optimal schedule for risk aversion ``lam``: x_k = X sinh(kappa (T - t_k)) / sinh(kappa T),
    t_k = k tau, with the discrete kappa (:func:`discrete_kappa`), and its E[C] and Var[C]. ``lam = 0`` is TWAP."""
    eta_tilde = _check_model(X, T, N, sigma, eta, gamma, lam)
    tau = T / N
    kappa = discrete_kappa(tau, sigma, eta_tilde, lam)
    times = np.linspace(0.0, T, N + 1)
    return _schedule(X * sinh_ratio(kappa, T, times), T, sigma, eta, gamma, kappa)


def twap(X: float, N: int) -> np.ndarray:
    """TWAP's holdings x_0..x_N: the same X / N shares every step (notes L2601-L2604, v_t = V / T)."""
    if X <= 0 or isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise ValueError(f"twap needs X > 0 and an int N >= 1, got X={X!r}, N={N!r}")
    return X * (1.0 - np.arange(N + 1) / N)


def vwap(X: float, volume_profile: Sequence[float] | np.ndarray) -> np.ndarray:
    """VWAP's holdings x_0..x_N: step k sells X volume_k / sum(volume) (notes L2596-L2599); N = len(profile)."""
    volume = np.asarray(volume_profile, dtype=np.float64)
    if volume.ndim != 1 or volume.size < 1 or np.any(volume < 0) or not np.all(np.isfinite(volume)) \
            or volume.sum() <= 0:
        raise ValueError("volume_profile must be a non-empty 1-d list of finite volumes >= 0 with a positive sum")
    if X <= 0:
        raise ValueError(f"X must be > 0, got {X!r}")
    trades = X * volume / volume.sum()
    holdings = X - np.concatenate([[0.0], np.cumsum(trades)])
    holdings[-1] = 0.0
    return holdings


def efficient_frontier(X: float, T: float, N: int, sigma: float, eta: float, gamma: float,
                       lams: Sequence[float] | np.ndarray) -> Frontier:
    """E[C] and Var[C] of the optimal schedule for each risk aversion in ``lams``: the efficient frontier (no static
    schedule has both a lower E[C] and a lower Var[C] than a point on it)."""
    lams = np.asarray(lams, dtype=np.float64)
    schedules = [almgren_chriss(X, T, N, sigma, eta, gamma, float(lam)) for lam in lams]
    return Frontier(lams, np.array([s.expected_cost for s in schedules]), np.array([s.variance for s in schedules]))


# ---- the continuous-time limit, and the notes' formulas ------------------------------------------------------------


def continuous_holdings(t: np.ndarray | float, X: float, T: float, kappa: float) -> np.ndarray:
    """x(t) = X sinh(kappa (T - t)) / sinh(kappa T): x(0) = X, x(T) = 0 (the full-liquidation solution)."""
    return X * sinh_ratio(kappa, T, t)


def continuous_rate(shares_left: np.ndarray | float, time_left: np.ndarray | float, kappa: float) -> np.ndarray:
    """v = -dx/dt = shares_left kappa / tanh(kappa time_left): the rate that sells what is left by T; at kappa = 0,
    shares_left / time_left (TWAP's rate)."""
    shares_left = np.asarray(shares_left, dtype=np.float64)
    time_left = np.asarray(time_left, dtype=np.float64)
    if kappa == 0.0:
        return shares_left / time_left
    return shares_left * kappa / np.tanh(kappa * time_left)


def notes_holdings(t: np.ndarray | float, X: float, T: float, kappa: float) -> np.ndarray:
    """The notes' schedule X cosh(kappa (T - t)) / cosh(kappa T) (004 L2713), kept to show its error: it solves
    x'' = kappa^2 x with x'(T) = 0, so x(T) = X / cosh(kappa T) > 0 shares are never sold."""
    t = np.asarray(t, dtype=np.float64)
    return X * np.cosh(kappa * (T - t)) / math.cosh(kappa * T)


def notes_rate(shares_left: np.ndarray | float, time_left: np.ndarray | float, kappa: float) -> np.ndarray:
    """The notes' rate shares_left kappa tanh(kappa time_left) (004 L2738-L2740), kept to show its error: it is
    -dx/dt of :func:`notes_holdings`, and tends to 0 (not to shares_left / time_left) as time runs out."""
    return np.asarray(shares_left, dtype=np.float64) * kappa * np.tanh(kappa * np.asarray(time_left,
                                                                                          dtype=np.float64))
