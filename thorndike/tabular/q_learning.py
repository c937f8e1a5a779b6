"""Tabular Q-learning (sarsamax).

Notes: 000 lecture 2 (L116-L136: sample-based Q-value iteration, off-policy, converges when every (s, a) is visited
infinitely often and the step sizes sum to infinity with a finite sum of squares), 000 L253-L277 and L415,
001 unit 2 (L55-L63, FrozenLake and Taxi), 003 lecture 3 (L251-L265, L313-L321). Each step of each run:

    a ~ behaviour(.|s)                      (epsilon-greedy by default; see TabularConfig.exploration)
    Q_hat = r + gamma * max_a' Q(s', a')    (Q_hat = r when s' is terminal)
    Q(s, a) <- Q(s, a) + alpha * (Q_hat - Q(s, a))

The notes' first formula (000 L120) writes the update as an expectation over s' ~ P: that is Q-value iteration and
needs the model (thorndike.planning.q_value_iteration); Q-learning replaces the expectation by the one sampled s'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from thorndike.core.targets import q_learning_target, q_learning_target_value
from thorndike.tabular.base import TabularAgent, TabularConfig, Transition

__all__ = ["QLearning", "QLearningConfig", "q_learning_scalar_target", "q_learning_update"]


@dataclass
class QLearningConfig(TabularConfig):
    """Q-learning's hyperparameters: those of every tabular learner (see :class:`TabularConfig`)."""


def q_learning_scalar_target(reward: float, gamma: float, q_next: list[float], terminated: bool, next_action: int,
                             next_probs: Callable[[], list[float]]) -> float:
    """:func:`q_learning_update`'s target for one run on plain numbers (the few-runs path,
    :mod:`thorndike.tabular.scalar`): r + gamma max_a' Q(s', a'), r where s' is terminal."""
    return q_learning_target_value(reward, gamma, q_next, terminated)


class QLearning(TabularAgent):
    """Tabular Q-learning: off-policy TD control toward r + gamma max_a' Q(s', a')."""

    name = "q_learning"
    Config = QLearningConfig
    scalar_target = staticmethod(q_learning_scalar_target)

    def learn(self, total_steps: int) -> QLearning:
        """Give every run ``total_steps`` steps (or stop at the run's ``stop_return``)."""
        config = self.config
        with self.session(total_steps) as run:
            while run.running():
                steps = self.steps_this_iteration(config.log_every)
                if self.scalar is not None:  # few runs: the same steps and updates in plain Python
                    self.scalar.learn(steps)
                else:
                    for t in self.collect(steps):
                        q_learning_update(self, t)
                run.log(self.log_stats())
        return self


def q_learning_update(agent: TabularAgent, t: Transition) -> Tensor:
    """One Q-learning update of every run's table ``q`` from a transition: the target r + gamma max_a' Q(s', a')
    (r where s' is terminal), then Q(s, a) <- Q(s, a) + alpha (target - Q(s, a)). Returns the TD errors ``[R]``."""
    target = q_learning_target(t.reward, agent.config.gamma, agent.tables.rows("q", t.next_obs), t.terminated)
    return agent.tables.update("q", t.obs, t.action, target, agent.alpha(t.obs, t.action))

