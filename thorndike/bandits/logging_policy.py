"""The notes' feature-based recommender as a logging policy, and logged data drawn from any policy.

``FeatureQ`` (:mod:`thorndike.tabular.recommender`, 000 L409-L413) keys Q by (user feature, item feature); here its
"users" are the world's 30 contexts (age, favourite genre) and its "movies" the items (genre, era). It learns from
rewards logged by some earlier policy (:meth:`FeatureQ.update` with the rewards as ratings) and then recommends by a
softmax over its scores, so every item keeps a known, positive propensity mu(a | c): what IPS and DR need.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from thorndike.core.exploration import boltzmann_probs, epsilon_greedy_probs, sample
from thorndike.envs.recommendation_bandit import RecommendationWorld
from thorndike.envs.recommender import AGES, ERAS, GENRES
from thorndike.tabular.recommender import FeatureQ

__all__ = ["LoggedData", "feature_q_for_world", "feature_q_policy", "log_interactions"]


class LoggedData(NamedTuple):
    """Logged rows, each of shape ``[..., N]``: context, action, reward and the logging propensity mu(a | c)."""

    contexts: Tensor
    actions: Tensor
    rewards: Tensor
    propensities: Tensor


def feature_q_for_world(world: RecommendationWorld, **kwargs: object) -> FeatureQ:
    """An untrained ``FeatureQ`` over the world's contexts (age, favourite genre) and items (genre, era)."""
    return FeatureQ(world.context_attributes, world.item_attributes, (len(AGES), len(GENRES)),
                    (len(GENRES), len(ERAS)), **kwargs)  # type: ignore[arg-type]


def feature_q_policy(model: FeatureQ, temperature: float = 0.1, epsilon: float | None = None) -> Tensor:
    """pi(a | c) ``[C, A]`` of a softmax with ``temperature`` over the model's scores (or, with ``epsilon``,
    epsilon-greedy over them): every item keeps a positive probability when temperature > 0 or epsilon > 0."""
    scores = model.score_matrix()
    if epsilon is not None:
        return epsilon_greedy_probs(scores, epsilon)
    return boltzmann_probs(scores, temperature)


def log_interactions(world: RecommendationWorld, probs: Tensor, shape: tuple[int, ...] | int,
                     generator: torch.Generator | None = None) -> LoggedData:
    """Users arrive (``shape`` of them), the policy ``probs`` ``[C, A]`` picks an item, the reward comes back; the
    propensity of each chosen item is recorded with it."""
    contexts = world.sample_contexts(shape, generator)
    actions = sample(probs[contexts], generator)
    rewards = world.sample_rewards(contexts, actions, generator)
    return LoggedData(contexts, actions, rewards, probs[contexts, actions])
