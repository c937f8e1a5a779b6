"""A vectorised environment that speaks torch tensors, over Gymnasium's vector envs.

Every algorithm sees one convention (DESIGN.md, "Data flow"): ``step`` returns the next observation, with
same-step autoreset, so the step that ends an episode already returns the new episode's first observation; the
ended episode's true last observation is in ``info["final_obs"]`` (equal to ``obs`` for copies that did not end),
for bootstrapping on truncation. Finished episodes' returns and lengths are in ``info["episode_returns"]`` and
``info["episode_lengths"]`` (one entry per episode that ended on this step).

Native batched torch envs (``backend="torch"``) implement the same :class:`VecEnv` protocol.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

Info = dict[str, Any]


class VecEnv(Protocol):
    """What an algorithm needs from a batch of environments."""

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
    """``n_envs`` copies of a Gymnasium env in a ``SyncVectorEnv`` (same-step autoreset), as torch tensors.

    Box actions outside the space are clipped to its bounds before they reach the env (the algorithm keeps the
    unclipped action for its log-probabilities).
    """

    def __init__(
        self,
        env_fn: Callable[[], gym.Env],
        n_envs: int,
        device: torch.device | str = "cpu",
    ):
        self.n_envs = n_envs
        self.device = torch.device(device)
        self._venv = SyncVectorEnv([env_fn for _ in range(n_envs)], autoreset_mode=AutoresetMode.SAME_STEP)
        if len({id(env) for env in self._venv.envs}) < n_envs:
            raise ValueError(
                "the env builder returned the same env object for several copies, so they would share one state; "
                "make it return a new env on each call (e.g. `lambda: mdp.copy()` instead of `lambda: mdp`)"
            )
        self.single_observation_space = self._venv.single_observation_space
        self.single_action_space = self._venv.single_action_space
        self._obs_dtype = torch.float32 if _is_float_space(self.single_observation_space) else None
        self._returns = torch.zeros(n_envs, dtype=torch.float64)
        self._lengths = torch.zeros(n_envs, dtype=torch.int64)
        space = self.single_action_space
        if isinstance(space, gym.spaces.Box):
            self._low, self._high = space.low, space.high
        self._warned_unpicklable = False

    def _to_tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.asarray(array))
        if self._obs_dtype is not None and tensor.dtype != self._obs_dtype:
            tensor = tensor.to(self._obs_dtype)
        return tensor.to(self.device)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        obs, _ = self._venv.reset(seed=seed)
        self._returns.zero_()
        self._lengths.zero_()
        return self._to_tensor(obs)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Info]:
        actions_np = actions.detach().cpu().numpy()
        if isinstance(self.single_action_space, gym.spaces.Box):
            actions_np = np.clip(actions_np, self._low, self._high).astype(self.single_action_space.dtype)
        obs, reward, terminated, truncated, raw_info = self._venv.step(actions_np)
        reward_t = torch.from_numpy(np.asarray(reward, dtype=np.float64))
        terminated_t = torch.from_numpy(np.asarray(terminated, dtype=bool))
        truncated_t = torch.from_numpy(np.asarray(truncated, dtype=bool))
        done = terminated_t | truncated_t

        self._returns += reward_t
        self._lengths += 1
        obs_t = self._to_tensor(obs)
        info: Info = {
            "final_obs": obs_t,
            "episode_returns": self._returns[done].to(self.device),
            "episode_lengths": self._lengths[done].to(self.device),
        }
        if done.any():
            final = obs.copy()
            for i in np.flatnonzero(done.numpy()):
                final[i] = raw_info["final_obs"][i]
            info["final_obs"] = self._to_tensor(final)
            self._returns[done] = 0.0
            self._lengths[done] = 0
        return (
            obs_t,
            reward_t.to(torch.float32).to(self.device),
            terminated_t.to(self.device),
            truncated_t.to(self.device),
            info,
        )

    def render(self) -> np.ndarray | None:
        """The first copy's frame (the env must have been made with ``render_mode="rgb_array"``)."""
        return self._venv.envs[0].render()

    def state_dict(self) -> dict[str, Any]:
        """The copies' full state (pickled envs: dynamics, episode clocks, RNGs) and the episode counters."""
        try:
            envs = [pickle.dumps(env) for env in self._venv.envs]
        except Exception as err:  # e.g. envs holding a native handle
            if not self._warned_unpicklable:
                warnings.warn(
                    f"this env cannot be pickled ({err}); a resumed run will start new episodes, so it will not "
                    "repeat an uninterrupted run exactly",
                    stacklevel=2,
                )
                self._warned_unpicklable = True
            envs = None
        return {"envs": envs, "returns": self._returns.clone(), "lengths": self._lengths.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["envs"] is not None:
            for env in self._venv.envs:
                env.close()
            self._venv.envs = [pickle.loads(blob) for blob in state["envs"]]
        self._returns.copy_(state["returns"])
        self._lengths.copy_(state["lengths"])

    def close(self) -> None:
        self._venv.close()


def _is_float_space(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating)
