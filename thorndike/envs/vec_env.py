"""A vectorised environment that speaks torch tensors, over Gymnasium's vector envs.

Every algorithm sees one convention (DESIGN.md, "Data flow"): ``step`` returns the next observation, with
same-step autoreset, so the step that ends an episode already returns the new episode's first observation.
Every :class:`VecEnv` (native batched torch envs, :class:`GymnasiumVecEnv` over Gymnasium's sync or async vector
env, and the normalisation wrappers) returns the same ``info``: a plain ``dict`` of fixed-shape tensors on the env's
device, so reading it never waits for the device and its shapes never depend on the data:

- ``final_obs`` ``[N, ...]``: the ended episode's true last observation where a copy's episode ended on this step
  (for bootstrapping on truncation), else the same as ``obs``;
- ``done`` ``[N]`` bool: ``terminated | truncated``;
- ``episode_return`` ``[N]`` float64: each copy's return so far, including this step's reward; for copies that are
  ``done``, the return of the episode that just ended;
- ``episode_length`` ``[N]`` int64: likewise, the number of steps.

The statistics of the episodes that ended are ``info["episode_return"][info["done"]]`` (a boolean-mask gather, so
a host sync: the caller decides when to pay it).

Envs whose episodes are parts of a game (Atari with ``episodic_life``: an episode is a life, and rewards are
clipped) add three entries (:data:`GAME_KEYS`), with the same semantics for games:

- ``game_over`` ``[N]`` bool: the copy's game ended on this step (it implies ``done``);
- ``game_return`` ``[N]`` float64: the raw (unclipped) score of the copy's game so far; for copies whose game is
  over, the score of the game that just ended;
- ``game_length`` ``[N]`` int64: likewise, the game's length in steps.

The episode ledger and ``evaluate`` then count games, with their raw scores (:mod:`thorndike.envs.atari`).
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from thorndike.core.diagnostics import EnvOutputError
from thorndike.core.spaces import batch_of_one, is_structured, pack, storage_spec
from thorndike.envs.checker import old_api_error, old_api_problems

Info = dict[str, Any]

INFO_KEYS = ("final_obs", "done", "episode_return", "episode_length")
"""The entries of every VecEnv step's ``info`` (see the module docstring)."""

GAME_KEYS = ("game_over", "game_return", "game_length")
"""The extra ``info`` entries of VecEnvs whose episodes are parts of games (see the module docstring)."""

VECTORIZATIONS = ("sync", "async")


