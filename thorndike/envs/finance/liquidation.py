"""Optimal liquidation as an RL environment: sell ``X`` shares in ``N`` steps under the Almgren-Chriss model.

The market is the one of :mod:`.almgren_chriss` (arithmetic Brownian price with volatility ``sigma``, linear permanent
impact ``gamma``, linear temporary impact ``eta``), with risk aversion ``lam``. Registered as
``thorndike/OptimalLiquidation-v0`` twice: :class:`OptimalLiquidationEnv` (Gymnasium, NumPy float64) and
:class:`BatchedLiquidation` (a native batched torch env in :data:`thorndike.envs.NATIVE_ENVS`); the tests step both
with the same actions and noise and compare.

- Observation (float32): the inventory left as a fraction of X, the time left as a fraction of T, and the last
  ``n_returns`` normalised price moves ``(S_k - S_{k-1}) / (sigma sqrt(tau))`` (most recent first; 0 before the first
  step). The moves include the agent's own permanent impact; under this model they carry no information about the
  future (the optimal policy ignores them), which an agent must learn.
- Action: a Box ``[0, 1]`` of shape (1,): the fraction of the *remaining* inventory to sell this step (clipped to
  ``[0, 1]``). Whatever is left is sold at the last step, whatever the action, so the episode always liquidates.
- Reward of step k: minus the step's implementation shortfall plus the risk penalty, divided by ``reward_scale``:

      r_k = -[(eta / tau) n_k^2 - x_k (S_k - S_{k-1}) + lam sigma^2 tau x_k^2] / reward_scale

  The shortfall term is the loss of the position's mark-to-market value over the step (cash received plus
  ``x_k S_k``), so the shortfalls sum to the cost ``C = X S_0 - sum n_k (S_{k-1} - eta n_k / tau)`` exactly, path by
  path; the penalty terms sum to ``lam Var[C]`` of a static schedule. Hence for any static schedule the expected
  return is ``-(E[C] + lam Var[C]) / reward_scale`` (a test checks it by simulation). For a policy that reacts to
  prices the penalty is ``lam E[sigma^2 tau sum x_k^2]`` (the variance of the unhedged position, the usual RL form);
  the optimum over all policies is still the static Almgren-Chriss schedule, since no observation predicts the price.
- ``reward="expected"`` (default ``"realised"``) drops the price-noise term ``x_k sigma sqrt(tau) xi_k`` from each
  step's reward, keeping ``-[(eta / tau) n_k^2 + gamma x_k n_k + lam sigma^2 tau x_k^2] / reward_scale``. It is a
  control variate: ``x_k`` is decided before ``xi_k`` is drawn and ``xi_k`` is independent of everything before it,
  so ``E[x_k xi_k] = E[x_k] E[xi_k] = 0`` for *any* non-anticipating policy, adaptive or not. Every policy's
  expected return is therefore unchanged (the same optimum), only the variance of the return drops: the term
  removed is, in the default market, as large as the differences between the schedules an agent must tell apart.
  The observation (the moves) and ``info["shortfall"]`` (the real one) are the same either way; a test checks the
  equal means by simulation for a policy that reacts to the prices.
- ``reward_scale`` defaults to ``1/2 gamma X^2 + eta X^2 / T``: TWAP's expected cost in the continuous limit, so
  returns are of order -1 whatever the units of X and S.
- The episode terminates after N steps (the horizon is part of the problem, not a time limit).

:func:`simulate` plays a policy on the native env over many paths in float64 and returns each path's cost and
penalty, so learned and closed-form schedules are scored on the same paths (a paired comparison).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from thorndike.core.statistics import mean_and_stderr
from thorndike.envs.batched.base import BatchedEnv

__all__ = [
    "ENV_ID",
    "BatchedLiquidation",
    "LiquidationParams",
    "OptimalLiquidationEnv",
    "PathCosts",
    "paired_difference",
    "schedule_policy",
    "simulate",
]

ENV_ID = "thorndike/OptimalLiquidation-v0"


@dataclasses.dataclass(frozen=True)
class LiquidationParams:
    """The market and the problem. Defaults: Almgren & Chriss (2000)'s example (1e6 shares at $50, 30% annual
    volatility = 0.95 $/share/day^1/2, gamma = 2.5e-7, eta = 2.5e-6, over T = 5 days), in N = 10 steps, lam = 1e-6."""

    X: float = 1e6
    T: float = 5.0
    N: int = 10
    sigma: float = 0.95
    eta: float = 2.5e-6
    gamma: float = 2.5e-7
    lam: float = 1e-6
    n_returns: int = 3
    reward_scale: float | None = None
    reward: str = "realised"

    def __post_init__(self) -> None:
        from thorndike.envs.finance.almgren_chriss import _check_model

        _check_model(self.X, self.T, self.N, self.sigma, self.eta, self.gamma, self.lam)
        if isinstance(self.n_returns, bool) or not isinstance(self.n_returns, int) or self.n_returns < 0:
            raise ValueError(f"n_returns must be an int >= 0, got {self.n_returns!r}")
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0 (returns are observed in units of sigma sqrt(tau)), got {self.sigma}")
        if self.reward not in ("realised", "expected"):
            raise ValueError(f"reward must be 'realised' or 'expected', got {self.reward!r}")
        if self.reward_scale is not None and not (math.isfinite(self.reward_scale) and self.reward_scale > 0):
            raise ValueError(f"reward_scale must be a finite number > 0 (or None), got {self.reward_scale!r}")

    @property
    def tau(self) -> float:
        return self.T / self.N

    @property
    def scale(self) -> float:
        """The reward's unit: ``reward_scale``, or TWAP's continuous-limit expected cost 1/2 gamma X^2 + eta X^2 / T."""
        if self.reward_scale is not None:
            return self.reward_scale
        return 0.5 * self.gamma * self.X**2 + self.eta * self.X**2 / self.T

    def coefficients(self) -> tuple[float, float, float, float]:
        """(a, b, c, g) of the step in inventory fractions u = x / X and normalised moves z:
        reward = -(a n^2 - b u z + c u^2), z = xi - g n (n the fraction of X sold)."""
        X, tau, sigma, scale = self.X, self.tau, self.sigma, self.scale
        a = self.eta * X**2 / tau / scale
        b = X * sigma * math.sqrt(tau) / scale
        c = self.lam * sigma**2 * tau * X**2 / scale
        g = self.gamma * X / (sigma * math.sqrt(tau))
        return a, b, c, g


class OptimalLiquidationEnv(gym.Env):
    """One liquidation (see the module docstring); keyword arguments are :class:`LiquidationParams`' fields.

    The price noise xi_k is ``self.np_random.standard_normal()``, one draw per step."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, **params: Any):
        self.params = LiquidationParams(**params)
        self._coef = self.params.coefficients()
        width = 2 + self.params.n_returns
        low = np.array([0.0, 0.0] + [-np.inf] * self.params.n_returns, dtype=np.float32)
        high = np.array([1.0, 1.0] + [np.inf] * self.params.n_returns, dtype=np.float32)
        self.observation_space = gym.spaces.Box(low, high, shape=(width,), dtype=np.float32)
        self.action_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self._inventory, self._step, self._returns = 1.0, 0, np.zeros(self.params.n_returns)

    def _obs(self) -> np.ndarray:
        time_left = (self.params.N - self._step) / self.params.N
        return np.concatenate([[self._inventory, time_left], self._returns]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._inventory, self._step = 1.0, 0
        self._returns = np.zeros(self.params.n_returns)
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a, b, c, g = self._coef
        p = self.params
        fraction = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], 0.0, 1.0))
        if self._step == p.N - 1:
            fraction = 1.0  # the last step sells what is left
        sold = self._inventory * fraction  # n_k / X
        left = self._inventory - sold      # x_k / X
        move = float(self.np_random.standard_normal()) - g * sold  # (S_k - S_{k-1}) / (sigma sqrt(tau))
        shortfall = a * sold**2 - b * left * move
        # "expected": the same minus the zero-mean noise term b x_k xi_k (see the module docstring)
        charged = shortfall if p.reward == "realised" else a * sold**2 + b * g * left * sold
        penalty = c * left**2
        self._inventory, self._step = left, self._step + 1
        if p.n_returns:
            self._returns = np.concatenate([[move], self._returns[:-1]])
        info = {"shares_sold": sold * p.X, "shortfall": shortfall * p.scale, "risk_penalty": penalty * p.scale}
        return self._obs(), -(charged + penalty), self._step >= p.N, False, info


