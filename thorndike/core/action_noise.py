"""Exploration noise for deterministic continuous policies (DDPG, TD3).

Notes: 004 L2329-L2332 (DDPG explores with an Ornstein-Uhlenbeck process, Gaussian noise or parameter noise), 003
L1454 (TD3 injects external action noise during collection). The behaviour action is

    a = clip(mu(s) + n_t, -1, 1)

in the algorithm's [-1, 1] units. Gaussian noise draws n_t ~ N(0, sigma^2) afresh each step; the Ornstein-Uhlenbeck
process is temporally correlated (it drifts back toward 0 at rate theta):

    x_{t+1} = x_t - theta x_t dt + sigma sqrt(dt) eps_t,   eps_t ~ N(0, I),   x_0 = 0

one state per env copy, reset to 0 where that copy's episode ended, so one copy's episode end leaves the others'
noise alone. The state is a tensor on the agent's device (a checkpoint component, so a resumed run draws the same
noise), and reset masks it with ``where``: no host synchronisation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["NOISE_KINDS", "ActionNoise"]

NOISE_KINDS = ("gaussian", "ou", "none")


class ActionNoise:
    """``[n_envs, *action_shape]`` exploration noise of kind ``gaussian``, ``ou`` (Ornstein-Uhlenbeck) or ``none``.

    ``sample(generator)`` returns the noise of this step ``[n_envs, *action_shape]`` (advancing the OU state);
    ``reset(done)`` zeroes the OU state of the copies whose episode ended (``done`` ``[n_envs]`` bool).
    """

    def __init__(self, kind: str, n_envs: int, action_shape: tuple[int, ...], sigma: float, theta: float = 0.15,
                 dt: float = 1e-2, device: torch.device | str = "cpu") -> None:
        if kind not in NOISE_KINDS:
            raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
        self.kind, self.sigma, self.theta, self.dt = kind, sigma, theta, dt
        self.state = torch.zeros(n_envs, *action_shape, device=device)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """The noise to add to this step's deterministic actions."""
        if self.kind == "none":
            return torch.zeros_like(self.state)
        eps = torch.randn(self.state.shape, generator=generator, device=self.state.device)
        if self.kind == "gaussian":
            return self.sigma * eps
        # x <- x - theta x dt + sigma sqrt(dt) eps, in place (the state is what a checkpoint holds)
        self.state.mul_(1.0 - self.theta * self.dt).add_(eps, alpha=self.sigma * math.sqrt(self.dt))
        return self.state.clone()

    def reset(self, done: Tensor) -> None:
        """x <- 0 for the copies whose episode ended (masked, no host synchronisation)."""
        if self.kind == "ou":
            self.state.masked_fill_(done.view(-1, *[1] * (self.state.dim() - 1)), 0.0)

    def state_dict(self) -> dict[str, Tensor]:
        return {"state": self.state}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.state.copy_(state["state"])
