"""The interaction part of the lifecycle: the env copies, the current observations, the episode ledger, acting and
evaluating. RL algorithms that step envs compose it with the run (:mod:`thorndike.run`); algorithms that learn from
data or from a game do not need it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from thorndike import envs as th_envs
from thorndike.core.diagnostics import EnvOutputError
from thorndike.core.ledger import EpisodeLedger
from thorndike.core.resources import (
    MAX_GYMNASIUM_COPIES,
    PROBE_COPIES,
    env_copies_bytes,
    require_memory,
    tensor_bytes,
)
from thorndike.core.spaces import batch_of_one, is_single, is_structured, pack, storage_spec
from thorndike.envs.batched.base import BatchedEnv

__all__ = ["EnvInteraction", "EnvSetup", "EvalResult", "Policy"]

# What acting calls: (observations [B, ...], deterministic, generator or None) -> actions [B, ...].
Policy = Any


@dataclass
class EvalResult:
    """The outcome of an evaluation: the mean, the std and every episode's return and length; ``cut`` episodes were
    still running at the step cap (their return is the return so far)."""

    mean: float
    std: float
    returns: list[float]
    lengths: list[int]
    cut: int = 0

    def __str__(self) -> str:
        text = f"mean return {self.mean:.2f} +/- {self.std:.2f} over {len(self.returns)} episodes"
        if self.cut:
            text += (f"; {self.cut} of them did not end within {max(self.lengths):,} steps and were cut there (a "
                     "greedy policy can walk in circles in an env without a time limit)")
        return text


@dataclass
class EnvSetup:
    """How the env copies are built: the env (an id, ``"module:function"``, a callable or a TabularMDP), its
    keyword arguments, the wrappers applied to each copy (registered names, or ``{"name": ..., **kwargs}``), the
    backend and the vectorisation. Checkpoints and ``config.yaml`` record it, so ``th.load`` rebuilds the same env.
    """

    env: th_envs.EnvSpec
    kwargs: dict[str, Any] = field(default_factory=dict)
    wrappers: list[Any] = field(default_factory=list)
    backend: str = "auto"
    vectorization: str = "sync"

    def __post_init__(self) -> None:
        # ALE ids without wrappers get the atari preset (make applies it too): written here, the record names it.
        if isinstance(self.env, str) and self.env.startswith("ALE/") and not self.wrappers:
            self.wrappers = ["atari"]

    @property
    def name(self) -> str:
        return th_envs.env_name(self.env)

    def record(self) -> dict[str, Any]:
        """The plain-data description written to ``config.yaml`` and checkpoints."""
        env = self.env if isinstance(self.env, str) else self.name
        return {"env": env, "env_kwargs": dict(self.kwargs), "wrappers": list(self.wrappers)}

    def make(self, n_envs: int, device: torch.device, **extra: Any) -> th_envs.VecEnv:
        return th_envs.make(self.env, n_envs=n_envs, backend=self.backend, device=device, env_kwargs=self.kwargs,
                            wrappers=self.wrappers, vectorization=self.vectorization, **extra)


def check_env_copies(setup: EnvSetup, n_envs: int, device: torch.device, fields: dict[str, int],
                     check_spaces: Callable[[gym.Space, gym.Space], None] | None = None) -> None:
    """Refuse, before building them, more env copies than this process can hold: one copy is built to measure an
    observation, then the memory of ``n_envs`` is estimated (Gymnasium copies are also bounded in number: each takes
    milliseconds to build). ``fields`` are the config's counts whose product is ``n_envs``."""
    from thorndike.config import ConfigError

    probe = setup.make(1, device)
    try:
        if check_spaces is not None:
            check_spaces(probe.single_observation_space, probe.single_action_space)
        shape, dtype = storage_spec(probe.single_observation_space)
        gymnasium = isinstance(probe, th_envs.GymnasiumVecEnv)
    finally:
        probe.close()
    values = ", ".join(f"{name}={value!r}" for name, value in fields.items())
    if gymnasium and n_envs > MAX_GYMNASIUM_COPIES:
        raise ConfigError(f"invalid config: {values} asks for {n_envs:,} Gymnasium env copies in one process; at most "
                          f"{MAX_GYMNASIUM_COPIES:,} are built (each takes milliseconds): lower {' or '.join(fields)}")
    require_memory(f"{n_envs:,} env copies", env_copies_bytes(n_envs, tensor_bytes(*shape, dtype=dtype), gymnasium),
                   device, fields)


