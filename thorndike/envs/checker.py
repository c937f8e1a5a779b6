"""Check an env before training on it: Gymnasium's API on one copy, then thorndike's VecEnv contract on a batch.

``check(env)`` (and ``thorndike check ENV``) runs, in order:

1. the old Gym API test: an env whose ``reset`` returns only the observation or whose ``step`` returns 4 values
   ``(obs, reward, done, info)`` is named as such, with the two ways out, instead of failing later with "too many
   values to unpack";
2. Gymnasium's own checker (``gymnasium.utils.env_checker.check_env``) on the raw env of one copy: spaces, reset
   and step signatures and return types, seeding of ``reset``; its warnings are reported;
3. thorndike's VecEnv contract on ``th.envs.make(env, n_envs=2)`` (and on the Gymnasium backend too when ``make``
   picks a native torch env), stepped with random actions: shapes and dtypes that never change, the ``info``
   entries (:data:`thorndike.envs.INFO_KEYS`, and :data:`~thorndike.envs.GAME_KEYS` for envs that report games),
   same-step autoreset (a copy whose episode ended shows a reset
   observation and ``info["final_obs"]`` the ended episode's last one), copy 0 behaving exactly like a lone copy
   with the same seed and actions (copies that share state through class attributes, module globals or the global
   ``np.random`` do not), and reproducibility: the same seed gives the same first observations and, under the same
   actions, the same trajectory. Whether the copies can be pickled (exact resume) is reported.

A failed check raises :class:`EnvCheckError` saying what to change; a passed one returns a :class:`CheckReport`.
"""

from __future__ import annotations

import copy
import inspect
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

__all__ = ["CheckReport", "EnvCheckError", "OldGymAPIError", "check", "old_api_problems"]

UPDATE_API = (
    "Gymnasium and thorndike need reset(seed=None, options=None) -> (obs, info) and step(action) -> (obs, reward, "
    "terminated, truncated, info), where done is split into terminated (a terminal state was reached) and truncated "
    "(cut short, e.g. by a time limit). Update the env: call super().reset(seed=seed) and return (obs, {}) from "
    "reset, and return (obs, reward, terminated, truncated, info) from step; or wrap it with "
    "shimmy.GymV21CompatibilityV0(env=...) (pip install shimmy gym; Gymnasium 1.x no longer ships "
    "gymnasium.wrappers.EnvCompatibility)"
)


SHARED_STATE = ("the copies share state: keep all state on the instance (not in class attributes or module globals) "
                "and draw randomness from self.np_random, not the global np.random or random")


class EnvCheckError(ValueError):
    """An env that breaks Gymnasium's API or thorndike's VecEnv contract; the message says what to change."""


class OldGymAPIError(EnvCheckError):
    """An env written for the old Gym API (``reset`` -> obs, ``step`` -> 4 values)."""


@dataclass
class CheckReport:
    """What :func:`check` verified (``passed``) and what it noticed without failing (``notes``)."""

    env: str
    passed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.env}: all checks passed"]
        lines += [f"  ok    {line}" for line in self.passed]
        lines += [f"  note  {line}" for line in self.notes]
        return "\n".join(lines)


def old_api_problems(env: Any) -> list[str]:
    """How ``env`` follows the old Gym API (empty when it does not, or when probing it fails for another reason):
    it is reset and stepped once, so pass a copy that may be thrown away."""
    problems = []
    try:
        parameters = inspect.signature(env.reset).parameters
        takes_seed = "seed" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        out = env.reset(seed=0) if takes_seed else env.reset()
        if not takes_seed:
            problems.append("reset() takes no seed")
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            problems.append("reset() returns only the observation, not (obs, info)")
        out = env.step(env.action_space.sample())
        if isinstance(out, tuple) and len(out) == 4:
            problems.append("step() returns 4 values (obs, reward, done, info), not 5")
    except Exception:  # not an API shape problem: the checks below say what it is
        return problems
    return problems


def old_api_error(name: str, problems: Sequence[str]) -> OldGymAPIError:
    return OldGymAPIError(f"{name} uses the old Gym API ({'; '.join(problems)}). {UPDATE_API}")


