"""Reward normalisation as a VecEnv wrapper, with statistics that go into checkpoints.

Reward normalisation divides by the running standard deviation of the discounted return (not of the reward),
as in PPO's reference implementation; episode statistics in ``info`` stay in raw reward units because they are
counted below this wrapper. Observation normalisation is not an env wrapper: it is a model-side component
(:class:`thorndike.core.normalization.ObservationNormalizer`), so rollout and replay storage keep raw observations.
"""

from __future__ import annotations

from typing import Any

import torch

from thorndike.core.running_stats import RunningMeanStd
from thorndike.envs.vec_env import Info, VecEnv


class _Wrapper:
    def __init__(self, env: VecEnv):
        self.env = env
        self.training = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def train(self, mode: bool = True) -> None:
        """Freeze (``False``) or resume (``True``) updates of the statistics, here and below."""
        self.training = mode
        if hasattr(self.env, "train"):
            self.env.train(mode)


class NormalizeReward(_Wrapper):
    """``reward / std(discounted return)``, clipped to ``[-clip, clip]``."""

    def __init__(self, env: VecEnv, gamma: float, clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__(env)
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.stats = RunningMeanStd((), device=env.device)
        self.discounted = torch.zeros(env.n_envs, dtype=torch.float64, device=env.device)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self.discounted.zero_()
        return self.env.reset(seed=seed)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Info]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return obs, self.scale(reward, terminated, truncated), terminated, truncated, info

    def scale(self, reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
        """One step's raw rewards ``[N]``, scaled (float32), the statistics updated first when training: what
        :meth:`step` does after stepping the env below, for a caller that stepped it another way (a multi-step
        rollout of a native env, scaling its rewards step by step afterwards)."""
        if self.training:
            self.discounted = self.discounted * self.gamma + reward
            self.stats.update(self.discounted)
            self.discounted = self.discounted.masked_fill(terminated | truncated, 0.0)
        return (reward / (self.stats.var + self.epsilon).sqrt()).clamp(-self.clip, self.clip).to(torch.float32)

    def state_dict(self) -> dict[str, Any]:
        return {
            "env": self.env.state_dict(),
            "return_stats": self.stats.state_dict(),
            "discounted": self.discounted.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        self.stats.load_state_dict(state["return_stats"])
        self.discounted = state["discounted"].to(self.discounted.device)
