"""Continuous weights over K correlated assets, and the Markowitz mean-variance solution of the static case.

Notes: 004 L2519-L2528 (INVENTORY B23, C74):

    Portfolio_objective = E[Return] - lambda * Variance - gamma * Transaction_costs

For weights w held over one step with asset returns r ~ N(mu, Sigma) (i.i.d. across steps: the static case), the
portfolio return is w . r, its mean w . mu and its variance w' Sigma w, and rebalancing from w_prev costs
gamma * sum_i |w_i - w_prev_i| (:func:`portfolio_objective`). The env pays per step

    reward_t = w_t . r_{t+1} - lam * w_t' Sigma w_t - gamma * |w_t - w_{t-1}|_1

whose expectation given w_t is the objective: the realised return is noisy, the variance term is the model's (the
env knows Sigma; a realised squared deviation would only add noise to the same mean).

Without costs the best fixed weights maximise w . mu - lam w' Sigma w (:func:`markowitz_weights`):

- unconstrained: w* = Sigma^{-1} mu / (2 lam);
- with a budget 1' w = b (shorting allowed): w* = Sigma^{-1} (mu - eta 1) / (2 lam) with the multiplier
  eta = (1' Sigma^{-1} mu - 2 lam b) / (1' Sigma^{-1} 1).

Actions are ``Box([-1]^K, [1]^K)``; without a budget the weights are ``max_weight * a``, with ``budget=b`` they are
``b / K + max_weight * (a - mean(a))`` (so they always sum to b). The observation is the last ``window`` return
vectors (times ``obs_scale``) and the current weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

__all__ = ["DEFAULT_COV", "DEFAULT_MU", "PortfolioEnv", "markowitz_weights", "portfolio_objective",
           "risk_adjusted_return"]

DEFAULT_MU = (0.04, 0.06, 0.08)
"""Expected returns per step of the default three assets."""
DEFAULT_COV = ((0.0100, 0.0030, 0.0020),
               (0.0030, 0.0225, 0.0090),
               (0.0020, 0.0090, 0.0400))
"""Their covariance: volatilities 0.10, 0.15, 0.20, correlations 0.2, 0.1, 0.3."""


def risk_adjusted_return(ret: Tensor | float, risk: Tensor | float, lam: float) -> Tensor | float:
    """The notes' Return - lambda * Risk (004 L2506)."""
    return ret - lam * risk


def portfolio_objective(weights: Tensor, mu: Tensor, cov: Tensor, lam: float, cost: float = 0.0,
                        previous: Tensor | None = None) -> Tensor:
    """E[Return] - lambda Variance - gamma Transaction_costs (004 L2523) of ``weights`` ``[..., K]`` held for a step:
    w . mu - lam w' Sigma w - cost |w - previous|_1 (no cost term when ``previous`` is None)."""
    mean = weights @ mu
    variance = ((weights @ cov) * weights).sum(-1)
    traded = (weights - previous).abs().sum(-1) if previous is not None else torch.zeros_like(mean)
    return risk_adjusted_return(mean, variance, lam) - cost * traded


def markowitz_weights(mu: Tensor | Sequence[float], cov: Tensor | Sequence[Sequence[float]], lam: float,
                      budget: float | None = None) -> Tensor:
    """The weights maximising w . mu - lam w' Sigma w, subject to sum(w) = ``budget`` when one is given (closed forms
    in the module docstring; shorting allowed, no transaction costs)."""
    if lam <= 0:
        raise ValueError(f"lam must be > 0 (with no risk aversion the mean-variance problem is unbounded), got {lam}")
    mu = torch.as_tensor(mu, dtype=torch.float64)
    cov = torch.as_tensor(cov, dtype=torch.float64)
    inv_mu = torch.linalg.solve(cov, mu)
    if budget is None:
        return inv_mu / (2.0 * lam)
    inv_ones = torch.linalg.solve(cov, torch.ones_like(mu))
    eta = (inv_mu.sum() - 2.0 * lam * budget) / inv_ones.sum()
    return (inv_mu - eta * inv_ones) / (2.0 * lam)


class PortfolioEnv(gym.Env):
    """Hold weights over K assets with returns N(mu, cov) each step; see the module docstring."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, mu: Sequence[float] = DEFAULT_MU, cov: Sequence[Sequence[float]] = DEFAULT_COV,
                 lam: float = 2.0, cost: float = 0.001, n_steps: int = 20, budget: float | None = None,
                 max_weight: float = 2.0, window: int = 1, obs_scale: float = 10.0) -> None:
        self.mu = np.asarray(mu, dtype=np.float64)
        self.cov = np.asarray(cov, dtype=np.float64)
        K = self.mu.size
        if self.mu.ndim != 1 or self.cov.shape != (K, K):
            raise ValueError(f"PortfolioEnv needs mu of shape (K,) and cov (K, K), got {self.mu.shape} and "
                             f"{self.cov.shape}")
        if not np.allclose(self.cov, self.cov.T) or np.linalg.eigvalsh(self.cov).min() <= 0:
            raise ValueError("cov must be symmetric positive definite")
        if lam < 0 or cost < 0 or max_weight <= 0 or n_steps < 1 or window < 1:
            raise ValueError(f"PortfolioEnv needs lam >= 0, cost >= 0, max_weight > 0, n_steps >= 1, window >= 1; "
                             f"got lam={lam}, cost={cost}, max_weight={max_weight}, n_steps={n_steps}, "
                             f"window={window}")
        self.K, self.lam, self.cost, self.n_steps, self.budget = K, lam, cost, n_steps, budget
        self.max_weight, self.window, self.obs_scale = max_weight, window, obs_scale
        self.chol = np.linalg.cholesky(self.cov)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (K * window + K,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (K,), np.float32)
        self.start_weights = np.full(K, budget / K) if budget is not None else np.zeros(K)
        self.weights = self.start_weights.copy()
        self.recent = np.zeros((window, K))
        self.t = 0

    def weights_of(self, action: Any) -> np.ndarray:
        """The weights an action asks for (clipped to the Box first)."""
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(self.K), -1.0, 1.0)
        if self.budget is None:
            return self.max_weight * a
        return self.budget / self.K + self.max_weight * (a - a.mean())

    def draw_returns(self, n: int) -> np.ndarray:
        """``n`` return vectors N(mu, cov) ``[n, K]`` from the env's np_random."""
        return self.mu + self.np_random.standard_normal((n, self.K)) @ self.chol.T

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.recent = self.draw_returns(self.window)  # a history to observe from the first step
        self.weights = self.start_weights.copy()
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        weights = self.weights_of(action)
        returns = self.draw_returns(1)[0]
        turnover = float(np.abs(weights - self.weights).sum())
        variance = float(weights @ self.cov @ weights)
        ret = float(weights @ returns)
        reward = ret - self.lam * variance - self.cost * turnover
        info = {"turnover": turnover, "cost": self.cost * turnover, "return": ret, "variance": variance,
                "weights": weights}
        self.weights = weights
        self.recent = np.concatenate([self.recent[1:], returns[None]])
        self.t += 1
        return self._obs(), float(reward), False, self.t >= self.n_steps, info

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.recent.reshape(-1) * self.obs_scale, self.weights]).astype(np.float32)
