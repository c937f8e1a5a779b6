"""Tabular Dyna-Q: Q-learning on every real step plus ``planning_steps`` Q-learning updates on remembered steps.

Notes: 003 L1470 only names Dyna-Q as a model-based method (INVENTORY A91: the algorithm is not in the notes); this is
Sutton and Barto's tabular Dyna-Q (section 8.2). On every real step of every run:

    (d) direct RL:   Q(s, a) <- Q(s, a) + alpha (r + gamma max_a' Q(s', a') - Q(s, a))
    (e) model:       Model(s, a) <- (r, s', terminated)
    (f) planning, planning_steps times:
                     (s~, a~) <- a previously observed pair, uniformly at random
                     (r~, s~', terminated~) <- Model(s~, a~)
                     Q(s~, a~) <- Q(s~, a~) + alpha (r~ + gamma max_a' Q(s~', a') - Q(s~, a~))

The model is per run: ``[R, S, A]`` tensors of the last reward, next state and termination seen for each pair, and an
``observed`` mask (a checkpoint component, :class:`DeterministicModel`). Each planning step draws one observed pair
per run, uniformly, by inverse CDF over the cumulative count of the flattened mask; the planning updates of one real
step run in sequence, since each reads the table the previous one wrote. A time-limit truncation is not part of the
dynamics, so the model stores termination only and planning bootstraps through a truncated step.

Deterministic dynamics are assumed, as in the book: the model remembers only the LAST outcome of each (s, a). On a
stochastic env (slippery FrozenLake, the maximisation-bias example's B) planning therefore replays one sampled outcome
as if it were certain: between real visits to (s, a) every planning update pulls Q(s, a) toward the same r + gamma
max Q(s', .), so the values follow the most recent sample rather than the expectation, with more variance the more
planning steps there are. Q-learning's real updates still average the outcomes; a model of the distribution
(counts of (s, a, s') and mean rewards) would remove the problem and is not done here.

With ``alpha_schedule="1/n"``, n(s, a) counts real visits only: planning updates do not shrink the step size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from thorndike.config import check, describe
from thorndike.core.resources import require_memory
from thorndike.core.targets import incremental_update, q_learning_target
from thorndike.tabular.base import TabularAgent, TabularConfig
from thorndike.tabular.q_learning import q_learning_update

__all__ = ["DeterministicModel", "DynaQ", "DynaQConfig"]


@dataclass
class DynaQConfig(TabularConfig):
    """Dyna-Q's hyperparameters: those of every tabular learner, and the planning updates per real step."""

    # each planning step is an update of every run: 10,000 per real step is already hours for a small maze
    planning_steps: int = describe("Q-learning updates on remembered (s, a) after every real step (0: Q-learning)", 5,
                                   at_most=10_000)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.planning_steps >= 0, "planning_steps", self.planning_steps, ">= 0")


