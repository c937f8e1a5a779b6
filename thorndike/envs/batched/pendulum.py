"""Pendulum-v1 as a batched torch env: Gymnasium's ``PendulumEnv``, the inverted pendulum swing-up.

A torque in [-2, 2] acts on a pendulum hanging from a pivot; the reward is minus the cost
``angle_normalize(theta)**2 + 0.1 theta_dot**2 + 0.001 u**2`` (0 at the top, at rest, with no torque). The
episode never terminates; it is truncated after 200 steps. The angle itself is not wrapped (as in Gymnasium): only
the cost and the observation ``cos(theta), sin(theta), theta_dot`` see it modulo 2 pi.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from thorndike.envs.batched.base import BatchedEnv

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
G = 10.0
M = 1.0
L = 1.0


class Pendulum(BatchedEnv):
    """``n_envs`` copies of Pendulum-v1; state ``theta, theta_dot``, observation ``cos, sin, theta_dot``."""

    env_id = "Pendulum-v1"
    state_names = ("theta", "theta_dot")
    reset_low = (-math.pi, -1.0)
    reset_high = (math.pi, 1.0)
    default_max_episode_steps = 200

    def _setup_constants(self) -> None:
        self._pi = self._constant(math.pi)
        self._two_pi = self._constant(2 * math.pi)
        self._torque_gain = self._constant(3.0 / (M * L**2))

    def _spaces(self) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
        observation_space = gym.spaces.Box(low=-high, high=high, dtype=np.float32)
        return observation_space, gym.spaces.Box(low=-MAX_TORQUE, high=MAX_TORQUE, shape=(1,), dtype=np.float32)

    def _dynamics(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        theta, theta_dot = state.unbind(1)
        u = actions[:, 0]
        # angle_normalize(theta) = ((theta + pi) mod 2 pi) - pi, with a floored modulo as NumPy's %
        normalized = torch.remainder(theta + self._pi, self._two_pi).sub_(self._pi)
        costs = normalized.square_().addcmul_(theta_dot, theta_dot, value=0.1).addcmul_(u, u, value=0.001)

        next_state = torch.empty_like(state)
        # new theta_dot = theta_dot + (3 g / (2 l) sin(theta) + 3 / (m l**2) u) dt, clipped to the maximum speed
        acceleration = torch.mul(u, self._torque_gain).add_(theta.sin(), alpha=3 * G / (2 * L))
        new_theta_dot = torch.add(theta_dot, acceleration, alpha=DT).clamp_(-MAX_SPEED, MAX_SPEED)
        next_state[:, 1] = new_theta_dot
        next_state[:, 0] = torch.add(theta, new_theta_dot, alpha=DT)
        terminated = torch.zeros(self.n_envs, dtype=torch.bool, device=self.device)
        return next_state, costs.neg_(), terminated

    def _observe(self, state: Tensor) -> Tensor:
        obs = torch.empty((self.n_envs, 3), dtype=self.dtype, device=self.device)
        theta = state[:, 0]
        obs[:, 0] = theta.cos()
        obs[:, 1] = theta.sin()
        obs[:, 2] = state[:, 1]
        return obs