def check(env: Any, n_envs: int = 2, seed: int = 0, steps: int = 500, env_kwargs: dict[str, Any] | None = None,
          wrappers: Sequence[Any] | None = None) -> CheckReport:
    """Check ``env`` (a Gymnasium id, ``"module:function"``, a callable returning an env, a TabularMDP, or an env
    instance, which is deep-copied for each copy) as described in the module docstring; ``steps`` random steps per
    batch. Raises :class:`EnvCheckError` (:class:`OldGymAPIError` for the old API) naming what to change."""
    from thorndike import envs as th_envs

    if isinstance(env, gym.Env) and not callable(env):
        instance = env
        spec: Any = lambda: copy.deepcopy(instance)  # noqa: E731  (make needs a builder; each call a new copy)
        name = type(env).__name__
    else:
        spec, name = env, th_envs.env_name(env) if not isinstance(env, str) else env
    wrappers, kwargs = th_envs.atari_defaults(spec, wrappers, env_kwargs or {})  # as make does for ALE ids
    builder = th_envs._wrapped(th_envs.env_builder(spec, **kwargs), th_envs.resolve_wrappers(wrappers))
    report = CheckReport(name)

    problems = old_api_problems(_build(builder, name))
    if problems:
        raise old_api_error(name, problems)
    report.passed.append("Gymnasium API: reset -> (obs, info), step -> (obs, reward, terminated, truncated, info)")

    report.notes += _gymnasium_checker(_build(builder, name).unwrapped, name)
    report.passed.append("gymnasium.utils.env_checker.check_env on the raw env")

    backends = ["auto"]
    native = isinstance(spec, str) and spec in th_envs.NATIVE_ENVS or isinstance(spec, th_envs.TabularMDP)
    if native and not wrappers:
        backends.append("gymnasium")
    for backend in backends:
        def make(backend: str = backend) -> Any:
            return th_envs.make(spec, n_envs=n_envs, backend=backend, env_kwargs=kwargs, wrappers=wrappers)

        _VecContract(make, seed, steps, builder, report).run()
    return report


def _build(builder: Callable[[], gym.Env], name: str) -> gym.Env:
    try:
        return builder()
    except (TypeError, ValueError) as err:
        raise EnvCheckError(f"building one copy of {name} failed: {err}") from err


def _gymnasium_checker(env: gym.Env, name: str) -> list[str]:
    """Gymnasium's checker on ``env``: its failures as EnvCheckError, its warnings returned (colour codes off)."""
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check_env(env, skip_render_check=True)
        except Exception as err:
            raise EnvCheckError(f"Gymnasium's env checker refuses {name}: {type(err).__name__}: {err}") from err
    seen = dict.fromkeys(re.sub(r"\x1b\[[0-9;]*m", "", str(w.message)).strip() for w in caught)
    return [f"Gymnasium: {message}" for message in seen]