class EnvInteraction:
    """``n_envs`` env copies stepping together, their current observations and the ledger of finished episodes.

    ``check_spaces`` (the algorithm's) refuses the env's spaces before anything is stepped. ``step(actions, step)``
    steps every copy, moves ``obs`` on (same-step autoreset) and records the episodes that ended at global step
    ``step``. Reward scaling, when an algorithm wants it, is an env wrapper below the ledger, so
    the ledger and evaluation always see raw returns. ``ledger_keep`` bounds the episodes the ledger keeps (None:
    all of them, as the tabular learners' per-run histories need). ``sized_by`` names the config fields whose
    product is ``n_envs``, for the refusal of more copies than the machine can hold.
    """

    def __init__(self, setup: EnvSetup, n_envs: int, seed: int, device: torch.device, normalize_reward: bool = False,
                 gamma: float = 0.99, ledger_keep: int | None = 100,
                 check_spaces: Callable[[gym.Space, gym.Space], None] | None = None,
                 sized_by: dict[str, int] | None = None) -> None:
        self.setup, self.device = setup, device
        if n_envs > PROBE_COPIES:
            check_env_copies(setup, n_envs, device, sized_by or {"n_envs": n_envs}, check_spaces)
        self.envs = setup.make(n_envs, device, normalize_reward=normalize_reward, gamma=gamma)
        if check_spaces is not None:
            try:  # before the first reset, which could fail opaquely on observations nothing here can store
                check_spaces(self.envs.single_observation_space, self.envs.single_action_space)
            except ValueError:
                self.envs.close()
                raise
        self.n_envs = n_envs
        self.obs = self.envs.reset(seed=seed)
        self.ledger = EpisodeLedger(n_envs, device, keep=ledger_keep)
        self.seed = seed
        self._eval_env: th_envs.VecEnv | None = None

    @property
    def observation_space(self) -> gym.Space:
        return self.envs.single_observation_space

    @property
    def action_space(self) -> gym.Space:
        return self.envs.single_action_space

    def step(self, actions: Tensor, step: int) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Any]]:
        """Step every copy; ``obs`` becomes the next observations and finished episodes are recorded at ``step``."""
        try:
            next_obs, rewards, terminated, truncated, info = self.envs.step(actions)
        except EnvOutputError as err:
            raise err.at(step) from err
        self.ledger.record(info, step)
        self.obs = next_obs
        return next_obs, rewards, terminated, truncated, info

    def episode_columns(self) -> dict[str, float]:
        """The log's episode columns: episodes finished so far and the mean return of the last 20."""
        self.ledger.flush()
        recent = self.ledger.recent_returns(20)
        return {"episodes": self.ledger.total, "return_mean": statistics.fmean(recent) if recent else float("nan")}

    # ---- acting and evaluating ------------------------------------------------------------------------------

    def as_batch(self, obs: Any) -> tuple[Tensor, bool, bool]:
        """Observations as a batch tensor on the device: (batch, was one observation, was NumPy)."""
        space = self.observation_space
        if is_structured(space) and not isinstance(obs, Tensor):  # a dict (or tuple) as Gymnasium gives it
            single = is_single(space, obs)
            return pack(space, batch_of_one(space, obs) if single else obs, self.device), single, True
        as_numpy = not isinstance(obs, Tensor)
        obs_t = torch.as_tensor(np.asarray(obs) if as_numpy else obs, device=self.device)
        if obs_t.is_floating_point() or (isinstance(space, gym.spaces.Box) and space.dtype == np.float32):
            obs_t = obs_t.to(torch.float32)
        single = obs_t.shape == self.obs.shape[1:]
        return (obs_t.unsqueeze(0) if single else obs_t), single, as_numpy

    @torch.no_grad()
    def act(self, policy: Policy, obs: Any, deterministic: bool = True) -> Any:
        """Actions of ``policy`` for raw observations: one or a batch, NumPy or torch (answered in kind)."""
        batch, single, as_numpy = self.as_batch(obs)
        actions = policy(batch, deterministic, None)
        if single:
            actions = actions[0]
        return actions.cpu().numpy() if as_numpy else actions

    @torch.no_grad()
    def evaluate(self, policy: Policy, episodes: int = 10, deterministic: bool = True, seed: int | None = None,
                 max_episode_steps: int = 10_000) -> EvalResult:
        """Play ``episodes`` whole episodes (one per env copy, in parallel) and report their raw returns; for envs
        that report games (Atari), whole games and their raw (unclipped) scores.

        Evaluation uses its own envs and random generator, so it never changes what training does next. An episode
        still running after ``max_episode_steps`` (a greedy policy can walk in circles in an env without a time
        limit) is cut there and reported with its return so far.
        """
        if not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes must be a positive int, got {episodes!r}")
        seed = self.seed + 1_000_003 if seed is None else seed
        if self._eval_env is None or self._eval_env.n_envs != episodes:
            if self._eval_env is not None:
                self._eval_env.close()
            self._eval_env = self.setup.make(episodes, self.device)
        env = self._eval_env
        generator = torch.Generator(device=self.device).manual_seed(seed)
        play = play_first_episodes if isinstance(env, BatchedEnv) else play_by_stepping
        return eval_result(*play(env, policy, deterministic, generator, seed, max_episode_steps, self.device))

    # ---- state ----------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"envs": self.envs.state_dict(), "obs": self.obs, "ledger": self.ledger.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.envs.load_state_dict(state["envs"])
        self.obs = state["obs"].to(self.device)
        self.ledger.load_state_dict(state["ledger"])

    def close(self) -> None:
        self.envs.close()
        if self._eval_env is not None:
            self._eval_env.close()


