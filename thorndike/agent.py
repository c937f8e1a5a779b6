"""The run lifecycle every algorithm shares: seeding, envs, run folder, progress, checkpoints, evaluation,
save/load and exact resume.

An algorithm is one class on top of :class:`Agent`: it builds its networks in ``build()``, registers what a
checkpoint must hold in ``self.components``, implements ``policy()`` and writes its own ``learn`` loop, which reads
collect -> targets -> update -> log inside ``with self.session(...)``. The one exception to "one level" is a family
base that would otherwise be copied into every member: :class:`thorndike.tabular.base.TabularAgent` holds the
tables, behaviour policy and per-run episode history of the ten tabular learners, which still each write ``learn``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import yaml

from thorndike import envs as th_envs
from thorndike.config import RunOptions
from thorndike.core.checkpoint import (
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from thorndike.core.logger import Logger
from thorndike.core.seeding import rng_states, seed_everything, set_rng_states
from thorndike.envs.normalize import NormalizeObservation

CHECKPOINT_FORMAT = 1


class NonFiniteError(FloatingPointError):
    """An observation, reward or loss became NaN or infinite; training stops and keeps the last checkpoint."""


@dataclass
class EvalResult:
    """The outcome of :meth:`Agent.evaluate`: the mean, the std and every episode's return and length."""

    mean: float
    std: float
    returns: list[float]
    lengths: list[int]

    def __str__(self) -> str:
        return f"mean return {self.mean:.2f} +/- {self.std:.2f} over {len(self.returns)} episodes"


