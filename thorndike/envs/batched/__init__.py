"""Native batched torch environments: Gymnasium's classic-control and toy-text envs as tensors of ``N`` copies.

Each class reproduces its Gymnasium env step for step (tests/envs/test_batched.py and test_batched_tabular.py check
it on identical states and actions) and implements the :class:`~thorndike.envs.vec_env.VecEnv` protocol with the
conventions of :class:`~thorndike.envs.vec_env.GymnasiumVecEnv`. Importing this package registers every
classic-control class and every toy-text id of :data:`TOY_TEXT` in :data:`thorndike.envs.NATIVE_ENVS` under its
Gymnasium id, so ``th.envs.make(env_id, n_envs, seed)`` (backend ``"auto"`` or ``"torch"``) builds the native env and
``backend="gymnasium"`` the wrapped one. Any other :class:`~thorndike.envs.tabular.TabularMDP` is batched with
:func:`batched`.
"""

from __future__ import annotations

from thorndike.envs import NATIVE_ENVS
from thorndike.envs.batched.acrobot import Acrobot
from thorndike.envs.batched.base import BatchedEnv
from thorndike.envs.batched.cartpole import CartPole
from thorndike.envs.batched.mountain_car import MountainCar, MountainCarContinuous
from thorndike.envs.batched.pendulum import Pendulum
from thorndike.envs.batched.tabular import TOY_TEXT, NativeToyText, TabularEnv, ToyTextModel, batched, toy_text_env

# The classic-control classes, one per Gymnasium id (the toy-text ids share TabularEnv, see TOY_TEXT).
ENVS: tuple[type[BatchedEnv], ...] = (CartPole, Acrobot, MountainCar, MountainCarContinuous, Pendulum)

# Each class is the (n_envs, device) -> VecEnv callable that ``thorndike.envs.make`` calls.
for _env in ENVS:
    NATIVE_ENVS[_env.env_id] = _env
# A toy-text id's callable builds TabularEnv over the id's model, in its registered configuration or the one its
# keyword arguments ask for.
for _env_id in TOY_TEXT:
    NATIVE_ENVS[_env_id] = NativeToyText(_env_id)

__all__ = [
    "ENVS",
    "TOY_TEXT",
    "Acrobot",
    "BatchedEnv",
    "CartPole",
    "MountainCar",
    "MountainCarContinuous",
    "NativeToyText",
    "Pendulum",
    "TabularEnv",
    "ToyTextModel",
    "batched",
    "toy_text_env",
]