@torch.no_grad()
def play_by_stepping(env: Any, policy: Policy, deterministic: bool, generator: torch.Generator, seed: int,
                     max_episode_steps: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """:meth:`EnvInteraction.evaluate` on any VecEnv: each copy's first episode from ``reset(seed)``, all copies
    stepping together. Returns (returns, lengths, still running at the cap ``max_episode_steps``)."""
    obs = env.reset(seed=seed)
    returns = torch.zeros(env.n_envs, dtype=torch.float64, device=device)
    lengths = torch.zeros(env.n_envs, dtype=torch.int64, device=device)
    running = torch.ones(env.n_envs, dtype=torch.bool, device=device)
    # Every copy counts its first episode only. All copies step together, so after t steps each running copy
    # has length t and the step cap is a plain counter. An env that reports games (Atari: an episode is a life,
    # rewards are clipped) is played to the end of the game and its raw score is reported (info["game_*"]).
    for _ in range(max_episode_steps):
        actions = policy(obs, deterministic, generator)
        obs, rewards, terminated, truncated, info = env.step(actions)
        if "game_over" in info:
            returns = torch.where(running, info["game_return"], returns)
            lengths = torch.where(running, info["game_length"], lengths)
            running &= ~info["game_over"]
        else:
            returns += torch.where(running, rewards, 0.0)
            lengths += running
            running &= ~(terminated | truncated)
        if not running.any():
            break
    return returns, lengths, running


def eval_result(returns: Tensor, lengths: Tensor, running: Tensor) -> EvalResult:
    """An :class:`EvalResult` from each copy's return, length and whether it was still running at the cap."""
    values = returns.cpu().tolist()
    return EvalResult(mean=float(statistics.fmean(values)), std=float(statistics.pstdev(values)), returns=values,
                      lengths=lengths.cpu().tolist(), cut=int(running.sum()))


@torch.no_grad()
def play_first_episodes(env: BatchedEnv, policy: Policy, deterministic: bool, generator: torch.Generator,
                        seed: int, max_episode_steps: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """:meth:`EnvInteraction.evaluate` on a native batched env: each copy's first episode from ``reset(seed)``.

    The same episodes as stepping the env (``continue_episodes`` computes the same numbers and draws the same random
    stream, see its docstring), at about half the cost per step: no autoreset, no time-limit bookkeeping, no info.
    The env's time limit ends a copy's episode as a truncation would; the caller's ``max_episode_steps`` cuts it.
    Rewards of the copies still playing are summed once at the end, in float64 and in step order (``cumsum``), so
    the returns equal step-by-step sums bit for bit. Returns (returns, lengths, still running at the cap).
    """
    state = env.begin_episodes(seed)
    limit = env.max_episode_steps
    steps = max_episode_steps if limit is None else min(max_episode_steps, limit)
    running = torch.ones(env.n_envs, dtype=torch.bool, device=device)
    rewards: list[Tensor] = []
    playing: list[Tensor] = []  # `running` at each step, rebound every step and never changed in place
    for _ in range(steps):
        actions = policy(env.observe(state), deterministic, generator)
        state, reward, terminated = env.continue_episodes(state, actions)
        rewards.append(reward)
        playing.append(running)
        running = running & ~terminated
        if not running.any():
            break
    if limit is not None and steps == limit:
        running = torch.zeros_like(running)  # the time limit truncated them: ended, not cut
    mask = torch.stack(playing)
    summed = torch.cat((torch.zeros(1, env.n_envs, dtype=torch.float64, device=device),
                        torch.stack(rewards).double().where(mask, 0.0))).cumsum(0)[-1]
    return summed, mask.sum(0), running
