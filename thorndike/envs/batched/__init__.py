"""Native batched torch environments: Gymnasium's classic-control envs as tensors of ``N`` copies.

Each class reproduces its Gymnasium env step for step (tests/envs/test_batched.py checks it on identical states
and actions) and implements the :class:`~thorndike.envs.vec_env.VecEnv` protocol with the conventions of
:class:`~thorndike.envs.vec_env.GymnasiumVecEnv`. Importing this package registers every class in
:data:`thorndike.envs.NATIVE_ENVS` under its Gymnasium id, so ``th.envs.make(env_id, n_envs, seed)`` (backend
``"auto"`` or ``"torch"``) builds the native env and ``backend="gymnasium"`` the wrapped one.
"""

from __future__ import annotations

from thorndike.envs import NATIVE_ENVS
from thorndike.envs.batched.acrobot import Acrobot
from thorndike.envs.batched.base import BatchedEnv, StepInfo
from thorndike.envs.batched.cartpole import CartPole
from thorndike.envs.batched.mountain_car import MountainCar, MountainCarContinuous
from thorndike.envs.batched.pendulum import Pendulum

ENVS: tuple[type[BatchedEnv], ...] = (CartPole, Acrobot, MountainCar, MountainCarContinuous, Pendulum)

# Each class is the (n_envs, device) -> VecEnv callable that ``thorndike.envs.make`` calls.
for _env in ENVS:
    NATIVE_ENVS[_env.env_id] = _env

__all__ = [
    "ENVS",
    "Acrobot",
    "BatchedEnv",
    "CartPole",
    "MountainCar",
    "MountainCarContinuous",
    "Pendulum",
    "StepInfo",
]
