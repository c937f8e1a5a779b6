"""CartPole-v1 as a batched torch env: Gymnasium's ``CartPoleEnv`` (Barto, Sutton and Anderson 1983), Euler steps.

The notes' running example: a pole hinged on a cart, pushed left or right with a fixed force; +1 per step (the
terminating one included) until the pole leans past 12 degrees or the cart leaves [-2.4, 2.4]; 500 steps at most.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from thorndike.envs.batched.base import BatchedEnv

GRAVITY = 9.8
MASSCART = 1.0
MASSPOLE = 0.1
TOTAL_MASS = MASSPOLE + MASSCART
LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASSPOLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02  # seconds between state updates
THETA_THRESHOLD_RADIANS = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4


class CartPole(BatchedEnv):
    """``n_envs`` copies of CartPole-v1; state columns ``x, x_dot, theta, theta_dot`` (the observation)."""

    env_id = "CartPole-v1"
    state_names = ("x", "x_dot", "theta", "theta_dot")
    reset_low = (-0.05,) * 4
    reset_high = (0.05,) * 4
    default_max_episode_steps = 500

    def _setup_constants(self) -> None:
        dtype = self.dtype
        # Action 0 pushes left, 1 right; the force is divided by the total mass once here rather than every step.
        self._force_over_mass = torch.tensor([-FORCE_MAG, FORCE_MAG], dtype=dtype, device=self.device) / TOTAL_MASS
        self._gravity = self._constant(GRAVITY)
        self._four_thirds_length = self._constant(LENGTH * 4.0 / 3.0)
        inf = math.inf
        self._thresholds = torch.tensor([X_THRESHOLD, inf, THETA_THRESHOLD_RADIANS, inf], dtype=dtype,
                                        device=self.device)

    def _spaces(self) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        high = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD_RADIANS * 2, np.inf], dtype=np.float32)
        return gym.spaces.Box(-high, high, dtype=np.float32), gym.spaces.Discrete(2)

    def _dynamics(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, x_dot, theta, theta_dot = state.unbind(1)
        costheta, sintheta = theta.cos(), theta.sin()
        # temp = (force + polemass_length * theta_dot**2 * sin(theta)) / total_mass
        temp = torch.addcmul(
            torch.index_select(self._force_over_mass, 0, actions),
            theta_dot.square(),
            sintheta,
            value=POLEMASS_LENGTH / TOTAL_MASS,
        )
        # thetaacc = (g sin - cos temp) / (length (4/3 - masspole cos**2 / total_mass))
        numerator = torch.addcmul(sintheta * self._gravity, costheta, temp, value=-1.0)
        denominator = torch.add(self._four_thirds_length, costheta.square(), alpha=-LENGTH * MASSPOLE / TOTAL_MASS)
        thetaacc = numerator.div_(denominator)
        xacc = torch.addcmul(temp, thetaacc, costheta, value=-POLEMASS_LENGTH / TOTAL_MASS)

        # Euler step, all four columns in one op: state + TAU * (x_dot, xacc, theta_dot, thetaacc). (The same
        # a + alpha * b per element as four column-wise adds, bit for bit, in two ops where those took eight.)
        next_state = torch.add(state, torch.stack((x_dot, xacc, theta_dot, thetaacc), dim=1), alpha=TAU)
        # |x| > 2.4 or |theta| > 12 degrees; the velocity columns compare against +inf, never true.
        terminated = (next_state.abs() > self._thresholds).any(1)
        reward = torch.ones_like(x)
        return next_state, reward, terminated