class VecEnv(Protocol):
    """What an algorithm needs from a batch of ``n_envs`` environments, all tensors on ``device``.

    ``reset(seed)`` starts every copy (copy i seeded with ``seed + i`` where that applies) and returns the first
    observations ``[N, ...]``. ``step(actions)`` returns ``(obs, reward, terminated, truncated, info)``: ``obs``
    ``[N, ...]`` is the next observation with same-step autoreset (a copy whose episode ended already shows its new
    episode's first observation), ``reward`` ``[N]`` float32, ``terminated`` and ``truncated`` ``[N]`` bool, and
    ``info`` a plain ``dict`` with exactly these fixed-shape entries:

    - ``final_obs`` ``[N, ...]``: the true last observation where an episode ended, else equal to ``obs``;
    - ``done`` ``[N]`` bool: ``terminated | truncated``;
    - ``episode_return`` ``[N]`` float64: each copy's return so far including this step's reward; for copies that
      are ``done``, the return of the episode that just ended;
    - ``episode_length`` ``[N]`` int64: likewise, the episode's length in steps.

    ``state_dict`` / ``load_state_dict`` checkpoint the copies (as exactly as the env allows); ``close`` releases
    them.
    """

    n_envs: int
    device: torch.device
    single_observation_space: gym.Space
    single_action_space: gym.Space

    def reset(self, seed: int | None = None) -> torch.Tensor: ...

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Info]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class GymnasiumVecEnv:
    """``n_envs`` copies of a Gymnasium env in a Gymnasium vector env (same-step autoreset), as torch tensors.

    ``vectorization="sync"`` steps the copies one after another in this process (``SyncVectorEnv``); ``"async"``
    steps each in its own subprocess (``AsyncVectorEnv``), which pays off when one copy's step is slow (physics
    simulators, emulators) and costs inter-process traffic when it is fast. Both give the same outputs for the same
    seed and actions.

    Box actions outside the space are clipped to its bounds before they reach the env (the algorithm keeps the
    unclipped action for its log-probabilities).

    ``games=True``: each copy reports ``game_return``, ``game_length`` and ``game_over`` in its Gymnasium ``info``
    on every step (:class:`thorndike.envs.atari.GameScore`), and ``step`` passes them on as :data:`GAME_KEYS`.
    """

    def __init__(
        self,
        env_fn: Callable[[], gym.Env],
        n_envs: int,
        device: torch.device | str = "cpu",
        vectorization: str = "sync",
        games: bool = False,
    ):
        if vectorization not in VECTORIZATIONS:
            raise ValueError(f"vectorization must be one of {VECTORIZATIONS}, got {vectorization!r}")
        self.n_envs = n_envs
        self.device = torch.device(device)
        self.vectorization = vectorization
        self.games = games
        self._env_fn = env_fn

        def checked_env_fn(index: int) -> Callable[[], gym.Env]:
            return lambda: _CheckedCopy(env_fn(), index)

        if vectorization == "sync":
            self._venv: SyncVectorEnv | AsyncVectorEnv = SyncVectorEnv(
                [checked_env_fn(i) for i in range(n_envs)], autoreset_mode=AutoresetMode.SAME_STEP
            )
            if len({id(env) for env in self._venv.envs}) < n_envs:
                raise ValueError(
                    "the env builder returned the same env object for several copies, so they would share one "
                    "state; make it return a new env on each call (e.g. `lambda: mdp.copy()` instead of `lambda: mdp`)"
                )
        else:
            # The outermost wrapper lets the parent fetch and replace each subprocess's env (checkpoints).
            def snapshotting_env_fn(index: int) -> Callable[[], gym.Env]:
                return lambda: _PicklableEnv(checked_env_fn(index)())

            self._venv = AsyncVectorEnv(
                [snapshotting_env_fn(i) for i in range(n_envs)], autoreset_mode=AutoresetMode.SAME_STEP
            )
        self.single_observation_space = self._venv.single_observation_space
        self.single_action_space = self._venv.single_action_space
        self._obs_dtype = torch.float32 if _is_float_space(self.single_observation_space) else None
        # Dict and Tuple observations travel as one packed float vector (thorndike.core.spaces); an unsupported
        # sub-space is refused here, by name, before any step.
        self._structured = is_structured(self.single_observation_space)
        if self._structured:
            storage_spec(self.single_observation_space)
        self._returns = torch.zeros(n_envs, dtype=torch.float64)
        self._lengths = torch.zeros(n_envs, dtype=torch.int64)
        space = self.single_action_space
        if isinstance(space, gym.spaces.Box):
            self._low, self._high = space.low, space.high
        self._warned_unpicklable = False

    def _to_tensor(self, array: Any) -> torch.Tensor:
        if self._structured:
            return pack(self.single_observation_space, array, self.device)
        tensor = torch.from_numpy(np.asarray(array))
        if self._obs_dtype is not None and tensor.dtype != self._obs_dtype:
            tensor = tensor.to(self._obs_dtype)
        return tensor.to(self.device)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        try:
            obs, _ = self._venv.reset(seed=seed)
        except Exception as err:
            self._raise_if_old_api(err)
            raise
        self._returns.zero_()
        self._lengths.zero_()
        return self._to_tensor(obs)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Info]:
        actions_np = actions.detach().cpu().numpy()
        if isinstance(self.single_action_space, gym.spaces.Box):
            actions_np = np.clip(actions_np, self._low, self._high).astype(self.single_action_space.dtype)
        try:
            obs, reward, terminated, truncated, raw_info = self._venv.step(actions_np)
        except EnvOutputError as err:
            self._raise_if_old_api(err)
            raise
        except Exception as err:  # e.g. Gymnasium's own error joining copies that _CheckedCopy does not check
            self._raise_if_old_api(err)
            raise EnvOutputError(f"stepping the env copies failed: {type(err).__name__}: {err}") from err
        reward_t = torch.from_numpy(np.asarray(reward, dtype=np.float64))
        terminated_t = torch.from_numpy(np.asarray(terminated, dtype=bool))
        truncated_t = torch.from_numpy(np.asarray(truncated, dtype=bool))
        done = terminated_t | truncated_t

        self._returns += reward_t
        self._lengths += 1
        episode_return, episode_length = self._returns.clone(), self._lengths.clone()
        self._returns.masked_fill_(done, 0.0)
        self._lengths.masked_fill_(done, 0)
        obs_t = self._to_tensor(obs)
        final_t = obs_t
        ended = np.flatnonzero(done.numpy())  # host data already: Gymnasium's outputs are NumPy arrays
        if ended.size:
            if self._structured:
                final_t = obs_t.clone()
                for i in ended:
                    one = batch_of_one(self.single_observation_space, raw_info["final_obs"][i])
                    final_t[i] = self._to_tensor(one)[0]
            else:
                final = obs.copy()
                for i in ended:
                    final[i] = raw_info["final_obs"][i]
                final_t = self._to_tensor(final)
        info: Info = {
            "final_obs": final_t,
            "done": done.to(self.device),
            "episode_return": episode_return.to(self.device),
            "episode_length": episode_length.to(self.device),
        }
        if self.games:
            info.update(self._game_info(raw_info, done.numpy()))
        return (
            obs_t,
            reward_t.to(torch.float32).to(self.device),
            terminated_t.to(self.device),
            truncated_t.to(self.device),
            info,
        )

    def _game_info(self, raw_info: dict[str, Any], done: np.ndarray) -> Info:
        """The :data:`GAME_KEYS` entries: from the step's info for running copies, from ``final_info`` for copies
        whose episode ended (Gymnasium's same-step autoreset put the reset's info at the top level)."""
        final = raw_info.get("final_info", {})
        out: Info = {}
        for key, dtype in (("game_over", torch.bool), ("game_return", torch.float64), ("game_length", torch.int64)):
            if key not in raw_info and key not in final:
                raise EnvOutputError(f"the env copies report no info[{key!r}]: games=True needs the game_score "
                                     "wrapper (thorndike.envs.atari.GameScore) in each copy")
            values = np.zeros(self.n_envs, dtype=np.float64)
            if key in raw_info:
                values = np.where(raw_info["_" + key], raw_info[key], values)
            if key in final:
                values = np.where(done & final["_" + key], final[key], values)
            out[key] = torch.from_numpy(values).to(dtype).to(self.device)
        return out

    def _raise_if_old_api(self, err: Exception) -> None:
        """Name an env written for the old Gym API (probing a fresh copy) instead of Gymnasium's unpacking error."""
        probe = self._env_fn()
        problems = old_api_problems(probe)
        if problems:
            raise old_api_error(type(getattr(probe, "unwrapped", probe)).__name__, problems) from err

    def render(self) -> np.ndarray | None:
        """The first copy's frame (the env must have been made with ``render_mode="rgb_array"``)."""
        if isinstance(self._venv, SyncVectorEnv):
            return self._venv.envs[0].render()
        return self._venv.call("render")[0]

    def state_dict(self) -> dict[str, Any]:
        """The copies' full state (pickled envs: dynamics, episode clocks, RNGs) and the episode counters.

        Both vectorizations save the same thing (async fetches each subprocess's pickled env), so a checkpoint of
        one loads into the other. An env that cannot be pickled is warned about once and saved without its copies.
        """
        if isinstance(self._venv, SyncVectorEnv):
            try:
                envs: list[bytes] | None = [pickle.dumps(env) for env in self._venv.envs]
            except Exception as err:  # e.g. envs holding a native handle
                self._warn_unpicklable(str(err))
                envs = None
        else:
            snapshots = self._venv.get_attr(_PicklableEnv.ATTRIBUTE)
            errors = [snapshot for snapshot in snapshots if isinstance(snapshot, str)]
            envs = None if errors else list(snapshots)
            if errors:
                self._warn_unpicklable(errors[0])
        return {"envs": envs, "returns": self._returns.clone(), "lengths": self._lengths.clone()}

    def _warn_unpicklable(self, reason: str) -> None:
        if not self._warned_unpicklable:
            warnings.warn(
                f"this env cannot be pickled ({reason}); a resumed run will start new episodes, so it will not "
                "repeat an uninterrupted run exactly",
                stacklevel=3,
            )
            self._warned_unpicklable = True

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["envs"] is not None:
            if len(state["envs"]) != self.n_envs:
                raise ValueError(f"the checkpoint holds {len(state['envs'])} env copies, this env has {self.n_envs}")
            if isinstance(self._venv, SyncVectorEnv):
                for env in self._venv.envs:
                    env.close()
                self._venv.envs = [pickle.loads(blob) for blob in state["envs"]]
            else:
                self._venv.set_attr(_PicklableEnv.ATTRIBUTE, list(state["envs"]))
        self._returns.copy_(state["returns"])
        self._lengths.copy_(state["lengths"])

    def close(self) -> None:
        self._venv.close()