class Agent(ABC):
    """Lifecycle shared by all algorithms; see the module docstring for what a subclass provides."""

    name: ClassVar[str]
    Config: ClassVar[type]
    action_spaces: ClassVar[tuple[type[gym.Space], ...]]

    def __init__(self, env: th_envs.EnvSpec, config: Any, seed: int = 0, options: RunOptions | None = None):
        self.env_spec = env
        self.config = config
        self.seed = seed
        self.options = options or RunOptions()
        torch.set_num_threads(self.options.threads)
        device = self.options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.generator = seed_everything(seed)
        self.envs = th_envs.make(
            env,
            n_envs=config.n_envs,
            backend=self.options.backend,
            device=self.device,
            normalize_obs=getattr(config, "normalize_obs", False),
            normalize_reward=getattr(config, "normalize_reward", False),
            gamma=getattr(config, "gamma", 0.99),
        )
        self.check_spaces(self.envs.single_observation_space, self.envs.single_action_space)
        self.obs = self.envs.reset(seed=seed)
        self.global_step = 0
        self.iteration = 0
        self.episodes = 0
        self.recent_returns: deque[float] = deque(maxlen=100)
        self._pending_episodes: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.total_steps: int | None = None
        self.run_dir: Path | None = None
        self.last_checkpoint: Path | None = None
        self._last_checkpoint_step = 0
        self._eval_env = None
        self.components: dict[str, Any] = {}
        self.build()

    # ---- what an algorithm provides -------------------------------------------------------------------------

    @abstractmethod
    def build(self) -> None:
        """Create networks and optimisers and register them in ``self.components``."""

    @abstractmethod
    def policy(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """Actions for a batch of (normalised) observations."""

    @abstractmethod
    def learn(self, total_steps: int) -> Agent:
        """Train for ``total_steps`` env steps (all copies counted) inside ``with self.session(total_steps)``."""

    # ---- spaces ---------------------------------------------------------------------------------------------

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        from thorndike.registry import alternatives

        if not isinstance(action_space, cls.action_spaces):
            supported = ", ".join(s.__name__ for s in cls.action_spaces)
            raise ValueError(
                f"{cls.name} does not support the action space {action_space} (it supports {supported}); "
                f"{alternatives(cls.name, observation_space, action_space)}"
            )
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(
                f"{cls.name} needs Box (array) observations, got {observation_space}; "
                "wrap the env to give array observations (e.g. one-hot for Discrete); "
                f"{alternatives(cls.name, observation_space, action_space)}"
            )

    # ---- acting and evaluating ------------------------------------------------------------------------------

    def _normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        env = self.envs
        while env is not None:
            if isinstance(env, NormalizeObservation):
                return env.normalize(obs)
            env = getattr(env, "env", None)
        return obs

    @torch.no_grad()
    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """Actions for raw observations: one observation or a batch, NumPy or torch (answered in kind)."""
        as_numpy = not isinstance(obs, torch.Tensor)
        obs_t = torch.as_tensor(np.asarray(obs) if as_numpy else obs, device=self.device)
        if obs_t.is_floating_point() or self.envs.single_observation_space.dtype == np.float32:
            obs_t = obs_t.to(torch.float32)
        single = obs_t.shape == self.envs.single_observation_space.shape
        if single:
            obs_t = obs_t.unsqueeze(0)
        actions = self.policy(self._normalize_obs(obs_t), deterministic, None)
        if single:
            actions = actions[0]
        return actions.cpu().numpy() if as_numpy else actions

    @torch.no_grad()
    def evaluate(self, episodes: int = 10, deterministic: bool = True, seed: int | None = None,
                 max_episode_steps: int = 10_000) -> EvalResult:
        """Play ``episodes`` whole episodes (one per env copy, in parallel) and report their returns.

        Evaluation uses its own envs and random generator, so it never changes what training does next. An episode
        still running after ``max_episode_steps`` (a greedy policy can walk in circles in an env without a time
        limit) is cut there and reported with its return so far.
        """
        if episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        seed = self.seed + 1_000_003 if seed is None else seed
        if self._eval_env is None or self._eval_env.n_envs != episodes:
            if self._eval_env is not None:
                self._eval_env.close()
            self._eval_env = th_envs.make(self.env_spec, n_envs=episodes, backend=self.options.backend,
                                          device=self.device)
        env = self._eval_env
        generator = torch.Generator(device=self.device).manual_seed(seed)
        obs = env.reset(seed=seed)
        returns = torch.zeros(episodes, dtype=torch.float64, device=self.device)
        lengths = torch.zeros(episodes, dtype=torch.int64, device=self.device)
        running = torch.ones(episodes, dtype=torch.bool, device=self.device)
        # Every copy counts its first episode only. All copies step together, so after t steps each running copy
        # has length t and the step cap is a plain counter.
        for _ in range(max_episode_steps):
            actions = self.policy(self._normalize_obs(obs), deterministic, generator)
            obs, rewards, terminated, truncated, _ = env.step(actions)
            returns += torch.where(running, rewards, 0.0)  # raw rewards: the eval env is not normalised
            lengths += running
            running &= ~(terminated | truncated)
            if not running.any():
                break
        returns, lengths = returns.cpu(), lengths.cpu()
        values = returns.tolist()
        return EvalResult(
            mean=float(statistics.fmean(values)),
            std=float(statistics.pstdev(values)),
            returns=values,
            lengths=lengths.tolist(),
        )

    def check_finite(self, what: str, tensor: torch.Tensor, first_step: int | None = None) -> None:
        """Stop with a clear error when ``tensor`` holds NaN or inf: one reduction, so call it once per rollout
        on the ``[T, N, ...]`` storage (``first_step`` is the global step of row 0) or once per update."""
        if bool(torch.isfinite(tensor).all()):
            return
        where = f"iteration {self.iteration + 1}"
        if first_step is not None:
            bad = ~torch.isfinite(tensor.reshape(tensor.shape[0], tensor.shape[1], -1))
            t, copy = bad.any(-1).nonzero()[0].tolist()
            where = f"step {first_step + t * tensor.shape[1]} ({where}), env copy {copy}"
        raise NonFiniteError(
            f"{what} is not finite (NaN or inf) at {where}. Check the environment's outputs, lower the learning "
            "rate, or enable normalize_obs / normalize_reward."
        )

    # ---- state ----------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimisers, RNGs, envs, counters."""
        self.flush_episodes()
        return {
            "format": CHECKPOINT_FORMAT,
            "algo": self.name,
            "env": self.env_spec if isinstance(self.env_spec, str) else th_envs.env_name(self.env_spec),
            "seed": self.seed,
            "config": dataclasses.asdict(self.config),
            "options": dataclasses.asdict(self.options),
            "components": {k: v.state_dict() for k, v in self.components.items()},
            "rng": rng_states(self.generator),
            "envs": self.envs.state_dict(),
            "obs": self.obs,
            "counters": {
                "global_step": self.global_step,
                "iteration": self.iteration,
                "episodes": self.episodes,
                "total_steps": self.total_steps,
                "last_checkpoint_step": self._last_checkpoint_step,
            },
            "recent_returns": list(self.recent_returns),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT or state.get("algo") != self.name:
            raise ValueError(f"this checkpoint is for {state.get('algo')!r} (format {state.get('format')}), "
                             f"not {self.name!r} (format {CHECKPOINT_FORMAT})")
        for key, component in self.components.items():
            component.load_state_dict(state["components"][key])
        set_rng_states(state["rng"], self.generator)
        self.envs.load_state_dict(state["envs"])
        self.obs = state["obs"].to(self.device)
        counters = state["counters"]
        self.global_step = counters["global_step"]
        self.iteration = counters["iteration"]
        self.episodes = counters["episodes"]
        self.total_steps = counters["total_steps"]
        self._last_checkpoint_step = counters["last_checkpoint_step"]
        self.recent_returns = deque(state["recent_returns"], maxlen=self.recent_returns.maxlen)

    def save(self, path: str | Path) -> Path:
        """Write the agent (a full checkpoint; ``th.load`` reads it back) atomically to ``path``."""
        return save_checkpoint(self.state_dict(), path)

    # ---- the training session -------------------------------------------------------------------------------

    def _new_run_dir(self) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        name = f"{self.name}-{th_envs.env_name(self.env_spec)}-{self.seed}-{stamp}".replace("/", "_")
        run_dir = Path(self.options.run_root) / name
        run_dir.mkdir(parents=True, exist_ok=False)
        return run_dir

    def write_config(self) -> None:
        assert self.run_dir is not None
        env = self.env_spec if isinstance(self.env_spec, str) else th_envs.env_name(self.env_spec)
        text = yaml.safe_dump(
            {
                "algo": self.name,
                "env": env,
                "seed": self.seed,
                "config": _plain(dataclasses.asdict(self.config)),
                "options": _plain(dataclasses.asdict(self.options)),
            },
            sort_keys=False,
        )
        (self.run_dir / "config.yaml").write_text(text)

    @contextmanager
    def session(self, total_steps: int) -> Iterator[_Session]:
        """Open (or reopen, on resume) the run folder; on a clean exit write ``final.pt`` and ``curve.png``."""
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
        resuming = self.run_dir is not None and self.total_steps is not None
        if not resuming:
            self.run_dir = self._new_run_dir()
            self.write_config()
        self.total_steps = total_steps
        logger = Logger(self.run_dir, resume_step=self.global_step if resuming else None,
                        tensorboard=self.options.tensorboard)
        session = _Session(self, logger)
        try:
            yield session
        except BaseException as err:
            kept = f"the last checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint yet"
            err.add_note(f"thorndike: training stopped at step {self.global_step}; {kept}; resume with "
                         f"`thorndike train --resume {self.run_dir}`")
            raise
        finally:
            session.close()
        self.save(self.run_dir / "final.pt")
        if self.options.pictures:
            self.write_pictures(self.run_dir)

    def write_pictures(self, run_dir: Path) -> list[Path]:
        """The pictures a finished run leaves in its folder: ``curve.png`` (return against steps)."""
        from thorndike.plot import learning_curves

        return [learning_curves([run_dir], run_dir / "curve.png")]

    def steps_this_iteration(self, every: int | None = None) -> int:
        """Steps until the next log row (every ``every`` steps, by default the config's ``log_every``), never past
        ``total_steps``: for learners that log every so many single steps rather than once per rollout."""
        assert self.total_steps is not None, "call inside learn(), after session() has set total_steps"
        return min(every or self.config.log_every, self.total_steps - self.global_step)

    def checkpoint(self) -> Path:
        """Write a checkpoint into ``run_dir/checkpoints`` and prune old ones."""
        assert self.run_dir is not None
        folder = self.run_dir / "checkpoints"
        self._last_checkpoint_step = self.global_step
        self.last_checkpoint = save_checkpoint(self.state_dict(), checkpoint_path(folder, self.global_step))
        prune_checkpoints(folder, self.options.keep_checkpoints)
        return self.last_checkpoint

    def record_episodes(self, info: dict[str, Any]) -> None:
        """Count finished episodes from a step's ``info`` (for the log and the progress bar).

        Native envs also report fixed-shape ``done`` and ``episode_return`` tensors; those are kept on the device and
        read once per iteration (:meth:`flush_episodes`), so stepping never waits for the host.
        """
        if "done" in info and "episode_return" in info:
            self._pending_episodes.append((info["done"], info["episode_return"]))
            return
        finished = info["episode_returns"]
        if len(finished):
            self.episodes += len(finished)
            self.recent_returns.extend(finished.tolist())

    def flush_episodes(self) -> None:
        """Move the episodes recorded on the device since the last call into the counters."""
        if not self._pending_episodes:
            return
        done = torch.stack([d for d, _ in self._pending_episodes])
        returns = torch.stack([r for _, r in self._pending_episodes])
        self._pending_episodes.clear()
        finished = returns[done].tolist()  # time-major, so episodes stay in the order they ended
        self.episodes += len(finished)
        self.recent_returns.extend(finished)


class _Session:
    """Per-iteration bookkeeping of a ``learn`` call: log row, progress bar, evaluation, checkpoint, stop."""

    def __init__(self, agent: Agent, logger: Logger):
        self.agent = agent
        self.logger = logger
        self.stopped = False
        self.start_time = time.perf_counter()
        self.start_step = agent.global_step
        total = agent.total_steps
        every = agent.options.checkpoint_every or max(total // 10, 1)
        self.checkpoint_every = every
        self.last_eval: float | None = None
        self._next_eval = agent.global_step + agent.options.eval_every if agent.options.eval_every else None
        self.bar = None
        if agent.options.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=agent.global_step, unit="step", dynamic_ncols=True,
                            desc=f"{agent.name} {th_envs.env_name(agent.env_spec)}")

    def running(self) -> bool:
        return not self.stopped and self.agent.global_step < self.agent.total_steps

    def log(self, stats: dict[str, float]) -> None:
        """End of an iteration: evaluate if due, write the row, update the bar, checkpoint if due."""
        agent = self.agent
        agent.flush_episodes()
        agent.iteration += 1
        row: dict[str, Any] = {"iteration": agent.iteration, "episodes": agent.episodes}
        recent = list(agent.recent_returns)[-20:]
        row["return_mean"] = statistics.fmean(recent) if recent else math.nan
        eval_mean = math.nan
        if self._next_eval is not None and agent.global_step >= self._next_eval:
            self._next_eval += agent.options.eval_every
            eval_mean = agent.evaluate(agent.options.eval_episodes).mean
            self.last_eval = eval_mean
            if agent.options.stop_return is not None and eval_mean >= agent.options.stop_return:
                self.stopped = True
        row["eval_mean"] = eval_mean
        row.update(stats)
        elapsed = time.perf_counter() - self.start_time
        row["time/elapsed_s"] = elapsed
        row["time/steps_per_s"] = (agent.global_step - self.start_step) / max(elapsed, 1e-9)
        self.logger.log(agent.global_step, row)
        if self.bar is not None:
            self.bar.n = agent.global_step
            postfix = {"steps/s": f"{row['time/steps_per_s']:.0f}", "return": f"{row['return_mean']:.1f}"}
            if self.last_eval is not None:
                postfix["eval"] = f"{self.last_eval:.1f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.refresh()
        if agent.global_step - agent._last_checkpoint_step >= self.checkpoint_every:
            agent.checkpoint()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.logger.close()


def _plain(value: Any) -> Any:
    """Tuples to lists, so config.yaml stays plain YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def resume_state(run_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """The newest valid checkpoint of a run (damaged ones are reported and skipped)."""
    return load_latest_checkpoint(Path(run_dir) / "checkpoints")


__all__ = ["Agent", "EvalResult", "NonFiniteError", "list_checkpoints", "load_checkpoint", "resume_state"]