class BatchedLiquidation(BatchedEnv):
    """``n_envs`` liquidations as one tensor; state ``inventory, step, return_1..return_m`` (fractions of X, the
    steps taken as a float, the normalised moves). Keyword arguments are :class:`LiquidationParams`' fields; the
    noise comes from the env's generator (``_step_random``), N(0, 1) per copy and step."""

    env_id = ENV_ID
    state_names: tuple[str, ...] = ("inventory", "step")
    reset_low: tuple[float, ...] = ()
    reset_high: tuple[float, ...] = ()
    default_max_episode_steps = None  # the episode terminates at N steps by itself

    def __init__(self, n_envs: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 **params: Any):
        self.params = LiquidationParams(**params)
        m = self.params.n_returns
        self.state_names = ("inventory", "step", *(f"return_{i + 1}" for i in range(m)))
        self.reset_low = self.reset_high = (1.0, 0.0) + (0.0,) * m
        super().__init__(n_envs, device=device, dtype=dtype)

    @classmethod
    def accepts(cls, env_kwargs: dict[str, Any]) -> bool:
        """Every field of :class:`LiquidationParams` (``make`` asks before it picks the native env)."""
        return set(env_kwargs) <= {f.name for f in dataclasses.fields(LiquidationParams)} | {"dtype"}

    def _setup_constants(self) -> None:
        a, b, c, g = self.params.coefficients()
        self._a, self._b, self._c, self._g = (self._constant(v) for v in (a, b, c, g))
        self._last_step = self._constant(self.params.N - 1)
        self._n_steps = self._constant(self.params.N)
        self._one = self._constant(1.0)
        self._noise_in_reward = self.params.reward == "realised"
        self._initial = torch.tensor(self.reset_low, dtype=self.dtype, device=self.device).expand(self.n_envs, -1)

    def _spaces(self) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        m = self.params.n_returns
        low = np.array([0.0, 0.0] + [-np.inf] * m, dtype=np.float32)
        high = np.array([1.0, 1.0] + [np.inf] * m, dtype=np.float32)
        return (gym.spaces.Box(low, high, shape=(2 + m,), dtype=np.float32),
                gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32))

    def _sample_initial_states(self) -> Tensor:
        return self._initial.clone()  # every liquidation starts the same: all of X held, no moves seen

    def _step_random(self) -> Tensor:
        return torch.randn(self.n_envs, dtype=self.dtype, device=self.device, generator=self._generator)

    def _transition(self, state: Tensor, actions: Tensor, random: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        inventory, step = state[:, 0], state[:, 1]
        fraction = torch.where(step >= self._last_step, self._one, actions[:, 0])  # the last step sells the rest
        sold = inventory * fraction
        left = inventory - sold
        move = random - self._g * sold
        # "expected" charges the move's mean -g n_k instead of the move: the noise term's mean is 0 for any policy
        priced = move if self._noise_in_reward else -self._g * sold
        shortfall = self._a * sold.square() - self._b * left * priced
        reward = -(shortfall + self._c * left.square())
        next_state = torch.empty_like(state)
        next_state[:, 0] = left
        next_state[:, 1] = step + 1
        if self.params.n_returns:
            next_state[:, 2] = move
            next_state[:, 3:] = state[:, 2:-1]
        terminated = next_state[:, 1] >= self._n_steps
        return next_state, reward, terminated, self._initial

    def _observe(self, state: Tensor) -> Tensor:
        obs = state.clone()
        obs[:, 1] = 1.0 - state[:, 1] / self.params.N
        return obs


# ---- scoring a policy on many paths -----------------------------------------------------------------------------


class PathCosts(NamedTuple):
    """What :func:`simulate` measured, float64, one entry per path.

    The cost splits as ``C = impact + noise``: ``impact = sum_k [(eta / tau) n_k^2 + gamma x_k n_k]`` (what the
    trades cost through the impacts) and ``noise = -sigma sqrt(tau) sum_k x_k xi_k`` (the price moves' effect on what
    is still held). ``risk = sigma^2 tau sum_k x_k^2``; the env's penalty is ``lam * risk``. ``returns`` are the
    env's float32 rewards summed, ``holdings`` x_0..x_N in shares."""

    impact: Tensor
    noise: Tensor
    risk: Tensor
    holdings: Tensor
    returns: Tensor
    lam: float

    @property
    def cost(self) -> Tensor:
        """The implementation shortfall C of each path."""
        return self.impact + self.noise

    @property
    def penalty(self) -> Tensor:
        """The env's risk penalty lam sigma^2 tau sum x_k^2 of each path."""
        return self.lam * self.risk

    def influence(self, estimator: str = "sample") -> Tensor:
        """Per-path terms psi_i whose mean estimates E[C] + lam Var[C], to first order in 1/n (so std(psi) / sqrt(n)
        is the estimate's standard error, and two policies on the same paths compare through psi_a - psi_b):

        - ``"sample"``: psi = C + lam (C - mean C)^2, the sample mean plus lam times the sample variance.
        - ``"control"``: the noise term has mean 0 and E[noise^2] = E[risk] for any policy that decides x_k before
          seeing xi_k (the draws are independent of the past), so E[C] = E[impact] and
          Var[C] = E[risk] + Var[impact] + 2 Cov(impact, noise): psi = impact + lam (risk + (impact - mean)^2
          + 2 (impact - mean)(noise - mean)). Same expectation, far less noise: for a static schedule impact and
          risk are the same on every path, so psi is the analytic E[C] + lam Var[C] exactly.
        """
        if estimator == "sample":
            centred = self.cost - self.cost.mean()
            return self.cost + self.lam * centred.square()
        if estimator == "control":
            impact = self.impact - self.impact.mean()
            noise = self.noise - self.noise.mean()
            return self.impact + self.lam * (self.risk + impact.square() + 2 * impact * noise)
        raise ValueError(f"estimator must be 'sample' or 'control', got {estimator!r}")

    def objective(self, estimator: str = "sample") -> tuple[float, float]:
        """(estimate, standard error) of E[C] + lam Var[C] (see :meth:`influence`)."""
        return mean_and_stderr(self.influence(estimator))

    def mean_cost(self) -> tuple[float, float]:
        """(mean, standard error) of C."""
        return mean_and_stderr(self.cost)

    def variance(self) -> tuple[float, float]:
        """(sample variance of C, its standard error)."""
        return mean_and_stderr((self.cost - self.cost.mean()).square())


def paired_difference(a: PathCosts, b: PathCosts, estimator: str = "sample") -> tuple[float, float]:
    """(estimate, standard error) of objective(a) - objective(b) for two policies played on the same paths: the
    mean of the paired influence differences, whose spread excludes the noise both share."""
    if a.cost.shape != b.cost.shape:
        raise ValueError("paired_difference needs the two policies played on the same paths (same n_paths)")
    return mean_and_stderr(a.influence(estimator) - b.influence(estimator))


Policy = Callable[[Tensor], Tensor]


def schedule_policy(holdings: np.ndarray | Tensor) -> Policy:
    """The policy that follows a static schedule x_0..x_N (any units): at step k it sells 1 - x_{k+1} / x_k of what
    is left. It reads the step from the observation's time-left column."""
    x = torch.as_tensor(np.asarray(holdings, dtype=np.float64))
    N = x.numel() - 1
    fractions = torch.where(x[:-1] > 0, 1.0 - x[1:] / x[:-1].clamp(min=1e-300), torch.ones(N, dtype=torch.float64))

    def policy(obs: Tensor) -> Tensor:
        step = torch.round((1.0 - obs[:, 1].double()) * N).long().clamp(0, N - 1)
        return fractions.to(obs.device)[step].unsqueeze(1)

    return policy


@torch.no_grad()
def simulate(policy: Policy, n_paths: int, seed: int, **params: Any) -> PathCosts:
    """Play ``policy`` (observations [n, D] -> fractions [n, 1]) on ``n_paths`` liquidations of the native env in
    float64, seeded with ``seed``: the same seed gives every policy the same noise xi (the draws do not depend on the
    actions), so two policies' results are paired path by path.

    The cost is rebuilt from the states in float64 (C_k = (eta / tau) n_k^2 - x_k sigma sqrt(tau) z_k with the
    observed move z_k = xi_k - gamma n_k / (sigma sqrt(tau))), independent of the float32 rewards, which are summed
    into ``returns`` for comparison."""
    env = BatchedLiquidation(n_paths, dtype=torch.float64, **params)
    p = env.params
    if p.n_returns == 0:
        raise ValueError("simulate reads the price moves from the state: use n_returns >= 1")
    state = env.begin_episodes(seed)
    impact, noise, risk, returns = (torch.zeros(n_paths, dtype=torch.float64) for _ in range(4))
    holdings = [state[:, 0].clone()]
    step_sd = p.sigma * math.sqrt(p.tau)
    for _ in range(p.N):
        actions = policy(env.observe(state).to(torch.float32)).to(torch.float64)
        next_state, reward, _ = env.continue_episodes(state, actions)
        sold = (state[:, 0] - next_state[:, 0]) * p.X
        left = next_state[:, 0] * p.X
        xi = next_state[:, 2] + p.gamma * sold / step_sd  # the observed move less the permanent impact
        impact += p.eta / p.tau * sold.square() + p.gamma * left * sold
        noise -= step_sd * left * xi
        risk += p.sigma**2 * p.tau * left.square()
        returns += reward.double()
        holdings.append(next_state[:, 0].clone())
        state = next_state
    return PathCosts(impact, noise, risk, torch.stack(holdings, 1) * p.X, returns, p.lam)


def _gym_entry(**params: Any) -> OptimalLiquidationEnv:
    return OptimalLiquidationEnv(**params)