class _CheckedCopy(gym.Wrapper):
    """Each Gymnasium copy's innermost thorndike wrapper: an observation of the wrong shape or kind for its space,
    or an exception from the env's ``step`` or ``reset``, becomes an :class:`EnvOutputError` naming the copy, where
    Gymnasium would fail later joining the copies ("all input arrays must have the same shape") or with a traceback
    from inside the env. Dict and Tuple observations are checked by packing (``thorndike.core.spaces``)."""

    def __init__(self, env: gym.Env, index: int) -> None:
        super().__init__(env)
        self.index = index
        space = env.observation_space
        self._shape = space.shape if isinstance(space, gym.spaces.Box | gym.spaces.Discrete) else None
        self._kinds = "iu" if isinstance(space, gym.spaces.Discrete) else "biuf"

    def __getattr__(self, name: str) -> Any:
        """Transparent: the env's own attributes read through this wrapper, as if it were not there."""
        if name.startswith("_") or name in ("env", "index"):  # also while unpickling, before env is set
            raise AttributeError(name)
        return getattr(self.env, name)

    def _checked(self, obs: Any, what: str) -> Any:
        if self._shape is None:
            return obs
        array = np.asarray(obs)
        if array.shape != self._shape or array.dtype.kind not in self._kinds:
            raise EnvOutputError(f"env copy {self.index} {what} an observation of shape {array.shape} and dtype "
                                 f"{array.dtype}, which its observation space {self.env.observation_space} cannot "
                                 "hold; check the environment")
        return obs

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, dict]:
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except EnvOutputError:
            raise
        except Exception as err:
            raise EnvOutputError(f"env copy {self.index} raised {type(err).__name__} in its step: {err}") from err
        return self._checked(obs, "returned from its step"), reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        try:
            obs, info = self.env.reset(**kwargs)
        except EnvOutputError:
            raise
        except Exception as err:
            raise EnvOutputError(f"env copy {self.index} raised {type(err).__name__} in its reset: {err}") from err
        return self._checked(obs, "returned from its reset"), info


class _PicklableEnv(gym.Wrapper):
    """The outermost wrapper of each async copy: reading :attr:`ATTRIBUTE` (``AsyncVectorEnv.get_attr``) pickles
    the env inside, setting it (``set_attr``) replaces that env with an unpickled one.

    Reading never raises, since an exception in a worker shuts the worker down: an env that cannot be pickled
    gives the reason as a string instead of bytes.
    """

    ATTRIBUTE = "thorndike_pickled_env"

    @property
    def thorndike_pickled_env(self) -> bytes | str:
        try:
            return pickle.dumps(self.env)
        except Exception as err:  # reported to the parent, which warns
            return f"{type(err).__name__}: {err}"

    @thorndike_pickled_env.setter
    def thorndike_pickled_env(self, blob: bytes) -> None:
        self.env.close()
        self.env = pickle.loads(blob)


def _is_float_space(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating)
