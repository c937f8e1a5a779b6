"""EnvPool (a C++ engine that steps Atari games in threads) as a :class:`~thorndike.envs.vec_env.VecEnv`.

``th.envs.make("ALE/Pong-v5", n_envs=8, backend="envpool")`` (``--backend envpool`` on the command line) steps the
copies in EnvPool with the preprocessing of the ``atari`` preset done in C++: 1..30 no-op starts, frame skip 4 with the
max of the last two frames, 84x84 grayscale (area resize), a stack of 4, episodic life, FIRE on reset and clipped
rewards; ``wrappers`` may be empty, ``["atari"]`` or ``[{"name": "atari", ...}]`` with the preset's own arguments.
Sticky actions are v5's 0.25 here too (EnvPool's own default is 0). The observations have the Gymnasium chain's shape
and dtype, ``(4, 84, 84)`` uint8, but are not bit-identical to it (EnvPool resizes with OpenCV).

The VecEnv contract is the same: EnvPool resets a copy on the step after its episode ended (that step's action is
ignored), so a copy whose episode ends is stepped once more at once, on its own, and the step returns the new
episode's first observation (same-step autoreset), with the ended episode's last in ``info["final_obs"]``. The raw
score of each game (EnvPool's unclipped ``info["reward"]``) goes to ``info["game_return"]``, ``["game_length"]`` and
``["game_over"]`` as with the Gymnasium chain, so the ledger and ``evaluate`` report raw game scores.

``backend="auto"`` never picks EnvPool: the Gymnasium chain stays the default so that a run's numbers do not depend
on whether EnvPool happens to be installed. EnvPool envs cannot be pickled: a checkpoint keeps the episode counters,
and a resumed run starts new games.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from thorndike.envs.vec_env import Info

__all__ = ["EnvPoolUnavailableError", "EnvPoolVecEnv", "envpool_options"]

# The atari preset's arguments -> EnvPool's.
_PRESET_TO_ENVPOOL = {"noop_max": "noop_max", "frame_skip": "frame_skip", "screen_size": "img_height",
                      "stack": "stack_num", "episodic_life": "episodic_life", "fire_reset": "use_fire_reset",
                      "clip_reward": "reward_clip"}
_PRESET_DEFAULTS = {"noop_max": 30, "frame_skip": 4, "screen_size": 84, "stack": 4, "episodic_life": True,
                    "fire_reset": True, "clip_reward": True}
# ALE env kwargs EnvPool honours (frameskip=1 is what make adds for the preset: the skip is the preset's).
_ENV_KWARGS = ("repeat_action_probability", "full_action_space")


class EnvPoolUnavailableError(ModuleNotFoundError):
    """``backend="envpool"`` without an importable EnvPool (not installed, or no wheel for this platform)."""


def _import_envpool() -> Any:
    try:
        import envpool
    except ImportError as err:
        raise EnvPoolUnavailableError(
            f"backend='envpool' needs EnvPool, which cannot be imported here ({err}): pip install envpool (its wheels "
            "are for Linux and macOS on x86-64 and arm64; on other platforms it is not available); or use "
            "backend='gymnasium', the same preprocessing in Python", name="envpool") from None
    return envpool


def envpool_options(env: Any, wrappers: Sequence[Any] | None, env_kwargs: Mapping[str, Any]) -> tuple[str, dict]:
    """EnvPool's task id and keyword arguments for an ALE id, its wrappers and env kwargs, or ValueError saying what
    EnvPool cannot do."""
    if not (isinstance(env, str) and env.startswith("ALE/")):
        raise ValueError(f"backend='envpool' runs ALE ids ('ALE/Pong-v5'), not {env!r}")
    preset = dict(_PRESET_DEFAULTS)
    wrappers = list(wrappers or [])
    if len(wrappers) > 1 or (wrappers and (wrappers[0] if isinstance(wrappers[0], str) else
                                           wrappers[0].get("name")) != "atari"):
        raise ValueError(f"backend='envpool' applies the atari preset in C++ and takes no other wrappers, got "
                         f"{wrappers!r}; use backend='gymnasium' for other wrappers")
    if wrappers and isinstance(wrappers[0], Mapping):
        preset.update({k: v for k, v in wrappers[0].items() if k != "name"})
    kwargs = {k: v for k, v in env_kwargs.items() if not (k == "frameskip" and v == 1)}
    unknown = sorted(set(kwargs) - set(_ENV_KWARGS))
    if unknown:
        raise ValueError(f"backend='envpool' does not take env_kwargs {', '.join(unknown)} (it takes "
                         f"{', '.join(_ENV_KWARGS)}); use backend='gymnasium'")
    options = {_PRESET_TO_ENVPOOL[k]: v for k, v in preset.items()}
    options["img_width"] = options["img_height"]
    options["repeat_action_probability"] = kwargs.get("repeat_action_probability", 0.25)
    if "full_action_space" in kwargs:
        options["full_action_space"] = kwargs["full_action_space"]
    return env.removeprefix("ALE/"), options


class EnvPoolVecEnv:
    """``n_envs`` copies of an ALE game in EnvPool, with the atari preset, as a torch VecEnv (see the module
    docstring)."""

    games = True

    def __init__(self, env: str, n_envs: int, device: torch.device | str = "cpu",
                 wrappers: Sequence[Any] | None = None, env_kwargs: Mapping[str, Any] | None = None) -> None:
        self._envpool = _import_envpool()
        self._task, self._options = envpool_options(env, wrappers, env_kwargs or {})
        self.n_envs = n_envs
        self.device = torch.device(device)
        try:  # the spaces from EnvPool's spec; the pool itself is built by the first reset, with its seed
            spec = self._envpool.make_spec(self._task, num_envs=n_envs, **self._options)
        except Exception as err:  # an unknown game, or an option this EnvPool version lacks
            raise ValueError(f"EnvPool cannot build {self._task} with {self._options}: {err}") from err
        self.single_observation_space = gym.spaces.Box(0, 255, spec.gymnasium_observation_space.shape, np.uint8)
        self.single_action_space = gym.spaces.Discrete(int(spec.gymnasium_action_space.n))
        self._seed: int | None = None
        self._pool: Any = None
        self._returns = torch.zeros(n_envs, dtype=torch.float64)
        self._lengths = torch.zeros(n_envs, dtype=torch.int64)
        self._game_returns = torch.zeros(n_envs, dtype=torch.float64)
        self._game_lengths = torch.zeros(n_envs, dtype=torch.int64)
        self._warned_unpicklable = False

    def _build(self, seed: int) -> Any:
        try:
            return self._envpool.make(self._task, env_type="gymnasium", num_envs=self.n_envs, seed=seed,
                                      **self._options)
        except Exception as err:  # an unknown game, or an option this EnvPool version lacks
            raise ValueError(f"EnvPool cannot build {self._task} with {self._options}: {err}") from err

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start every copy; EnvPool is seeded when built, so the first reset and each new seed build it."""
        if self._pool is None or (seed is not None and seed != self._seed):
            if self._pool is not None:
                self._pool.close()
            self._seed = seed if seed is not None else 0
            self._pool = self._build(self._seed)
        obs, _ = self._pool.reset()
        for counter in (self._returns, self._lengths, self._game_returns, self._game_lengths):
            counter.zero_()
        return torch.from_numpy(np.asarray(obs)).to(self.device)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Info]:
        if self._pool is None:
            raise RuntimeError("reset the EnvPool env before stepping it")
        actions_np = actions.detach().cpu().numpy().astype(np.int32)
        obs, reward, terminated, truncated, raw_info = self._pool.step(actions_np)
        obs = np.asarray(obs)
        done = np.logical_or(terminated, truncated)
        # The game is over when the episode ended with no lives left (Pong has none: every end is the game's) or at
        # the time limit; other ends are lost lives.
        game_over = done & ((np.asarray(raw_info["lives"]) == 0) | np.asarray(truncated, dtype=bool))
        final = obs
        ended = np.flatnonzero(done)
        if ended.size:  # the reset step of the copies that ended, now, so that obs shows their new episodes
            final = obs.copy()
            reset_obs, *_, reset_info = self._pool.step(np.zeros(ended.size, np.int32), ended.astype(np.int32))
            obs[np.asarray(reset_info["env_id"])] = reset_obs
        reward_t = torch.from_numpy(np.asarray(reward, dtype=np.float64))
        done_t = torch.from_numpy(done)
        game_over_t = torch.from_numpy(game_over)
        self._returns += reward_t
        self._lengths += 1
        self._game_returns += torch.from_numpy(np.asarray(raw_info["reward"], dtype=np.float64))
        self._game_lengths += 1
        counters = [c.clone() for c in (self._returns, self._lengths, self._game_returns, self._game_lengths)]
        for counter, ends in ((self._returns, done_t), (self._lengths, done_t), (self._game_returns, game_over_t),
                              (self._game_lengths, game_over_t)):
            counter.masked_fill_(ends, 0)
        obs_t = torch.from_numpy(obs).to(self.device)
        info: Info = {
            "final_obs": obs_t if not ended.size else torch.from_numpy(final).to(self.device),
            "done": done_t.to(self.device),
            "episode_return": counters[0].to(self.device),
            "episode_length": counters[1].to(self.device),
            "game_over": game_over_t.to(self.device),
            "game_return": counters[2].to(self.device),
            "game_length": counters[3].to(self.device),
        }
        return (obs_t, reward_t.to(torch.float32).to(self.device),
                torch.from_numpy(np.asarray(terminated, dtype=bool)).to(self.device),
                torch.from_numpy(np.asarray(truncated, dtype=bool)).to(self.device), info)

    def state_dict(self) -> dict[str, Any]:
        """The counters only: EnvPool's games cannot be saved, so a resumed run starts new games (warned once)."""
        if not self._warned_unpicklable:
            warnings.warn("EnvPool envs cannot be saved; a resumed run will start new games, so it will not repeat "
                          "an uninterrupted run exactly", stacklevel=2)
            self._warned_unpicklable = True
        return {"envs": None, "returns": self._returns.clone(), "lengths": self._lengths.clone(),
                "game_returns": self._game_returns.clone(), "game_lengths": self._game_lengths.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._returns.copy_(state["returns"])
        self._lengths.copy_(state["lengths"])
        self._game_returns.copy_(state["game_returns"])
        self._game_lengths.copy_(state["game_lengths"])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
