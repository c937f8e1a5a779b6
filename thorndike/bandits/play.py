"""Play a bandit agent against a :class:`~thorndike.envs.recommendation_bandit.RecommendationWorld` and keep the
exact expected regret of every step.

Any object with ``act(contexts, generator) -> actions`` and ``update(contexts, actions, rewards)`` over ``R`` runs
at once plays (:class:`~.epsilon_greedy.EpsilonGreedy`, :class:`~.ucb.UCB`, :class:`~.linucb.LinUCB`). The regret of
a step is max_a E[r | c, a] - E[r | c, a_t] (the pseudo-regret: the expectation, not the noisy reward), so a
cumulative regret curve is exact given the agent's choices.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from thorndike.envs.recommendation_bandit import RecommendationWorld

__all__ = ["BanditAgent", "BanditRun", "play"]


class BanditAgent(Protocol):
    def act(self, contexts: Tensor, generator: torch.Generator | None = None) -> Tensor: ...

    def update(self, contexts: Tensor, actions: Tensor, rewards: Tensor) -> None: ...


class BanditRun(NamedTuple):
    """What :func:`play` saw, each ``[R, T]``: contexts, actions, rewards and the exact expected regret per step."""

    contexts: Tensor
    actions: Tensor
    rewards: Tensor
    regret: Tensor

    @property
    def cumulative_regret(self) -> Tensor:
        return self.regret.cumsum(1)


def play(world: RecommendationWorld, agent: BanditAgent, steps: int, n_runs: int, seed: int = 0) -> BanditRun:
    """``steps`` rounds of: a user arrives in each of ``n_runs`` runs, the agent recommends, the reward comes back
    and the agent learns from it. Contexts come from a generator seeded with ``seed``, the agent's own randomness
    from ``seed + 1`` and the users' reward noise from ``seed + 2`` (one standard normal per user, whatever the item),
    so two agents on the same seed face the same users with the same noise."""
    users = torch.Generator().manual_seed(seed)
    choices = torch.Generator().manual_seed(seed + 1)
    contexts = world.sample_contexts((steps, n_runs), users)
    noise = torch.Generator().manual_seed(seed + 2)
    actions = torch.empty(steps, n_runs, dtype=torch.int64)
    rewards = torch.empty(steps, n_runs, dtype=torch.float64)
    for t in range(steps):
        actions[t] = agent.act(contexts[t], choices)
        rewards[t] = world.sample_rewards(contexts[t], actions[t], noise)
        agent.update(contexts[t], actions[t], rewards[t])
    return BanditRun(contexts.T, actions.T, rewards.T, world.regret(contexts, actions).T)