class _VecContract:
    """The VecEnv contract on one backend: ``make()`` builds the batch; on a Gymnasium batch, copy 0 must match a
    single copy built by ``lone`` step for step (a native torch env has no such twin)."""

    def __init__(self, make: Callable[[], Any], seed: int, steps: int, lone: Callable[[], gym.Env] | None,
                 report: CheckReport) -> None:
        self.make, self.seed, self.steps, self.lone, self.report = make, seed, steps, lone, report

    def fail(self, what: str, change: str) -> EnvCheckError:
        return EnvCheckError(f"{self.report.env} ({self.kind}): {what}; {change}")

    def call(self, method: Callable[..., Any], where: str, *args: Any, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)``, an error in it named with the step and Gymnasium's warnings so far."""
        try:
            return method(*args, **kwargs)
        except EnvCheckError:
            raise
        except Exception as err:
            warned = [note for note in self.report.notes if note.startswith("Gymnasium")]
            hint = ("Gymnasium's checker warned: " + " / ".join(warned)) if warned else \
                "return observations in observation_space (shape and dtype), a float reward and bool flags"
            raise self.fail(f"{where} raised {type(err).__name__}: {err}", hint) from err

    def run(self) -> None:
        from thorndike.envs import GAME_KEYS, INFO_KEYS
        from thorndike.envs.vec_env import GymnasiumVecEnv

        venv = self.make()
        if not isinstance(venv, GymnasiumVecEnv):
            self.lone = None
        self.kind = f"{type(venv).__name__}, {venv.n_envs} copies"
        n = venv.n_envs
        space = venv.single_action_space
        space.seed(self.seed)
        actions = [torch.as_tensor(np.stack([space.sample() for _ in range(n)])) for _ in range(self.steps)]

        obs = self.call(venv.reset, "reset", seed=self.seed)
        first = obs.clone()
        if obs.shape[0] != n:
            raise self.fail(f"reset returned {obs.shape[0]} observations for {n} copies", "return one per copy")
        shape, dtype = tuple(obs.shape), obs.dtype
        trajectory = [obs.clone()]
        ended = 0
        lone = _LoneCopy(self.lone(), self.seed, obs[0], self) if self.lone is not None else None
        for t, action in enumerate(actions):
            where = f"step {t + 1}"
            obs, reward, terminated, truncated, info = self.call(venv.step, where, action)
            if tuple(obs.shape) != shape or obs.dtype != dtype:
                raise self.fail(f"at {where} the observations are {tuple(obs.shape)} {obs.dtype}, after reset "
                                f"{shape} {dtype}", "every observation must have observation_space's shape and dtype")
            if obs.is_floating_point() and not torch.isfinite(obs).all():
                raise self.fail(f"at {where} an observation is NaN or infinite", "keep observations finite")
            for what, tensor, want in (("reward", reward, torch.float32), ("terminated", terminated, torch.bool),
                                       ("truncated", truncated, torch.bool)):
                if tuple(tensor.shape) != (n,) or tensor.dtype != want:
                    raise self.fail(f"{what} at {where} is {tuple(tensor.shape)} {tensor.dtype}, not ({n},) {want}",
                                    "return one plain number / bool per step")
            if not torch.isfinite(reward).all():
                raise self.fail(f"the reward at {where} is NaN or infinite", "keep rewards finite")
            if sorted(info) not in (sorted(INFO_KEYS), sorted(INFO_KEYS + GAME_KEYS)):
                raise self.fail(f"info at {where} holds {sorted(info)}, not {sorted(INFO_KEYS)}",
                                "a VecEnv's info holds exactly thorndike.envs.INFO_KEYS (and GAME_KEYS for envs "
                                "that report games)")
            if "game_over" in info:
                for key, want in (("game_over", torch.bool), ("game_return", torch.float64),
                                  ("game_length", torch.int64)):
                    if tuple(info[key].shape) != (n,) or info[key].dtype != want:
                        raise self.fail(f"info[{key!r}] at {where} is {tuple(info[key].shape)} {info[key].dtype}, "
                                        f"not ({n},) {want}", "fix the VecEnv's game entries")
                if (info["game_over"] & ~(terminated | truncated)).any():
                    raise self.fail(f"info['game_over'] at {where} is set for a copy whose episode did not end",
                                    "a game ends only with an episode")
            done = terminated | truncated
            if not torch.equal(info["done"], done):
                raise self.fail(f"info['done'] at {where} is not terminated | truncated", "fix the VecEnv's info")
            if tuple(info["final_obs"].shape) != shape:
                raise self.fail(f"info['final_obs'] at {where} is {tuple(info['final_obs'].shape)}, not {shape}",
                                "final_obs has the observations' shape")
            alive = ~done
            if not torch.equal(info["final_obs"][alive], obs[alive]):
                raise self.fail(f"info['final_obs'] at {where} differs from obs for copies still running",
                                "final_obs equals obs where no episode ended")
            if info["episode_length"].dtype != torch.int64 or info["episode_return"].dtype != torch.float64:
                raise self.fail("info's episode_length / episode_return are not int64 / float64",
                                "fix the VecEnv's info")
            ended += int(done.sum())
            if lone is not None:
                lone.step(action[0], obs[0], reward[0], bool(terminated[0]), bool(truncated[0]), info, where)
            trajectory.append(_row(obs, reward, done))
        self._pickling(venv)
        venv.close()
        self.report.passed.append(f"{self.kind}: shapes, dtypes and info entries over {self.steps} random steps")
        if lone is not None:
            self.report.passed.append(f"{self.kind}: copy 0 matches a lone copy with the same seed and actions "
                                      "(no state shared between copies)")
        if ended:
            self.report.passed.append(f"{self.kind}: autoreset after {ended} episode ends (final_obs holds the last "
                                      "observation, obs the next episode's first)")
        else:
            self.report.notes.append(f"{self.kind}: no episode ended in {self.steps} random steps, so autoreset was "
                                     "not exercised (raise steps, or give the env a time limit)")
        self._reproducible(first, trajectory, actions)

    def _reproducible(self, first: torch.Tensor, trajectory: list[torch.Tensor], actions: list[torch.Tensor]) -> None:
        again = self.make()
        obs = again.reset(seed=self.seed)
        if not torch.equal(obs, first):
            raise self.fail(f"reset(seed={self.seed}) twice gave different first observations",
                            "draw every random number from self.np_random, seeded by super().reset(seed=seed), not "
                            "from np.random, random or the clock")
        for t, action in enumerate(actions):
            obs, reward, terminated, truncated, _ = again.step(action)
            if not torch.equal(_row(obs, reward, terminated | truncated), trajectory[t + 1]):
                raise self.fail(f"the same seed and actions gave another trajectory from step {t + 1}",
                                "draw every random number in step and reset from self.np_random (not np.random, "
                                "random or the clock) and keep all state on the instance")
        again.close()
        self.report.passed.append(f"{self.kind}: the same seed gives the same first observations and trajectory")

    def _pickling(self, venv: Any) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            venv.state_dict()
        if caught:
            self.report.notes.append(f"{self.kind}: {caught[0].message}")