class DeterministicModel:
    """The last observed (r, s', terminated) of every (s, a) of every run, ``[R, S, A]`` each, and which pairs have
    been observed; a checkpoint component."""

    def __init__(self, n_runs: int, n_states: int, n_actions: int, device: torch.device | str = "cpu") -> None:
        shape = (n_runs, n_states, n_actions)
        require_memory("the learned model", math.prod(shape) * 18, device, {"n_runs": n_runs},
                       f"{n_states:,} states x {n_actions:,} actions")
        self.reward = torch.zeros(shape, dtype=torch.float64, device=device)
        self.next_state = torch.zeros(shape, dtype=torch.int64, device=device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=device)
        self.observed = torch.zeros(shape, dtype=torch.bool, device=device)
        self.runs = torch.arange(n_runs, device=device)
        self.n_actions = n_actions

    def store(self, states: Tensor, actions: Tensor, rewards: Tensor, next_states: Tensor,
              terminated: Tensor) -> None:
        """Remember each run's step (its last outcome of (s, a) replaces any earlier one)."""
        index = (self.runs, states, actions)
        self.reward[index] = rewards
        self.next_state[index] = next_states
        self.terminated[index] = terminated
        self.observed[index] = True

    def sample(self, k: int, generator: torch.Generator | None) -> Tensor:
        """``k`` observed (s, a) per run, each uniform over the run's observed pairs, as flat indices ``[k, R]`` into
        the model's (and a Q table's) ``[R * S * A]`` view.

        Every run must have observed a pair. The count of observed pairs up to each flat index is a step function
        rising by 1 at each observed pair; the first index whose count exceeds u ~ U[0, total) is uniform over them.
        """
        counts = self.observed.flatten(1).cumsum(-1, dtype=torch.float64)  # [R, S*A]
        u = torch.rand((counts.shape[0], k), generator=generator, dtype=torch.float64, device=counts.device)
        pair = torch.searchsorted(counts, u * counts[:, -1:], right=True).clamp_max(counts.shape[1] - 1)
        return (pair + (self.runs * counts.shape[1]).unsqueeze(1)).t()

    def outcomes(self, flat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The remembered (r, s', terminated) at flat indices from :meth:`sample` (any shape)."""
        return self.reward.view(-1)[flat], self.next_state.view(-1)[flat], self.terminated.view(-1)[flat]

    def state_dict(self) -> dict[str, Any]:
        return {"reward": self.reward.clone(), "next_state": self.next_state.clone(),
                "terminated": self.terminated.clone(), "observed": self.observed.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["observed"].shape) != tuple(self.observed.shape):
            raise ValueError(f"checkpoint model {tuple(state['observed'].shape)} does not fit this agent's "
                             f"{tuple(self.observed.shape)} (n_runs, states, actions)")
        for name in ("reward", "next_state", "terminated", "observed"):
            getattr(self, name).copy_(state[name])


class DynaQ(TabularAgent):
    """Tabular Dyna-Q: Q-learning plus planning updates replayed from a learned deterministic model."""

    name = "dyna_q"
    Config = DynaQConfig

    def build(self) -> None:
        super().build()
        self.learned_model = DeterministicModel(self.config.n_runs, self.n_states, self.n_actions, self.device)
        self.components["learned_model"] = self.learned_model

    def learn(self, total_steps: int) -> DynaQ:
        """Give every run ``total_steps`` real steps (or stop at the run's ``stop_return``)."""
        config = self.config
        with self.session(total_steps) as run:
            while run.running():
                for t in self.collect(self.steps_this_iteration(config.log_every)):
                    q_learning_update(self, t)  # (d) direct RL
                    self.learned_model.store(t.obs, t.action, t.reward, t.next_obs, t.terminated)
                    self.plan(config.planning_steps)
                run.log(self.log_stats())
        return self

    def plan(self, steps: int) -> None:
        """``steps`` Q-learning updates of every run on pairs drawn from its model, one after the other."""
        if steps == 0:
            return
        # The model does not change while planning, so all the draws and their outcomes are read at once; the updates
        # go through flat views of the Q table (one index per run instead of (run, s, a)).
        flat = self.learned_model.sample(steps, self.generator)  # [k, R]
        reward, next_state, terminated = self.learned_model.outcomes(flat)
        q = self.tables["q"]
        q_flat, q_rows = q.view(-1), q.view(-1, self.n_actions)
        next_row = next_state + (self.tables.runs * self.n_states).unsqueeze(0)  # row of (run, s') in q_rows
        if self.config.alpha_schedule == "1/n":
            alphas = (1.0 / (self.tables.visits.view(-1)[flat] + 1).double()).unbind()
        else:
            alphas = (self.config.alpha,) * steps
        gamma = self.config.gamma
        for f, row, r, term, alpha in zip(flat.unbind(), next_row.unbind(), reward.unbind(), terminated.unbind(),
                                          alphas, strict=True):
            target = q_learning_target(r, gamma, torch.index_select(q_rows, 0, row), term)
            old = torch.index_select(q_flat, 0, f)
            q_flat.index_copy_(0, f, incremental_update(old, target, alpha))
