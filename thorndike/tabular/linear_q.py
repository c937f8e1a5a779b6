"""Linear approximate Q-learning and SARSA: semi-gradient TD control on binary features (tile coding or one-hot).

Notes: 000 L141-L143 (tables do not scale; use a parametrised Q_theta(s, a), e.g. a linear function of features),
003 L343-L375 (approximate Q-learning as minimising the TD error with the target held fixed), Sutton & Barto
section 10.1 (semi-gradient SARSA on MountainCar with tile coding, figures 10.1 and 10.2). Each step of each run:

    x(s) = the active features of s (one per tiling; thorndike.core.tile_coding), n = how many
    Q(s, a; w) = sum_{i in x(s)} w[a, i]
    y = r + gamma * max_a' Q(s', a'; w)          (q_learning; y = r when s' is terminal)
    y = r + gamma * Q(s', a'; w), a' ~ behaviour (sarsa)
    w[a, i] <- w[a, i] + (alpha / n) * (y - Q(s, a; w))   for every i in x(s)

Why this is a gradient step. The notes' loss is L = (y - Q(s, a; theta))^2 with y held constant ("stop gradient",
003 L363-L367: y is computed with theta^- and no gradient flows through it). This module uses the usual convention
L = 1/2 (y - Q)^2, whose gradient is -(y - Q) grad Q, so the step is w <- w + alpha (y - Q) grad_w Q. With the loss
as the notes write it (no 1/2) the gradient is -2 (y - Q) grad Q (INVENTORY E23: 003 L372 drops the 2); the factor
only rescales alpha. For a linear Q on binary features grad_w Q(s, a) is 1 at (a, i) for the n active i and 0
elsewhere, which gives the update above. Dividing alpha by n makes one update move Q(s, a) by exactly
alpha (y - Q(s, a)) (each of the n active weights moves by alpha / n times the error), so alpha means what it means
for a table, and ``alpha=0.5`` with 8 tilings is S&B's "alpha = 0.5 / 8".

The notes write the target without the discount, r_t + max_a' Q(s_{t+1}, a') (003 L353-L365, INVENTORY E22); this
module discounts it by gamma as the tabular rule does (003 L265, L453), and the tests show the difference.

One-hot features (``features="one_hot"``, for Discrete observations) make x(s) = {s} and w[a, s] a table entry, so
the update is exactly tabular Q-learning's (n = 1): a check of the code on FrozenLake against
:class:`~thorndike.tabular.q_learning.QLearning`.

Many runs at once, as the tabular learners: the weights are ``[R, A, F]`` (float64), run ``r`` has its own env
copy, weights, epsilon and episodes (in an :class:`~thorndike.core.ledger.EpisodeLedger`), and one step of all runs is
a few tensor ops with advanced indexing (no Python loop over runs). Linear Q sits on :class:`~thorndike.agent.Agent`
and uses the tabular family's parts (:mod:`thorndike.tabular.base`): the behaviour policy over its linear Q, and the
step loop with the tile coder (or one-hot) as its state encoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.core.resources import require_memory, tensor_bytes
from thorndike.core.targets import q_learning_target, sarsa_target
from thorndike.core.tile_coding import TileCoder
from thorndike.tabular.base import (
    BehaviourPolicy,
    RunHistory,
    RunStepper,
    TabularConfig,
    Transition,
    connect_runs,
    run_of_row,
    write_episode_curve,
)

__all__ = ["FeatureTransition", "LinearQ", "LinearQConfig", "LinearWeights"]

TARGETS = ("q_learning", "sarsa")
FEATURES = ("auto", "tiles", "one_hot")


@dataclass
class LinearQConfig(TabularConfig):
    """Linear Q's hyperparameters: those of the tabular learners (:class:`TabularConfig`) plus the features.

    ``alpha_schedule`` must stay ``constant`` and ``exploration`` cannot be ``ucb`` (both count visits of a table
    entry, which features do not have).
    """

    alpha: float = describe("step size of one update of Q(s, a); each of the n active weights moves by alpha / n "
                            "(S&B's alpha = 0.5 / 8 with 8 tilings is alpha=0.5 here)", 0.5)
    target: str = describe("q_learning: r + gamma max_a' Q(s', a'); sarsa: r + gamma Q(s', a'), a' the behaviour's "
                           "next action", "q_learning")
    features: str = describe("tiles: tile coding of a Box observation; one_hot: one feature per state of a "
                             "Discrete observation; auto: one_hot for Discrete, tiles for Box", "auto")
    n_tilings: int = describe("tilings of the tile coder (active features per state)", 8)
    tiles: int = describe("tiles per dimension of each tiling, over the observation space's bounds", 8)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.target in TARGETS, "target", self.target, f"one of {', '.join(TARGETS)}")
        check(self.features in FEATURES, "features", self.features, f"one of {', '.join(FEATURES)}")
        check(self.n_tilings >= 1, "n_tilings", self.n_tilings, ">= 1")
        check(self.tiles >= 1, "tiles", self.tiles, ">= 1")
        check(self.alpha_schedule == "constant", "alpha_schedule", self.alpha_schedule,
              "constant for linear_q (1/n counts visits of a table entry)")
        check(self.exploration != "ucb", "exploration", self.exploration,
              "epsilon_greedy, boltzmann or greedy for linear_q (ucb counts visits of a table entry)")


# A Transition whose ``active`` / ``next_active`` hold the active features of ``obs`` / ``next_obs``, ``[R, n]`` each
# (the step loop sets them when it encodes states, as it does for linear Q).
FeatureTransition = Transition


class LinearWeights:
    """The learner's state, a checkpoint component: weights ``w`` ``[R, A, F]`` (float64) and each run's finished
    episodes ``[R]`` (epsilon decays with them)."""

    def __init__(self, n_runs: int, n_actions: int, n_features: int, init: float, device: torch.device) -> None:
        self.w = torch.full((n_runs, n_actions, n_features), float(init), dtype=torch.float64, device=device)
        self.episodes = torch.zeros(n_runs, dtype=torch.int64, device=device)

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.clone(), "episodes": self.episodes.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["w"].shape != self.w.shape:
            raise ValueError(f"checkpoint weights {tuple(state['w'].shape)} do not fit this agent "
                             f"{tuple(self.w.shape)}")
        self.w.copy_(state["w"])
        self.episodes.copy_(state["episodes"])


class LinearQ(Agent):
    """Linear approximate Q-learning / SARSA: semi-gradient TD control on tile-coded (or one-hot) features."""

    name = "linear_q"
    Config = LinearQConfig
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete,)

    # ---- spaces and state -----------------------------------------------------------------------------------

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        if not isinstance(action_space, gym.spaces.Discrete):
            super().check_spaces(observation_space, action_space)  # the shared error naming other algorithms
        if isinstance(observation_space, gym.spaces.Discrete):
            return
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            from thorndike.registry import alternatives

            raise ValueError(f"{cls.name} needs Discrete observations or flat Box observations [d], got "
                             f"{observation_space}; {alternatives(cls.name, observation_space, action_space)}")

    def build(self) -> None:
        config = self.config
        space = connect_runs(self).observation_space
        discrete = isinstance(space, gym.spaces.Discrete)
        kind = config.features if config.features != "auto" else ("one_hot" if discrete else "tiles")
        if kind == "one_hot" and not discrete:
            raise ValueError(f"features='one_hot' needs Discrete observations, got {space}; use features='tiles'")
        if kind == "tiles" and discrete:
            raise ValueError(f"features='tiles' needs Box observations, got {space}; use features='one_hot'")
        self.feature_kind = kind
        n_actions = int(self.envs.single_action_space.n)
        if kind == "tiles":  # checked before the tile coder allocates its offsets
            dims = int(np.prod(space.shape))
            n_features = config.n_tilings * (config.tiles + 1) ** dims
            sizes, how = {"n_runs": config.n_runs, "n_tilings": config.n_tilings, "tiles": config.tiles}, \
                f"n_tilings x (tiles + 1)^{dims} = {n_features:,} features x {n_actions} actions"
        else:
            n_features = int(space.n)
            sizes, how = {"n_runs": config.n_runs}, f"{n_features:,} states x {n_actions} actions"
        require_memory("the weights", tensor_bytes(config.n_runs * n_actions * n_features, dtype=torch.float64),
                       self.device, sizes, how)
        if kind == "tiles":
            if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
                raise ValueError(f"{self.name} tile-codes the observation box, which needs finite bounds; {space} "
                                 "has infinite ones: wrap the env so its observation space states the range the "
                                 "observations cover (or use a deep method such as ppo)")
            self.coder: TileCoder | None = TileCoder(space.low, space.high, config.tiles, config.n_tilings,
                                                     device=self.device)
            self.n_features, self.n_active = self.coder.n_features, config.n_tilings
        else:
            self.coder = None
            self.n_features, self.n_active = int(space.n), 1
        self.n_actions = n_actions
        # Every Q(s, a) starts at q_init: the n active weights share it.
        self.weights = LinearWeights(config.n_runs, self.n_actions, self.n_features, config.q_init / self.n_active,
                                     self.device)
        self.history = RunHistory(self.ledger)
        self.behaviour = BehaviourPolicy(config, self.weights.episodes, self.generator)
        self.stepper = RunStepper(self, self.weights.episodes, behaviour=self.behaviour,
                                  encode=self.features)
        self.pending_action = self.stepper.pending_action
        self.components |= {"weights": self.weights, "pending_action": self.pending_action}
        self.runs = torch.arange(config.n_runs, device=self.device)
        self._actions = torch.arange(self.n_actions, device=self.device)
        self._row_start = self._action_rows(self.runs)

    @property
    def w(self) -> Tensor:
        """The weights ``[R, A, F]``."""
        return self.weights.w

    # ---- features and values --------------------------------------------------------------------------------

    def features(self, obs: Tensor) -> Tensor:
        """Active feature indices ``[N, n]`` of observations ``[N, ...]``."""
        if self.coder is None:
            return obs.long().reshape(-1, 1)
        return self.coder(obs)

    def q_values(self, active: Tensor, runs: Tensor | None = None) -> Tensor:
        """Q(s, .) = sum of the active weights, ``[N, A]``: row ``i`` uses run ``runs[i]`` (default: row i is run i)."""
        # Flat positions of w[run, a, i] for every action and active i: [N, A, n], one gather, summed over i.
        rows = self._row_start if runs is None else self._action_rows(runs)
        return self.w.view(-1).take(rows + active.unsqueeze(1)).sum(-1)

    def _action_rows(self, runs: Tensor) -> Tensor:
        """Flat offsets of the weight rows w[run, a, :] ``[N, A, 1]``."""
        return ((runs.unsqueeze(1) * self.n_actions + self._actions) * self.n_features).unsqueeze(-1)

    def action_values(self, obs: Tensor, run: int = 0) -> Tensor:
        """One run's Q(s, .) ``[N, A]`` at any batch of observations (e.g. a grid, for a cost-to-go picture)."""
        obs = torch.as_tensor(obs, device=self.device)
        active = self.features(obs)
        return self.q_values(active, torch.full((active.shape[0],), run, dtype=torch.int64, device=self.device))

    def update(self, active: Tensor, actions: Tensor, target: Tensor) -> Tensor:
        """One semi-gradient step of every run: ``w[r, a_r, i] += (alpha / n) (y_r - Q(s_r, a_r))`` for the active
        ``i`` of run ``r``; returns the TD errors ``y - Q(s, a)`` ``[R]`` (before the step)."""
        # Flat positions of the n weights w[r, a_r, i], i active in s_r: [R, n]; they are distinct (one per run and
        # tiling), so index_add_ adds each step once.
        index = (self.runs * self.n_actions + actions).mul_(self.n_features).unsqueeze(1) + active
        flat = self.w.view(-1)
        error = target - flat.take(index).sum(-1)
        step = (self.config.alpha / self.n_active) * error
        flat.index_add_(0, index.view(-1), step.unsqueeze(1).expand_as(index).reshape(-1))
        return error

    def targets(self, t: FeatureTransition) -> Tensor:
        """The TD target y ``[R]`` of a transition (discounted by gamma; r alone where s' is terminal)."""
        q_next = self.q_values(t.next_active)
        if self.config.target == "sarsa":
            return sarsa_target(t.reward, self.config.gamma, q_next, t.next_action, t.terminated)
        return q_learning_target(t.reward, self.config.gamma, q_next, t.terminated)

    # ---- behaviour policy and collecting --------------------------------------------------------------------

    def epsilon(self) -> Tensor:
        """Each run's current epsilon ``[R]``, from the episodes it has finished (``epsilon_schedule``)."""
        return self.behaviour.epsilon()

    def behaviour_action(self, active: Tensor) -> Tensor:
        """a ~ pi_behaviour(.|s_r) for every run ``[R]`` from its Q at its active features."""
        return self.behaviour.sample(self.q_values(active))

    def collect(self, steps: int) -> Iterator[Transition]:
        """Step every run ``steps`` times with the behaviour policy, yielding each transition with the active
        features of ``obs`` and ``next_obs`` (``active``, ``next_active``; each state's features are computed once).

        The tabular learners' step loop (:class:`~thorndike.tabular.base.RunStepper`): ``next_obs`` is the true next
        state, SARSA's a' is drawn at it before the caller's update, episodes (and epsilon) count after the update.
        """
        return self.stepper.collect(steps, self.behaviour_action, next_action=self.config.target == "sarsa")

    def log_stats(self) -> dict[str, float]:
        return {"epsilon": float(self.epsilon().mean()), "w_abs_mean": float(self.w.abs().mean()),
                "episodes_per_run": float(self.weights.episodes.double().mean())}

    def learn(self, total_steps: int) -> LinearQ:
        """Give every run ``total_steps`` steps (or stop at the run's ``stop_return``)."""
        with self.session(total_steps) as run:
            while run.running():
                for t in self.collect(self.steps_this_iteration(self.config.log_every)):
                    self.update(t.active, t.action, self.targets(t))
                run.log(self.log_stats())
        return self

    # ---- acting, state --------------------------------------------------------------------------------------

    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """Greedy (or epsilon-greedy) actions; row ``b`` of ``obs`` follows run ``b % n_runs``."""
        obs = obs.to(self.device)
        runs = run_of_row(obs.shape[0], self.config.n_runs, self.device)
        return self.behaviour.evaluation_action(self.q_values(self.features(obs), runs), runs, deterministic, generator)

    def write_pictures(self, run_dir: Path) -> list[Path]:
        """``curve.png`` and ``episodes.png`` (the return per episode, mean over the runs)."""
        return super().write_pictures(run_dir) + write_episode_curve(self, self.history, run_dir)
