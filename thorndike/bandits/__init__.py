"""Contextual bandits for recommendation (issue #19): epsilon-greedy, UCB1 and LinUCB agents that run many
independent runs at once, :func:`play` with exact regret, and off-policy evaluation (IPS, doubly robust).

The world they play is :mod:`thorndike.envs.recommendation_bandit`; the notes' ``FeatureQ``
(:mod:`thorndike.tabular.recommender`) serves as a logging policy through :func:`feature_q_policy`.
"""

from thorndike.bandits.epsilon_greedy import EpsilonGreedy, EpsilonGreedyConfig
from thorndike.bandits.linucb import LinUCB, LinUCBConfig, linucb_scores, ridge_regression, sherman_morrison_update
from thorndike.bandits.logging_policy import LoggedData, feature_q_policy, log_interactions
from thorndike.bandits.off_policy_evaluation import (
    OffPolicyEstimate,
    doubly_robust_estimate,
    ips_estimate,
    mean_estimate,
)
from thorndike.bandits.play import BanditAgent, BanditRun, play
from thorndike.bandits.ucb import UCB, UCBConfig

__all__ = [
    "BanditAgent",
    "BanditRun",
    "EpsilonGreedy",
    "EpsilonGreedyConfig",
    "LinUCB",
    "LinUCBConfig",
    "LoggedData",
    "OffPolicyEstimate",
    "UCB",
    "UCBConfig",
    "doubly_robust_estimate",
    "feature_q_policy",
    "ips_estimate",
    "linucb_scores",
    "log_interactions",
    "mean_estimate",
    "play",
    "ridge_regression",
    "sherman_morrison_update",
]
