"""UCB1 on sample means: optimism in the face of uncertainty (000 L391).

Per context cell (or one table for all contexts with ``per_context=False``) the item recommended is

    argmax_a  Q(c, a) + c_ucb sqrt(ln N(c) / n(c, a)),      N(c) = sum_a n(c, a),

with every untried item first (its score is +inf; ``thorndike.core.exploration.ucb_scores``), ties broken uniformly.
Q(c, a) is the sample mean (alpha = 1/n, as in :mod:`.epsilon_greedy`). Auer et al.'s UCB1 has c_ucb = sqrt(2) for
rewards in [0, 1]; a table per context pays that exploration once per (context, item) cell, which is what LinUCB's
shared features avoid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.bandits.epsilon_greedy import sample_mean_update
from thorndike.config import check, check_limits, describe
from thorndike.core.exploration import greedy_probs, sample, ucb_scores
from thorndike.envs.recommendation_bandit import RecommendationWorld

__all__ = ["UCB", "UCBConfig"]


@dataclass
class UCBConfig:
    """UCB1's settings."""

    c: float = describe("width of the bonus c sqrt(ln N / n) (UCB1: sqrt(2) for rewards in [0, 1])", math.sqrt(2.0))
    per_context: bool = describe("one table per context cell (True) or one for all contexts (False)", True)

    def __post_init__(self) -> None:
        check(self.c >= 0.0, "c", self.c, ">= 0")
        check_limits(self)


class UCB:
    """``n_runs`` UCB1 bandits over ``world``'s items; tables ``q``, ``counts`` ``[R, cells, A]``."""

    def __init__(self, world: RecommendationWorld, config: UCBConfig | None = None, n_runs: int = 1) -> None:
        self.config = config or UCBConfig()
        cells = world.n_contexts if self.config.per_context else 1
        self.q = torch.zeros(n_runs, cells, world.n_items, dtype=torch.float64)
        self.counts = torch.zeros(n_runs, cells, world.n_items, dtype=torch.int64)
        self.runs = torch.arange(n_runs)

    def cells(self, contexts: Tensor) -> Tensor:
        return contexts if self.config.per_context else torch.zeros_like(contexts)

    def scores(self, contexts: Tensor) -> Tensor:
        """Each run's UCB scores of every item for its context ``[R, A]``."""
        cells = self.cells(contexts)
        return ucb_scores(self.q[self.runs, cells], self.counts[self.runs, cells], self.config.c)

    def act(self, contexts: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The best-scoring item per run (a uniform pick among ties, e.g. among untried items)."""
        return sample(greedy_probs(self.scores(contexts)), generator)

    def update(self, contexts: Tensor, actions: Tensor, rewards: Tensor) -> None:
        index = (self.runs, self.cells(contexts), actions)
        self.q[index], self.counts[index] = sample_mean_update(self.q[index], self.counts[index], rewards.double())
