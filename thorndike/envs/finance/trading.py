"""One asset on synthetic prices: hold long, flat or short (or any position in [-1, 1]) and pay for every change.

Notes: 004 L2474-L2513 (INVENTORY B20, C74): trading as RL, with the risk-adjusted reward

    Risk_adjusted_return = Return - lambda * Risk

made concrete here, per step t (decide the position a_t at price S_t, then the price moves to S_{t+1}):

    reward_t = a_t * R_{t+1} - cost * |a_t - a_{t-1}| - lam * a_t^2 * var_t

- ``R_{t+1} = S_{t+1} / S_t - 1``, the asset's simple return over the step, so ``a_t * R_{t+1}`` is the P&L of a
  position worth ``a_t`` units of capital;
- ``cost * |a_t - a_{t-1}|``: proportional transaction cost on the traded amount, charged on changes only (holding
  is free); the position before the first step is flat (``a_{-1} = 0``), so buy-and-hold pays ``cost`` once;
- Risk is the position's variance over the step, ``a_t^2 * var_t``, with ``var_t`` the sample variance (ddof 1) of
  the ``window`` log returns the agent observes at t: an estimate it can compute too, not the process's true one.

Observation: the ``window`` most recent log returns (times ``obs_scale``, so that a typical return is of order 1)
and the current position a_{t-1}. Actions: ``Discrete(3)`` (0 short, 1 flat, 2 long) or, with
``actions="continuous"``, ``Box([-1], [1])``. An episode is ``n_steps`` decisions on a fresh price path of
``process`` (:mod:`.prices`: ``"gbm"``, ``"ou"``, ``"regime"``) with ``process_params``; it ends truncated (the
market goes on; the last position is not closed out). ``info`` reports the step's ``turnover`` |a_t - a_{t-1}|,
``cost``, ``pnl`` a_t R_{t+1}, ``risk`` a_t^2 var_t and ``position``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from thorndike.envs.finance.prices import PROCESSES, price_paths

__all__ = ["DISCRETE_POSITIONS", "TradingEnv", "trading_reward"]

DISCRETE_POSITIONS = (-1.0, 0.0, 1.0)
"""Positions of the Discrete(3) actions: 0 short, 1 flat, 2 long."""


def trading_reward(position: float, previous: float, simple_return: float, variance: float, cost: float,
                   lam: float) -> float:
    """a R - cost |a - a_prev| - lam a^2 var: the notes' Return - lambda Risk less the transaction cost."""
    return position * simple_return - cost * abs(position - previous) - lam * position**2 * variance


class TradingEnv(gym.Env):
    """Trade one asset whose price follows ``process``; see the module docstring for the reward and observation."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, process: str = "ou", process_params: dict[str, Any] | None = None, n_steps: int = 100,
                 window: int = 10, cost: float = 0.001, lam: float = 0.0, actions: str = "discrete",
                 obs_scale: float = 100.0) -> None:
        if process not in PROCESSES:
            raise ValueError(f"process must be one of {PROCESSES}, got {process!r}")
        if actions not in ("discrete", "continuous"):
            raise ValueError(f"actions must be 'discrete' or 'continuous', got {actions!r}")
        if n_steps < 1 or window < 2:
            raise ValueError(f"TradingEnv needs n_steps >= 1 and window >= 2 (a variance needs two returns), got "
                             f"n_steps={n_steps}, window={window}")
        if cost < 0 or lam < 0:
            raise ValueError(f"cost and lam must be >= 0, got cost={cost}, lam={lam}")
        self.process, self.process_params = process, dict(process_params or {})
        self.n_steps, self.window, self.cost, self.lam = n_steps, window, cost, lam
        self.actions, self.obs_scale = actions, obs_scale
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (window + 1,), np.float32)
        self.action_space = (gym.spaces.Discrete(3) if actions == "discrete"
                             else gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
        self.prices = np.full(window + n_steps + 1, 100.0)
        self.t, self.position = window, 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        # One path per episode from a torch generator seeded by the env's own np_random, so reset(seed) fixes it
        # and the env holds no torch generator (it pickles, for checkpoints).
        generator = torch.Generator().manual_seed(int(self.np_random.integers(2**62)))
        self.prices = price_paths(self.process, 1, self.window + self.n_steps, generator=generator,
                                  **self.process_params)[0].numpy()
        self.log_returns = np.diff(np.log(self.prices))
        self.t, self.position = self.window, 0.0  # prices[t] is the price at which the next decision is made
        return self._obs(), {}

    def position_of(self, action: Any) -> float:
        """The position an action asks for: the Discrete index's entry of :data:`DISCRETE_POSITIONS`, or the Box
        value clipped to [-1, 1]."""
        if self.actions == "discrete":
            return DISCRETE_POSITIONS[int(action)]
        return float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))

    def variance_estimate(self) -> float:
        """var_t: the sample variance (ddof 1) of the observed window of log returns."""
        return float(np.var(self.log_returns[self.t - self.window:self.t], ddof=1))

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        position = self.position_of(action)
        simple_return = self.prices[self.t + 1] / self.prices[self.t] - 1.0
        variance = self.variance_estimate()
        reward = trading_reward(position, self.position, simple_return, variance, self.cost, self.lam)
        turnover = abs(position - self.position)
        info = {"turnover": turnover, "cost": self.cost * turnover, "pnl": position * simple_return,
                "risk": position**2 * variance, "position": position}
        self.position = position
        self.t += 1
        truncated = self.t - self.window >= self.n_steps
        return self._obs(), float(reward), False, truncated, info

    def _obs(self) -> np.ndarray:
        recent = self.log_returns[self.t - self.window:self.t] * self.obs_scale
        return np.append(recent, self.position).astype(np.float32)
