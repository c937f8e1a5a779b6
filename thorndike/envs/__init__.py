"""Environments: ``make`` builds a batch of env copies that speaks torch tensors (see :mod:`.vec_env`).

An env is named by a Gymnasium id (``"CartPole-v1"``), by ``"package.module:function"`` returning a
``gymnasium.Env``, or given as a callable that builds one. A :class:`TabularMDP` is such a callable, and on the
``"auto"`` or ``"torch"`` backend it is batched natively.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch

from thorndike.envs import gridworld, toy_text
from thorndike.envs.normalize import NormalizeObservation, NormalizeReward
from thorndike.envs.tabular import TabularMDP, random_mdp
from thorndike.envs.vec_env import GymnasiumVecEnv, VecEnv

EnvSpec = str | Callable[[], gym.Env]

# Native batched torch envs register here by Gymnasium id: a callable (n_envs, device) -> VecEnv (see envs/batched).
NATIVE_ENVS: dict[str, Callable[..., VecEnv]] = {}

BACKENDS = ("auto", "gymnasium", "torch")

__all__ = [
    "BACKENDS",
    "NATIVE_ENVS",
    "EnvSpec",
    "GymnasiumVecEnv",
    "NormalizeObservation",
    "NormalizeReward",
    "TabularMDP",
    "VecEnv",
    "env_builder",
    "env_name",
    "require_tabular_model",
    "tabular_model",
    "gridworld",
    "make",
    "random_mdp",
    "toy_text",
]


def env_name(env: EnvSpec) -> str:
    """A short name for run folders: the id, or the builder's name."""
    if isinstance(env, str):
        return env.split(":")[-1]
    return getattr(env, "__name__", type(env).__name__)


def env_builder(env: EnvSpec, **env_kwargs: Any) -> Callable[[], gym.Env]:
    """A zero-argument callable that builds one copy, or a clear error saying what is wrong with ``env``."""
    if callable(env):
        return lambda: env(**env_kwargs)
    if not isinstance(env, str):
        raise TypeError(f"env must be a Gymnasium id, 'module:function' or a callable, got {type(env).__name__}")
    if ":" in env and env not in gym.registry:
        module_name, _, attr = env.partition(":")
        try:
            builder = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"cannot import env builder '{env}': {err}") from err
        return lambda: builder(**env_kwargs)
    if env not in gym.registry:
        close = difflib.get_close_matches(env, list(gym.registry), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown environment id '{env}'.{hint} Use a registered Gymnasium id (see gymnasium.pprint_registry()),"
            " 'package.module:function', or pass a callable that returns a gymnasium.Env."
        )
    return lambda: gym.make(env, **env_kwargs)


def make(
    env: EnvSpec,
    n_envs: int = 1,
    seed: int | None = None,
    backend: str = "auto",
    device: torch.device | str = "cpu",
    normalize_obs: bool = False,
    normalize_reward: bool = False,
    gamma: float = 0.99,
    **env_kwargs: Any,
) -> VecEnv:
    """Build ``n_envs`` copies of ``env`` as a torch :class:`VecEnv`, reset with ``seed`` (copy i gets seed+i).

    ``backend="auto"`` picks a native batched torch env when one is registered for the id, else Gymnasium;
    ``"gymnasium"`` always wraps Gymnasium; ``"torch"`` insists on the native env.
    Call ``reset()`` yourself before stepping if you pass ``seed=None``.
    """
    if not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive int, got {n_envs!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    native = (isinstance(env, str) and env in NATIVE_ENVS) or isinstance(env, TabularMDP)
    if backend == "torch" and not native:
        available = ", ".join(sorted(NATIVE_ENVS)) or "none yet"
        raise ValueError(f"no native torch env for {env!r} (native envs: {available}); use backend='gymnasium'")
    if isinstance(env, TabularMDP) and backend != "gymnasium":
        from thorndike.envs.batched import batched

        venv: VecEnv = batched(env, n_envs, device=device)
    elif native and backend != "gymnasium" and not env_kwargs:
        venv = NATIVE_ENVS[env](n_envs=n_envs, device=device)
    else:
        venv = GymnasiumVecEnv(env_builder(env, **env_kwargs), n_envs, device=device)
    if normalize_obs:
        venv = NormalizeObservation(venv)
    if normalize_reward:
        venv = NormalizeReward(venv, gamma=gamma)
    if seed is not None:
        venv.reset(seed=seed)
    return venv


def tabular_model(env: EnvSpec | TabularMDP) -> TabularMDP | None:
    """The :class:`TabularMDP` behind ``env`` when thorndike knows it (a TabularMDP, a toy-text id with a native
    version, or one of thorndike's registered tabular ids), else None. Planning on it gives learning's oracles."""
    if isinstance(env, TabularMDP):
        return env
    if not isinstance(env, str):
        return None
    from thorndike.envs.batched.tabular import TOY_TEXT
    from thorndike.envs.classic import CLASSIC

    builder = TOY_TEXT.get(env) or CLASSIC.get(env)
    return builder() if builder is not None else None


def require_tabular_model(env: EnvSpec | TabularMDP) -> TabularMDP:
    """:func:`tabular_model`, or an error saying that ``env`` has none (so nothing can be evaluated exactly)."""
    mdp = tabular_model(env)
    if mdp is None:
        raise ValueError(f"{env_name(env)} has no TabularMDP model in thorndike, so policies on it cannot be "
                         "evaluated exactly; use agent.evaluate(episodes) instead, or pass a TabularMDP as the env")
    return mdp


from thorndike.envs import batched, classic  # noqa: E402,F401  (registers the native envs and the classic ids)
