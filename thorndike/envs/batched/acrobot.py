"""Acrobot-v1 as a batched torch env: Gymnasium's ``AcrobotEnv`` (Sutton 1996; the "book" dynamics), RK4 steps.

Two links hang from a fixed joint; a torque of -1, 0 or +1 at the middle joint must swing the free end above the
bar (``-cos(theta1) - cos(theta1 + theta2) > 1``). -1 per step until then, 0 on the step that reaches it; 500 steps
at most. One step integrates the equations of motion over 0.2 s with one classical Runge-Kutta step, as Gymnasium
does, then wraps the angles into [-pi, pi] and clips the velocities.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from thorndike.envs.batched.base import BatchedEnv

DT = 0.2
LINK_LENGTH_1 = 1.0
LINK_MASS_1 = 1.0
LINK_MASS_2 = 1.0
LINK_COM_POS_1 = 0.5
LINK_COM_POS_2 = 0.5
LINK_MOI = 1.0
MAX_VEL_1 = 4 * math.pi
MAX_VEL_2 = 9 * math.pi
AVAIL_TORQUE = (-1.0, 0.0, 1.0)
G = 9.8

# The equations of motion (``AcrobotEnv._dsdt``) with the constant parts of each term folded once:
#   d1 = D1_CONST + D1_COS cos(theta2),   d2 = D2_CONST + D2_COS cos(theta2)
#   phi2 = PHI2_SIN sin(theta1 + theta2)                      [Gymnasium: cos(theta1 + theta2 - pi/2)]
#   phi1 = -C sin(theta2) dtheta2 (dtheta2 + 2 dtheta1) + PHI1_SIN sin(theta1) + phi2
#   ddtheta2 = (a + d2/d1 phi1 - C dtheta1**2 sin(theta2) - phi2) / (DD2_CONST - d2**2/d1)
#   ddtheta1 = -(d2 ddtheta2 + phi1) / d1
# with C = m2 l1 lc2. sin(x) replaces cos(x - pi/2): equal in exact arithmetic, and free of the rounding of pi/2.
C = LINK_MASS_2 * LINK_LENGTH_1 * LINK_COM_POS_2
D1_CONST = (
    LINK_MASS_1 * LINK_COM_POS_1**2 + LINK_MASS_2 * (LINK_LENGTH_1**2 + LINK_COM_POS_2**2) + LINK_MOI + LINK_MOI
)
D1_COS = 2 * C
D2_CONST = LINK_MASS_2 * LINK_COM_POS_2**2 + LINK_MOI
D2_COS = C
PHI2_SIN = LINK_MASS_2 * LINK_COM_POS_2 * G
PHI1_SIN = (LINK_MASS_1 * LINK_COM_POS_1 + LINK_MASS_2 * LINK_LENGTH_1) * G
DD2_CONST = LINK_MASS_2 * LINK_COM_POS_2**2 + LINK_MOI


class Acrobot(BatchedEnv):
    """``n_envs`` copies of Acrobot-v1; state ``theta1, theta2, dtheta1, dtheta2``, observation
    ``cos(theta1), sin(theta1), cos(theta2), sin(theta2), dtheta1, dtheta2``."""

    env_id = "Acrobot-v1"
    state_names = ("theta1", "theta2", "dtheta1", "dtheta2")
    reset_low = (-0.1,) * 4
    reset_high = (0.1,) * 4
    default_max_episode_steps = 500

    def _setup_constants(self) -> None:
        dtype = self.dtype
        self._torques = torch.tensor(AVAIL_TORQUE, dtype=dtype, device=self.device)
        self._max_velocity = torch.tensor([[MAX_VEL_1], [MAX_VEL_2]], dtype=dtype, device=self.device)
        self._d1_const = self._constant(D1_CONST)
        self._d2_const = self._constant(D2_CONST)
        self._dd2_const = self._constant(DD2_CONST)
        self._phi2_sin = self._constant(PHI2_SIN)
        self._minus_c = self._constant(-C)
        self._pi = self._constant(math.pi)
        self._two_pi = self._constant(2 * math.pi)
        self._one = self._constant(1.0)

    def _spaces(self) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        high = np.array([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=np.float32)
        return gym.spaces.Box(-high, high, dtype=np.float32), gym.spaces.Discrete(3)

    def _dynamics(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        torque = torch.index_select(self._torques, 0, actions)
        # Runge-Kutta on rows [4, N]: every op then runs over contiguous memory. On CPU an op over the [N, 2] or
        # [N, 4] column blocks of the state loops over rows of 2 or 4 numbers, and costs up to 20x more.
        y0 = torch.stack(state.unbind(1))
        k1 = self._derivatives(y0, torque)
        k2 = self._derivatives(torch.add(y0, k1, alpha=DT / 2), torque)
        k3 = self._derivatives(torch.add(y0, k2, alpha=DT / 2), torque)
        k4 = self._derivatives(torch.add(y0, k3, alpha=DT), torque)
        increment = torch.add(k1, k2, alpha=2.0).add_(k3, alpha=2.0).add_(k4)
        rows = torch.add(y0, increment, alpha=DT / 6)
        self._wrap_(rows[:2])
        rows[2:].clamp_(-self._max_velocity, self._max_velocity)

        theta1, theta2 = rows[0], rows[1]
        terminated = theta1.cos().neg_().sub_(torch.add(theta1, theta2).cos_()) > self._one
        reward = terminated.to(self.dtype) - self._one
        next_state = torch.empty_like(state)
        for column, row in enumerate(rows):
            next_state[:, column] = row
        return next_state, reward, terminated

    def _derivatives(self, y: Tensor, torque: Tensor) -> Tensor:
        """d/dt of ``y = [theta1, theta2, dtheta1, dtheta2]`` stored as rows ``[4, N]`` (the torque is constant)."""
        theta1, theta2, dtheta1, dtheta2 = y.unbind(0)
        cos2, sin2 = theta2.cos(), theta2.sin()
        d1 = torch.add(self._d1_const, cos2, alpha=D1_COS)
        d2 = torch.add(self._d2_const, cos2, alpha=D2_COS)
        phi2 = torch.add(theta1, theta2).sin_().mul_(self._phi2_sin)
        phi1 = torch.add(dtheta2, dtheta1, alpha=2.0).mul_(dtheta2).mul_(sin2).mul_(self._minus_c)
        phi1.add_(theta1.sin(), alpha=PHI1_SIN).add_(phi2)
        ratio = d2 / d1
        numerator = torch.addcmul(torque, ratio, phi1).addcmul_(dtheta1.square(), sin2, value=-C).sub_(phi2)
        ddtheta2 = numerator.div_(torch.addcmul(self._dd2_const, ratio, d2, value=-1.0))
        ddtheta1 = torch.addcmul(phi1, d2, ddtheta2).div_(d1).neg_()
        return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2))

    def _wrap_(self, angles: Tensor) -> None:
        """Gymnasium's ``wrap``: add or subtract 2 pi until each angle is in ``[-pi, pi]``, in place.

        The number of turns is counted with ``ceil`` rather than a loop, so the step stays free of host syncs.
        """
        angles.sub_(torch.sub(angles, self._pi).div_(self._two_pi).ceil_().clamp_(min=0.0).mul_(self._two_pi))
        angles.add_(torch.add(angles, self._pi).neg_().div_(self._two_pi).ceil_().clamp_(min=0.0).mul_(self._two_pi))

    def _observe(self, state: Tensor) -> Tensor:
        obs = torch.empty((self.n_envs, 6), dtype=self.dtype, device=self.device)
        # column by column, for the reason given in _dynamics
        theta1, theta2, dtheta1, dtheta2 = state.unbind(1)
        obs[:, 0] = theta1.cos()
        obs[:, 1] = theta1.sin()
        obs[:, 2] = theta2.cos()
        obs[:, 3] = theta2.sin()
        obs[:, 4] = dtheta1
        obs[:, 5] = dtheta2
        return obs
