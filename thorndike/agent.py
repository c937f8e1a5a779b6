"""The lifecycle every algorithm shares, composed of two parts: the run and the interaction with envs.

- :class:`thorndike.run.Run`: seeding and the algorithm's random generator, counters, run folder and
  ``config.yaml``, logger, progress bar, evaluation and stop schedule, checkpoints, exact resume. Every algorithm
  has one.
- :class:`thorndike.interaction.EnvInteraction`: the VecEnv, the current observations, the episode ledger, acting
  and evaluating. An algorithm that steps envs asks for one in ``build()`` with :meth:`Agent.connect_env`, saying
  how many copies it needs; one that learns from data or a game does not, and brings its own ``evaluate``.

An algorithm is one class on :class:`Agent`: it builds its networks in ``build()``, registers what a checkpoint must
hold in ``self.components``, implements ``policy()`` (when it acts in an env) and writes its own ``learn`` loop,
which reads collect -> targets -> update -> log inside ``with self.session(total_steps) as run``. The lifecycle never
reads an algorithm's config: what it needs (copies, reward scaling, how often to log) is passed to it explicitly.
Family bases (the tabular learners' :class:`~thorndike.tabular.base.TabularAgent`) sit one level below, never more.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import torch

from thorndike import envs as th_envs
from thorndike.callbacks import Callbacks
from thorndike.config import ConfigError, RunOptions, check_limits
from thorndike.core.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from thorndike.core.diagnostics import NonFiniteError, check_finite
from thorndike.core.ledger import EpisodeLedger
from thorndike.core.seeding import rng_states, set_rng_states
from thorndike.interaction import EnvInteraction, EnvSetup, EvalResult
from thorndike.run import Run, Session, resolve_device, resume_state

CHECKPOINT_FORMAT = 2

__all__ = ["Agent", "EvalResult", "NonFiniteError", "list_checkpoints", "load_checkpoint", "resume_state"]


class Agent(ABC):
    """The lifecycle shared by all algorithms; see the module docstring for what a subclass provides.

    ``action_spaces`` and ``observation_spaces`` are the Gymnasium space types the algorithm supports; an algorithm
    that needs no env sets ``action_spaces = ()`` and is made with ``env=None``.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    action_spaces: ClassVar[tuple[type[gym.Space], ...]]
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box, gym.spaces.Discrete,
                                                                  gym.spaces.Dict, gym.spaces.Tuple)

    def __init__(self, env: th_envs.EnvSpec | None, config: Any, seed: int = 0, options: RunOptions | None = None,
                 env_kwargs: dict[str, Any] | None = None, wrappers: list[Any] | None = None) -> None:
        check_limits(config)  # any Config, also one built by hand: finite floats, counts within their bounds
        self.config = config
        self.seed = seed
        self.options = options or RunOptions()
        self.device = resolve_device(self.options.device)
        torch.set_num_threads(self.options.threads)
        if env_kwargs is not None and not isinstance(env_kwargs, Mapping):
            raise ConfigError(f"invalid config: env_kwargs={env_kwargs!r}; env_kwargs must be a dict of keyword "
                              "arguments for the env's constructor")
        try:  # a string, an unknown name or a wrong argument fails here, by name, before anything is built
            th_envs.resolve_wrappers(wrappers)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"invalid config: wrappers={wrappers!r}; {err}") from None
        self.env_setup = None if env is None else EnvSetup(env, dict(env_kwargs or {}), list(wrappers or []),
                                                           self.options.backend, self.options.vectorization)
        record = {"config": dataclasses.asdict(config)}
        if self.env_setup is not None:
            record = {**self.env_setup.record(), **record}
        self.run = Run(self.name, self.env_setup.name if self.env_setup else "", seed, self.options, self.device,
                       record)
        self.interaction: EnvInteraction | None = None
        self.components: dict[str, Any] = {}
        self._learn_depth = 0
        self.build()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every algorithm's own learn(total_steps) takes callbacks=[...] without code of its own: the lifecycle hands
        # them to the run, whose session calls them (thorndike/callbacks.py).
        super().__init_subclass__(**kwargs)
        if "learn" in cls.__dict__ and not getattr(cls.__dict__["learn"], "__isabstractmethod__", False):
            cls.learn = _taking_callbacks(cls.__dict__["learn"])

    # ---- what an algorithm provides -------------------------------------------------------------------------

    @abstractmethod
    def build(self) -> None:
        """Connect the envs it needs (:meth:`connect_env`), create networks and optimisers and register them in
        ``self.components``."""

    def policy(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """Actions for a batch of raw observations (algorithms that act in an env implement it)."""
        raise TypeError(f"{self.name} does not act in an env")

    @abstractmethod
    def learn(self, total_steps: int, callbacks: Sequence[Any] | None = None) -> Agent:
        """Train for ``total_steps`` steps inside ``with self.session(total_steps)``.

        An algorithm writes ``learn(self, total_steps)``; the lifecycle adds ``callbacks`` (objects with the hooks
        of :class:`thorndike.callbacks.Callback`, called after each iteration, evaluation and checkpoint).

        Training runs whole iterations and stops at the first iteration boundary at or past ``total_steps``: an
        on-policy iteration is ``n_envs * n_steps`` steps (PPO's 8 x 256 turns 100,000 into 100,352), a tabular
        learner's is ``log_every`` steps per run (cut short to end exactly at the budget).
        """

    # ---- env interaction ------------------------------------------------------------------------------------

    def connect_env(self, n_envs: int, normalize_reward: bool = False, gamma: float = 0.99,
                    ledger_keep: int | None = 100, sized_by: dict[str, int] | None = None) -> EnvInteraction:
        """Build ``n_envs`` copies of the agent's env (checking its spaces) and reset them with the agent's seed.

        ``normalize_reward`` scales rewards by the running std of the discounted return with ``gamma`` (an env
        wrapper below the episode ledger, so logged returns stay raw); ``ledger_keep`` bounds the ledger (None:
        keep every episode); ``sized_by`` names the config fields whose product is ``n_envs`` (``{"n_envs": n}``
        by default), so more copies than the machine can hold are refused by those names before any is built.
        """
        if self.env_setup is None:
            raise ValueError(f"{self.name} steps an env: make it with env=... (a Gymnasium id, 'module:function', a "
                             "callable or a TabularMDP)")
        self.interaction = EnvInteraction(self.env_setup, n_envs, self.seed, self.device, normalize_reward, gamma,
                                          ledger_keep, check_spaces=self.check_spaces, sized_by=sized_by)
        return self.interaction

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Refuse spaces this algorithm does not support, naming the registered algorithms that do."""
        problem = None
        if not isinstance(action_space, cls.action_spaces):
            supported = ", ".join(s.__name__ for s in cls.action_spaces) or "none: it takes no env"
            problem = f"the action space {action_space} (it supports {supported})"
        elif not isinstance(observation_space, cls.observation_spaces):
            supported = ", ".join(s.__name__ for s in cls.observation_spaces)
            problem = f"the observation space {observation_space} (it supports {supported})"
        else:
            from thorndike.core.spaces import storage_spec

            storage_spec(observation_space)  # an unsupported part of a Dict or Tuple is named there
        if problem is not None:
            from thorndike.registry import alternatives

            others = alternatives(cls.name, observation_space, action_space)
            raise ValueError(f"{cls.name} does not support {problem}; {others}")

    @property
    def env_spec(self) -> th_envs.EnvSpec | None:
        return None if self.env_setup is None else self.env_setup.env

    @property
    def envs(self) -> th_envs.VecEnv:
        return self._interaction().envs

    @property
    def obs(self) -> torch.Tensor:
        return self._interaction().obs

    @obs.setter
    def obs(self, value: torch.Tensor) -> None:
        self._interaction().obs = value

    @property
    def ledger(self) -> EpisodeLedger:
        """Every finished episode (copy, return, length, step), filled while stepping without host syncs."""
        return self._interaction().ledger

    @property
    def episodes(self) -> int:
        """Episodes finished during training so far."""
        if self.interaction is None:
            return 0
        self.ledger.flush()
        return self.ledger.total

    @property
    def recent_returns(self) -> list[float]:
        """The returns of the last (up to 100) finished training episodes."""
        return [] if self.interaction is None else self.ledger.recent_returns(100)

    def _interaction(self) -> EnvInteraction:
        if self.interaction is None:
            raise AttributeError(f"{self.name} has no env interaction (it learns without stepping an env)")
        return self.interaction

    @torch.no_grad()
    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """Actions for raw observations: one observation or a batch, NumPy or torch (answered in kind)."""
        return self._interaction().act(self.policy, obs, deterministic)

    def evaluate(self, episodes: int = 10, deterministic: bool = True, seed: int | None = None,
                 max_episode_steps: int = 10_000) -> EvalResult:
        """Play ``episodes`` whole episodes on fresh env copies (one each, in parallel) and report their returns."""
        return self._interaction().evaluate(self.policy, episodes, deterministic, seed, max_episode_steps)

    def episode_columns(self) -> dict[str, float]:
        """The log's episode columns (none without an env)."""
        return {} if self.interaction is None else self.interaction.episode_columns()

    # ---- the run --------------------------------------------------------------------------------------------

    @property
    def generator(self) -> torch.Generator:
        """The algorithm's random generator (sampling, shuffling), on its device, in every checkpoint."""
        return self.run.generator

    @property
    def global_step(self) -> int:
        return self.run.global_step

    @global_step.setter
    def global_step(self, value: int) -> None:
        self.run.global_step = value

    @property
    def iteration(self) -> int:
        return self.run.iteration

    @property
    def total_steps(self) -> int | None:
        return self.run.total_steps

    @property
    def run_dir(self) -> Path | None:
        return self.run.run_dir

    @property
    def last_checkpoint(self) -> Path | None:
        return self.run.last_checkpoint

    @contextmanager
    def session(self, total_steps: int) -> Iterator[Session]:
        """The training session of one ``learn`` call (see :meth:`thorndike.run.Run.session`)."""
        with self.run.session(total_steps, self) as session:
            yield session

    def steps_this_iteration(self, every: int) -> int:
        """Steps until the next log row, every ``every`` steps, never past ``total_steps``."""
        return self.run.steps_this_iteration(every)

    def checkpoint(self) -> Path:
        """Write a checkpoint of this step into ``run_dir/checkpoints`` now."""
        self.run.last_checkpoint_step = self.global_step
        return self.run.checkpoint(self.state_dict())

    def check_finite(self, what: str, tensor: torch.Tensor, first_step: int | None = None) -> None:
        """Stop with :class:`NonFiniteError` when ``tensor`` holds NaN or inf (once per rollout or update)."""
        check_finite(what, tensor, first_step, where=f"iteration {self.iteration + 1}")

    def write_pictures(self, run_dir: Path) -> list[Path]:
        """The pictures a finished run leaves in its folder: ``curve.png`` (return against steps)."""
        from thorndike.plot import learning_curves

        return [learning_curves([run_dir], run_dir / "curve.png")]

    # ---- state ----------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimisers, RNGs, envs, ledger, counters."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "algo": self.name,
            **(self.env_setup.record() if self.env_setup else {"env": None}),
            "seed": self.seed,
            "config": dataclasses.asdict(self.config),
            "options": dataclasses.asdict(self.options),
            "components": {k: v.state_dict() for k, v in self.components.items()},
            "rng": rng_states(self.generator),
            "interaction": None if self.interaction is None else self.interaction.state_dict(),
            "counters": self.run.state_dict(),
            "callbacks": self.run.callbacks.state_dict() if self.run.callbacks else self.run.saved_callback_states,
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT or state.get("algo") != self.name:
            raise ValueError(f"this checkpoint is for {state.get('algo')!r} (format {state.get('format')}), "
                             f"not {self.name!r} (format {CHECKPOINT_FORMAT})")
        for key, component in self.components.items():
            component.load_state_dict(state["components"][key])
        set_rng_states(state["rng"], self.generator)
        if self.interaction is not None:
            self.interaction.load_state_dict(state["interaction"])
        self.run.load_state_dict(state["counters"])
        self.run.saved_callback_states = dict(state.get("callbacks") or {})  # for the callbacks of the next learn

    def save(self, path: str | Path) -> Path:
        """Write the agent (a full checkpoint; ``th.load`` reads it back) atomically to ``path``."""
        return save_checkpoint(self.state_dict(), path)



def _taking_callbacks(learn: Callable[[Agent, int], Agent]) -> Callable[..., Agent]:
    """An algorithm's ``learn(total_steps)`` as ``learn(total_steps, callbacks=None)``: the outermost call sets the
    run's callbacks for its session (a learn that calls another learn, such as ``learn_episodes``, keeps them)."""

    @functools.wraps(learn)
    def learn_with_callbacks(self: Agent, total_steps: int, callbacks: Sequence[Any] | None = None) -> Agent:
        outermost = self._learn_depth == 0
        if outermost:
            self.run.callbacks = Callbacks(callbacks or ())
        self._learn_depth += 1
        try:
            return learn(self, total_steps)
        finally:
            self._learn_depth -= 1
            if outermost:
                self.run.callbacks = Callbacks()

    return learn_with_callbacks
