"""What the black-box policy searches share: many searches as one population of policies, played as one batch.

Notes: 004 ("hill climbing", "cross-entropy method", "evolution strategies") and 003 lecture 1 (CEM, "parallel
sampling"). Hill climbing, parameter-space CEM and evolution strategies all propose candidate weight vectors, play
each for ``episodes_per_candidate`` (k) episodes and update from the returns; only how they propose and update
differs. :class:`PopulationSearch`, one level below :class:`~thorndike.agent.Agent`, holds the rest once:

- ``n_runs`` independent searches whose candidates are one population ``[R, C, n]`` (C candidates per run), played
  with one :func:`~thorndike.core.population.evaluate_population` call on ``R * C * k`` env copies (candidate
  ``r * C + i`` is run r's i-th; its k episodes are copies ``(r * C + i) * k`` onward).
- Steps count per run, as for the tabular learners and CEM: an iteration of T lockstep steps (its longest episode)
  adds T * C * k to ``global_step``, every step the run's copies took; ``learn(total_steps)`` stops at the first
  iteration boundary at or past ``total_steps``. Every candidate's episodes go into the episode ledger.
- ``compile=True`` (a run option) plays greedy candidates on a native env with a compiled step
  (:func:`~thorndike.core.population.evaluate_population`): about 4x faster populations on CartPole, after a
  compilation of some seconds.
- Acting: row ``b`` of a batch of observations acts with run ``b % n_runs``'s weights (:meth:`acting_weights`).

Each algorithm's config extends :class:`PopulationConfig` (the runs, the episodes per candidate, the policy).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import torch
from torch import Tensor

from thorndike.agent import Agent
from thorndike.config import check, check_limits, describe
from thorndike.core.population import PopulationPolicy, evaluate_population
from thorndike.core.resources import require_memory, tensor_bytes
from thorndike.tabular.base import run_of_row

__all__ = ["PopulationConfig", "PopulationSearch", "SearchState"]


@dataclass
class PopulationConfig:
    """What every population search is configured with: the runs, how candidates are judged, the policy."""

    n_runs: int = describe("independent searches at once (each with its own search state)", 1)
    episodes_per_candidate: int = describe("episodes each candidate is judged on, by their mean return (1: one "
                                           "episode's return G, as in plain random search)", 1)
    policy: str = describe("linear (obs -> logits or means, with bias) or mlp (one tanh hidden layer)", "linear")
    hidden_size: int = describe("the mlp policy's hidden units", 16)
    obs_scaling: str = describe("none, or bounds: map each observation dimension with finite bounds onto [-1, 1] "
                                "before the policy (unbounded ones pass as they are)", "none")
    deterministic: bool = describe("candidates act greedily (argmax of the logits) instead of sampling the softmax",
                                   True)
    max_episode_steps: int = describe("an episode still running after this many steps is cut there", 1000)

    def __post_init__(self) -> None:
        check_limits(self)
        check(self.episodes_per_candidate >= 1, "episodes_per_candidate", self.episodes_per_candidate, ">= 1")
        check(self.policy in ("linear", "mlp"), "policy", self.policy, "linear or mlp")
        check(self.obs_scaling in ("none", "bounds"), "obs_scaling", self.obs_scaling, "none or bounds")
        check(self.hidden_size >= 1, "hidden_size", self.hidden_size, ">= 1")
        check(self.max_episode_steps >= 1, "max_episode_steps", self.max_episode_steps, ">= 1")
        check(self.n_runs >= 1, "n_runs", self.n_runs, ">= 1")


class SearchState:
    """Named per-run tensors a search keeps between iterations (attributes listed in ``NAMES``, replaced, not
    modified in place, by the update); a checkpoint component."""

    NAMES: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).clone() for name in self.NAMES}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.NAMES:
            mine, theirs = getattr(self, name), state[name]
            if mine.shape != theirs.shape:
                raise ValueError(f"checkpoint {name} {tuple(theirs.shape)} does not fit this agent "
                                 f"{tuple(mine.shape)}")
            setattr(self, name, theirs.to(device=mine.device, dtype=mine.dtype).clone())


class PopulationSearch(Agent):
    """Base of the population searches: builds the envs and the batched policy, plays populations, acts."""

    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete, gym.spaces.Box)
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)

    # The config field that sets candidates_per_run (named when a population is too large for the machine).
    candidates_field: ClassVar[str] = "population"

    @abstractmethod
    def candidates_per_run(self) -> int:
        """C: the candidates each run proposes per iteration."""

    @abstractmethod
    def acting_weights(self) -> Tensor:
        """``[R, n]``: the weights each run acts with outside the search (its best, or its distribution's mean)."""

    def build(self) -> None:
        config = self.config
        R, C, k = config.n_runs, self.candidates_per_run(), config.episodes_per_candidate
        sizes = {"n_runs": R, self.candidates_field: C, "episodes_per_candidate": k}
        envs = self.connect_env(R * C * k, sized_by=sizes)
        hidden = config.hidden_size if config.policy == "mlp" else 0
        self.population = PopulationPolicy(envs.observation_space, envs.action_space, hidden,
                                           scale_obs=config.obs_scaling == "bounds")
        n = self.population.n_params
        # the candidates [R, C, n], their noise and the update's copies; the policy's hidden activations
        require_memory("the population's weights", tensor_bytes(4 * R * C * n) + tensor_bytes(R * C * k * hidden),
                       self.device, {**sizes, **({"hidden_size": hidden} if hidden else {})},
                       f"{n:,} weights per candidate, x 4 copies")

    def gaussian_candidates(self, center: Tensor, scale: Tensor, count: int | None = None) -> Tensor:
        """``[R, C, n]``: center + scale * eps for each run's C candidates (``count``, by default
        :meth:`candidates_per_run`), eps ~ N(0, I) drawn together from the algorithm's generator; ``center`` is
        ``[R, n]``, ``scale`` ``[R, 1]`` (one radius per run) or ``[R, n]``."""
        count = self.candidates_per_run() if count is None else count
        noise = torch.randn((center.shape[0], count, center.shape[1]), generator=self.generator,
                            dtype=center.dtype, device=center.device)
        return center.unsqueeze(1) + scale.to(center.dtype).unsqueeze(1) * noise

    def play(self, candidates: Tensor) -> Tensor:
        """Play every run's candidates ``[R, C, n]`` for k episodes each, as one batch; count the steps and record
        the episodes. Returns each candidate's mean return ``[R, C]`` (float64)."""
        config = self.config
        R, C, k = candidates.shape[0], candidates.shape[1], config.episodes_per_candidate
        returns, lengths = evaluate_population(self.envs, self.population, candidates.reshape(R * C, -1), k,
                                               config.max_episode_steps, self.generator, config.deterministic,
                                               first_step=self.global_step, step_size=C * k,
                                               where=f"iteration {self.iteration + 1}",
                                               compile=self.options.compile)
        self.global_step += int(lengths.max()) * C * k
        self.ledger.record({"done": torch.ones_like(lengths.view(-1), dtype=torch.bool),
                            "episode_return": returns.view(-1), "episode_length": lengths.view(-1)}, self.global_step)
        return returns.mean(1).view(R, C)

    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """Row ``b`` acts with run ``b % n_runs``'s :meth:`acting_weights` (a population of one observation each)."""
        obs = obs.to(self.device)
        weights = self.acting_weights()[run_of_row(len(obs), self.config.n_runs, self.device)]
        return self.population.act(weights, obs.unsqueeze(1), deterministic, generator).squeeze(1)
