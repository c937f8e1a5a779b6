"""Epsilon-greedy on sample means: the simplest bandit baseline (000 L127, L382; 003 L292).

Per context cell (or, with ``per_context=False``, one table for every context: a context-blind multi-armed bandit)
each item's value is the mean of the rewards it got there, kept exactly with alpha = 1/n:

    Q(c, a) <- Q(c, a) + (r - Q(c, a)) / n(c, a)

and the item recommended is argmax_a Q(c, a) with probability 1 - epsilon (ties broken uniformly) or a uniform item
with probability epsilon (``thorndike.core.exploration.epsilon_greedy_sample``). Untried items keep ``q_init``.

The agent runs ``n_runs`` independent bandits at once (a leading run dimension on every table), one context each
per step, so several seeds cost one pass of tensor ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.config import check, check_limits, describe
from thorndike.core.exploration import epsilon_greedy_sample
from thorndike.core.targets import incremental_update
from thorndike.envs.recommendation_bandit import RecommendationWorld

__all__ = ["EpsilonGreedy", "EpsilonGreedyConfig", "sample_mean_update"]


@dataclass
class EpsilonGreedyConfig:
    """Epsilon-greedy's settings."""

    epsilon: float = describe("probability of a uniform item instead of the best-looking one", 0.1)
    per_context: bool = describe("one table per context cell (True) or one for all contexts (False)", True)
    q_init: float = describe("value of an item not tried yet", 0.0)

    def __post_init__(self) -> None:
        check(0.0 <= self.epsilon <= 1.0, "epsilon", self.epsilon, "in [0, 1]")
        check_limits(self)


def sample_mean_update(q: Tensor, counts: Tensor, rewards: Tensor) -> tuple[Tensor, Tensor]:
    """One reward per entry into a running mean: (Q + (r - Q) / (n + 1), n + 1). Same shapes as ``q``."""
    counts = counts + 1
    return incremental_update(q, rewards, 1.0 / counts.double()), counts


class EpsilonGreedy:
    """``n_runs`` epsilon-greedy bandits over ``world``'s items; tables ``q``, ``counts`` ``[R, cells, A]``."""

    def __init__(self, world: RecommendationWorld, config: EpsilonGreedyConfig | None = None, n_runs: int = 1) -> None:
        self.config = config or EpsilonGreedyConfig()
        cells = world.n_contexts if self.config.per_context else 1
        self.q = torch.full((n_runs, cells, world.n_items), self.config.q_init, dtype=torch.float64)
        self.counts = torch.zeros(n_runs, cells, world.n_items, dtype=torch.int64)
        self.runs = torch.arange(n_runs)

    def cells(self, contexts: Tensor) -> Tensor:
        return contexts if self.config.per_context else torch.zeros_like(contexts)

    def act(self, contexts: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One item per run for its context ``[R]``."""
        return epsilon_greedy_sample(self.q[self.runs, self.cells(contexts)], self.config.epsilon, generator)

    def update(self, contexts: Tensor, actions: Tensor, rewards: Tensor) -> None:
        """Each run's (context, item, reward) into its table."""
        index = (self.runs, self.cells(contexts), actions)
        self.q[index], self.counts[index] = sample_mean_update(self.q[index], self.counts[index], rewards.double())
