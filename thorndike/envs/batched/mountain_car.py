"""MountainCar-v0 and MountainCarContinuous-v0 as batched torch envs (Moore 1990; Gymnasium's two MountainCar envs).

An under-powered car in a valley must rock back and forth to reach the flag on the right hill. Both versions share
the physics below and differ in the action (push left / none / right, or a force in [-1, 1]), the goal (0.5 or
0.45) and the reward (-1 per step, or 100 at the goal minus 0.1 force**2 per step); time limits 200 and 999 steps.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from thorndike.envs.batched.base import BatchedEnv

MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GRAVITY = 0.0025
FORCE = 0.001  # MountainCar-v0: the push of actions 0, 1, 2 is (action - 1) * FORCE
POWER = 0.0015  # MountainCarContinuous-v0: the push is force * POWER


def _position_velocity_space() -> gym.spaces.Box:
    low = np.array([MIN_POSITION, -MAX_SPEED], dtype=np.float32)
    high = np.array([MAX_POSITION, MAX_SPEED], dtype=np.float32)
    return gym.spaces.Box(low, high, dtype=np.float32)


class _Constants(NamedTuple):
    """0-dim operands of ``_move`` (see ``BatchedEnv._constant``)."""

    three: Tensor
    zero: Tensor
    min_position: Tensor
    goal_position: Tensor


def _constants(env: BatchedEnv, goal_position: float) -> _Constants:
    return _Constants(*(env._constant(value) for value in (3.0, 0.0, MIN_POSITION, goal_position)))


def _move(state: Tensor, push: Tensor, constants: _Constants) -> tuple[Tensor, Tensor]:
    """``(next_state, terminated)`` after ``velocity += push - GRAVITY cos(3 position)`` and the walls."""
    position, velocity = state.unbind(1)
    next_state = torch.empty_like(state)
    new_velocity = torch.add(push, torch.mul(position, constants.three).cos_(), alpha=-GRAVITY).add_(velocity)
    new_velocity.clamp_(-MAX_SPEED, MAX_SPEED)
    new_position = torch.add(position, new_velocity).clamp_(MIN_POSITION, MAX_POSITION)
    # the left wall is inelastic: a car stopped against it loses its (leftward) velocity
    at_wall = new_position == constants.min_position
    next_state[:, 1] = torch.where(at_wall, new_velocity.clamp(min=0.0), new_velocity)
    next_state[:, 0] = new_position
    terminated = (new_position >= constants.goal_position) & (next_state[:, 1] >= constants.zero)
    return next_state, terminated


class MountainCar(BatchedEnv):
    """``n_envs`` copies of MountainCar-v0; state and observation ``position, velocity``."""

    env_id = "MountainCar-v0"
    state_names = ("position", "velocity")
    reset_low = (-0.6, 0.0)
    reset_high = (-0.4, 0.0)
    default_max_episode_steps = 200
    goal_position = 0.5

    def _setup_constants(self) -> None:
        dtype = self.dtype
        self._pushes = torch.tensor([-FORCE, 0.0, FORCE], dtype=dtype, device=self.device)
        self._constants = _constants(self, self.goal_position)

    def _spaces(self) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        return _position_velocity_space(), gym.spaces.Discrete(3)

    def _dynamics(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        next_state, terminated = _move(state, torch.index_select(self._pushes, 0, actions), self._constants)
        return next_state, torch.full_like(state[:, 0], -1.0), terminated


class MountainCarContinuous(BatchedEnv):
    """``n_envs`` copies of MountainCarContinuous-v0; state and observation ``position, velocity``."""

    env_id = "MountainCarContinuous-v0"
    state_names = ("position", "velocity")
    reset_low = (-0.6, 0.0)
    reset_high = (-0.4, 0.0)
    default_max_episode_steps = 999
    goal_position = 0.45

    def _setup_constants(self) -> None:
        self._constants = _constants(self, self.goal_position)
        self._power = self._constant(POWER)
        self._goal_reward = self._constant(100.0)

    def _spaces(self) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        return _position_velocity_space(), gym.spaces.Box(low=-1.0, high=1.0, shape=(1,), dtype=np.float32)

    def _dynamics(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        force = actions[:, 0]
        next_state, terminated = _move(state, force * self._power, self._constants)
        reward = torch.addcmul(terminated.to(self.dtype) * self._goal_reward, force, force, value=-0.1)
        return next_state, reward, terminated
