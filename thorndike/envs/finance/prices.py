"""Synthetic price paths for the trading and portfolio envs, batched over paths and seeded by a torch generator.

Notes: 004 L2474-L2480 (INVENTORY B20): financial environments are "highly stochastic" and "non-stationary"; these
three processes give one of each kind of structure an agent might find or must not invent:

- :func:`gbm`: geometric Brownian motion, log S_{t+1} - log S_t ~ N((mu - sigma^2 / 2) dt, sigma^2 dt) i.i.d. With
  ``mu = 0`` the log price is a driftless random walk: nothing in past returns predicts the next one.
- :func:`ornstein_uhlenbeck`: the log price X_t mean-reverts, dX = theta (m - X) dt + sigma dW, drawn with the
  exact transition X_{t+1} = m + (X_t - m) e^{-theta dt} + sigma sqrt((1 - e^{-2 theta dt}) / (2 theta)) Z, so the
  moments hold for any dt: stationary variance sigma^2 / (2 theta), lag-k autocorrelation e^{-theta k dt}.
- :func:`regime_switching`: a Markov chain over regimes r (transition matrix P, row r the distribution of the next
  regime) with GBM increments of the current regime's drift and volatility.

Time is in steps of ``dt`` (1 by default, so ``mu`` and ``sigma`` are per step). Every function returns prices
``[n_paths, n_steps + 1]`` (column 0 the start); :func:`log_returns` turns them into increments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["PROCESSES", "gbm", "log_returns", "ornstein_uhlenbeck", "price_paths", "regime_switching",
           "stationary_distribution"]


def log_returns(prices: Tensor) -> Tensor:
    """log S_{t+1} - log S_t along the last dimension: ``[..., n_steps]`` from ``[..., n_steps + 1]``."""
    return torch.diff(prices.log(), dim=-1)


def gbm(n_paths: int, n_steps: int, mu: float = 0.0, sigma: float = 0.01, dt: float = 1.0, s0: float = 100.0,
        generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> Tensor:
    """Geometric Brownian motion: log increments N((mu - sigma^2 / 2) dt, sigma^2 dt), so E[S_{t+1} / S_t] =
    e^{mu dt}. ``[n_paths, n_steps + 1]``, starting at ``s0``."""
    z = torch.randn(n_paths, n_steps, generator=generator, dtype=dtype)
    increments = (mu - 0.5 * sigma**2) * dt + sigma * math.sqrt(dt) * z
    return _prices_from_increments(increments, s0)


def ornstein_uhlenbeck(n_paths: int, n_steps: int, theta: float = 0.1, sigma: float = 0.01, dt: float = 1.0,
                       s0: float = 100.0, x0: float | None = None, generator: torch.Generator | None = None,
                       dtype: torch.dtype = torch.float64) -> Tensor:
    """Prices whose log mean-reverts to ``log(s0)`` at rate ``theta`` (per unit time) with volatility ``sigma``.

    ``x0`` is the starting log price; None draws it from the stationary law N(log s0, sigma^2 / (2 theta)), so every
    column has the same distribution (a path does not start at the mean, which would make its first steps special).
    """
    if theta <= 0:
        raise ValueError(f"theta must be > 0 (the rate of mean reversion), got {theta}")
    mean = math.log(s0)
    decay = math.exp(-theta * dt)
    step_sd = sigma * math.sqrt((1.0 - decay**2) / (2.0 * theta))  # exact: no discretisation error at any dt
    z = torch.randn(n_paths, n_steps + 1, generator=generator, dtype=dtype)
    x = torch.empty(n_paths, n_steps + 1, dtype=dtype)
    x[:, 0] = mean + sigma / math.sqrt(2.0 * theta) * z[:, 0] if x0 is None else x0
    for t in range(n_steps):  # a linear recursion over time; each step is one op over all paths
        x[:, t + 1] = mean + (x[:, t] - mean) * decay + step_sd * z[:, t + 1]
    return x.exp()


def stationary_distribution(transition: Tensor) -> Tensor:
    """pi with pi P = pi, sum(pi) = 1, for a row-stochastic ``transition`` matrix P (the left eigenvector of
    eigenvalue 1, solved as a least-squares linear system so an exact solution is exact)."""
    P = torch.as_tensor(transition, dtype=torch.float64)
    k = P.shape[0]
    A = torch.cat([P.T - torch.eye(k, dtype=P.dtype), torch.ones(1, k, dtype=P.dtype)])
    b = torch.cat([torch.zeros(k, dtype=P.dtype), torch.ones(1, dtype=P.dtype)])
    return torch.linalg.lstsq(A, b.unsqueeze(-1)).solution.squeeze(-1)


def regime_switching(n_paths: int, n_steps: int, drifts: Sequence[float] = (0.002, -0.002),
                     vols: Sequence[float] = (0.005, 0.015),
                     transition: Sequence[Sequence[float]] = ((0.98, 0.02), (0.02, 0.98)), dt: float = 1.0,
                     s0: float = 100.0, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Prices and regimes ``([n_paths, n_steps + 1], [n_paths, n_steps])``: regime r_t (a Markov chain started from
    its stationary distribution) sets the drift and volatility of the GBM increment from t to t + 1."""
    mus = torch.as_tensor(drifts, dtype=dtype)
    sds = torch.as_tensor(vols, dtype=dtype)
    P = torch.as_tensor(transition, dtype=torch.float64)
    k = mus.numel()
    if sds.numel() != k or P.shape != (k, k):
        raise ValueError(f"regime_switching needs as many vols as drifts ({k}) and a {k}x{k} transition matrix, got "
                         f"{sds.numel()} vols and a {tuple(P.shape)} matrix")
    if (P < 0).any() or not torch.allclose(P.sum(1), torch.ones(k, dtype=P.dtype)):
        raise ValueError(f"transition rows must be probability distributions, got {P.tolist()}")
    regimes = torch.empty(n_paths, n_steps, dtype=torch.long)
    regimes[:, 0] = torch.multinomial(stationary_distribution(P), n_paths, replacement=True, generator=generator)
    cumulative = P.cumsum(1)
    u = torch.rand(n_paths, n_steps, generator=generator, dtype=torch.float64)
    for t in range(1, n_steps):  # next regime: the first column whose cumulative probability exceeds u
        row = cumulative[regimes[:, t - 1]]
        regimes[:, t] = (u[:, t].unsqueeze(1) >= row).sum(1).clamp(max=k - 1)
    z = torch.randn(n_paths, n_steps, generator=generator, dtype=dtype)
    mu, sd = mus[regimes], sds[regimes]
    increments = (mu - 0.5 * sd**2) * dt + sd * math.sqrt(dt) * z
    return _prices_from_increments(increments, s0), regimes


def _prices_from_increments(increments: Tensor, s0: float) -> Tensor:
    log_path = torch.cat([torch.zeros_like(increments[:, :1]), increments.cumsum(1)], dim=1)
    return s0 * log_path.exp()


PROCESSES = ("gbm", "ou", "regime")


def price_paths(process: str, n_paths: int, n_steps: int, generator: torch.Generator | None = None,
                **params: float | Sequence[float] | Sequence[Sequence[float]]) -> Tensor:
    """Prices ``[n_paths, n_steps + 1]`` of ``process`` (one of :data:`PROCESSES`) with its keyword ``params``: the
    envs' way to name a process by a string (the regimes of ``"regime"`` are dropped)."""
    if process == "gbm":
        return gbm(n_paths, n_steps, generator=generator, **params)
    if process == "ou":
        return ornstein_uhlenbeck(n_paths, n_steps, generator=generator, **params)
    if process == "regime":
        return regime_switching(n_paths, n_steps, generator=generator, **params)[0]
    raise ValueError(f"process must be one of {PROCESSES}, got {process!r}")