def _row(obs: torch.Tensor, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """One step of a batch as a [N, ...] float64 table: observation, reward, done."""
    return torch.cat([obs.reshape(len(obs), -1).double(), reward[:, None].double(), done[:, None].double()], 1)


class _LoneCopy:
    """A single copy stepped beside copy 0 of a Gymnasium batch, with Gymnasium's same-step autoreset by hand."""

    def __init__(self, env: gym.Env, seed: int, first: torch.Tensor, contract: _VecContract) -> None:
        self.env, self.contract = env, contract
        obs, _ = env.reset(seed=seed)
        self.compare(obs, first, "the first observation after reset")
        self.episode_return = 0.0

    def compare(self, expected: Any, got: torch.Tensor, what: str) -> None:
        from thorndike.core.spaces import batch_of_one, is_structured, pack

        space = self.env.observation_space
        if is_structured(space):
            row = pack(space, batch_of_one(space, expected), got.device)[0]
        else:
            row = torch.as_tensor(np.asarray(expected)).to(got.dtype)
        if row.shape != got.shape or not torch.equal(row.to(got.device), got):
            raise self.contract.fail(f"copy 0's {what} differs from a lone copy's with the same seed and actions",
                                     SHARED_STATE)

    def step(self, action: torch.Tensor, obs: torch.Tensor, reward: torch.Tensor, terminated: bool, truncated: bool,
             info: dict[str, Any], where: str) -> None:
        action_np = action.cpu().numpy()
        space = self.env.action_space
        if isinstance(space, gym.spaces.Box):
            action_np = np.clip(action_np, space.low, space.high).astype(space.dtype)
        elif isinstance(space, gym.spaces.Discrete):
            action_np = int(action_np)
        lone_obs, lone_reward, lone_terminated, lone_truncated, _ = self.env.step(action_np)
        self.episode_return += float(lone_reward)
        if (bool(lone_terminated), bool(lone_truncated)) != (terminated, truncated) or \
                not np.isclose(float(lone_reward), float(reward), rtol=1e-6, atol=1e-6):
            raise self.contract.fail(f"copy 0's reward or episode end at {where} differs from a lone copy's with "
                                     "the same seed and actions", SHARED_STATE)
        if terminated or truncated:
            self.compare(lone_obs, info["final_obs"][0], f"info['final_obs'] at {where} (the ended episode's last "
                                                         "observation)")
            if not np.isclose(float(info["episode_return"][0]), self.episode_return, rtol=1e-6, atol=1e-6):
                raise self.contract.fail(f"info['episode_return'] at {where} is not the ended episode's return",
                                         "fix the VecEnv's episode counters")
            lone_obs, _ = self.env.reset()
            self.episode_return = 0.0
            self.compare(lone_obs, obs, f"observation after the episode ended at {where} (a reset observation)")
        else:
            self.compare(lone_obs, obs, f"observation at {where}")
