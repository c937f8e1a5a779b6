"""Tabular double Q-learning: two tables, one picks the next action and the other evaluates it.

Notes: 003 lecture 4 (L423-L459; INVENTORY A52). Q-learning's target max_a' Q(s', a') overestimates when the
estimates are noisy: the max of noisy values is biased upward (Jensen, L427-L429). Double Q-learning keeps two tables
Q^(1), Q^(2), and on every step of every run picks one of them, j, with probability 1/2; i is the other:

    target = r + gamma * Q^(i)(s', argmax_a' Q^(j)(s', a'))       (r alone when s' is terminal)
    Q^(j)(s, a) <- Q^(j)(s, a) + alpha (target - Q^(j)(s, a))      (Q^(i) is left unchanged)

The selector's noise and the evaluator's are independent, so the evaluated action is not the one whose value happened
to be overestimated (Sutton and Barto, section 6.7; the maximisation-bias example 6.7 is
tests/tabular/test_classic_results.py). The behaviour policy (epsilon-greedy by default) and the greedy policy act on
the tables' mean (Q^(1) + Q^(2)) / 2, which has the argmax of their sum.

With ``alpha_schedule="1/n"`` each table counts its own updates: the step size of Q^(j)(s, a) is 1 / (updates of
Q^(j)(s, a), this one included), so each table is the plain average of its own targets. (Counting the pair's updates in
either table would give each table steps near 1 / (2k) at its k-th update, which forgets the initial value only as
1 / sqrt(k).)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from thorndike.core.targets import double_q_target
from thorndike.tabular.base import TabularAgent, TabularConfig

__all__ = ["DoubleQLearning", "DoubleQLearningConfig", "FirstTableUpdates"]


@dataclass
class DoubleQLearningConfig(TabularConfig):
    """Double Q-learning's hyperparameters: those of every tabular learner (see :class:`TabularConfig`)."""


class DoubleQLearning(TabularAgent):
    """Tabular double Q-learning: two tables; each step one (chosen at random) is updated toward the other's value
    of its own greedy action."""

    name = "double_q_learning"
    Config = DoubleQLearningConfig
    table_names = ("q1", "q2")

    @property
    def q(self) -> Tensor:
        """The action values the agent acts on, ``[R, S, A]``: the mean of the two tables."""
        return (self.tables["q1"] + self.tables["q2"]) / 2

    def build(self) -> None:
        super().build()
        self.first_updates = FirstTableUpdates(self.tables.visits)
        self.components["first_updates"] = self.first_updates

    def behaviour_q(self, states: Tensor) -> Tensor:
        return (self.tables.rows("q1", states) + self.tables.rows("q2", states)) / 2

    def table_alpha(self, states: Tensor, actions: Tensor, first: Tensor) -> Tensor | float:
        """The step size of this update of each run's chosen table (``first``: Q^(1)): alpha, or 1 / (updates of
        that table's (s, a), this one included)."""
        if self.config.alpha_schedule != "1/n":
            return self.config.alpha
        runs = self.tables.runs
        n_first = self.first_updates.counts[runs, states, actions]
        n_both = self.tables.visits[runs, states, actions]  # collect counts the step after this update
        return 1.0 / (torch.where(first, n_first, n_both - n_first) + 1).double()

    def learn(self, total_steps: int) -> DoubleQLearning:
        """Give every run ``total_steps`` steps (or stop at the run's ``stop_return``)."""
        config = self.config
        with self.session(total_steps) as run:
            while run.running():
                for t in self.collect(self.steps_this_iteration(self.config.log_every)):
                    q1_next, q2_next = self.tables.rows("q1", t.next_obs), self.tables.rows("q2", t.next_obs)
                    update_first = torch.rand(t.obs.shape, generator=self.generator, device=self.device) < 0.5
                    target = torch.where(
                        update_first,
                        double_q_target(t.reward, config.gamma, q1_next, q2_next, t.terminated),  # Q1 selects
                        double_q_target(t.reward, config.gamma, q2_next, q1_next, t.terminated),  # Q2 selects
                    )
                    alpha = self.table_alpha(t.obs, t.action, update_first)
                    self.tables.update("q1", t.obs, t.action, target, alpha, active=update_first)
                    self.tables.update("q2", t.obs, t.action, target, alpha, active=~update_first)
                    self.first_updates.add(t.obs, t.action, update_first)
                run.log(self.log_stats())
        return self


class FirstTableUpdates:
    """How many of each (s, a)'s updates went to Q^(1), ``[R, S, A]`` (Q^(2) had the rest of ``Tables.visits``);
    a checkpoint component."""

    def __init__(self, like: Tensor) -> None:
        self.counts = torch.zeros_like(like)
        self.runs = torch.arange(like.shape[0], device=like.device)

    def add(self, states: Tensor, actions: Tensor, first: Tensor) -> None:
        self.counts[self.runs, states, actions] += first.to(self.counts.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts.copy_(state["counts"])
