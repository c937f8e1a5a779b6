"""C51: categorical DQN, which learns the distribution of the return on a fixed support instead of its mean.

Notes: 003 lecture 5 (F3 L540-L596; the math is in :mod:`thorndike.core.distributional`). The network outputs
logits h(s, a) ``[A, N]``; p_i(s, a) = softmax_i h(s, a) are the probabilities of the atoms z_i = V_min + i dz and
Q(s, a) = sum_i p_i(s, a) z_i. Each gradient step, on a replayed (n-step) transition (s, a, R, s', discount):

    a* = argmax_a' sum_i p_i(s', a'; theta^-) z_i             (double: p(s', a'; theta) picks a*)
    m  = Phi(R + discount * z, p(s', a*; theta^-))            (the shifted atoms projected back onto z)
    theta <- theta - lr grad mean_b w_b (-sum_i m_i log p_i(s_b, a_b; theta))

with discount = gamma^m (1 - terminated), w_b the importance weights of prioritised replay (1 without), whose
priorities are the per-sample cross-entropies (as in Rainbow). Acting is epsilon-greedy on Q = E[Z], and the loop
(replay, schedule, target updates, logging) is DQN's (:class:`thorndike.core.off_policy.OffPolicyLoop`).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor

from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.core.distributional import (
    action_distribution,
    categorical_cross_entropy,
    categorical_expectation,
    categorical_projection,
    categorical_support,
)
from thorndike.core.networks import adam
from thorndike.core.off_policy import EpsilonGreedyConfig, OffPolicyLoop, online_and_target
from thorndike.core.q_heads import q_network

__all__ = ["C51", "C51Config", "c51_loss", "c51_target", "expected_q"]


@dataclass
class C51Config(EpsilonGreedyConfig):
    """C51's hyperparameters: the DQN family's replay, schedule and epsilon fields, and the support."""

    n_atoms: int = describe("atoms of the categorical support", 51, at_most=10_000)
    v_min: float = describe("the support's lowest return V_min", -10.0)
    v_max: float = describe("the support's highest return V_max", 10.0)
    double: bool = describe("the online network picks a* at s', the target network's distribution is projected",
                            False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_atoms >= 2, "n_atoms", self.n_atoms, ">= 2")
        check(self.v_min < self.v_max, "v_max", self.v_max, f"> v_min = {self.v_min}")


# ---- the math (pure functions; hand-checked in tests/value_based/test_c51.py) ----------------------------------


def expected_q(logits: Tensor, support: Tensor) -> Tensor:
    """Q(s, a) = sum_i softmax(h(s, a))_i z_i: logits ``[B, A, N]`` -> ``[B, A]``; its argmax is the greedy action."""
    return categorical_expectation(torch.softmax(logits, dim=-1), support)


def c51_target(rewards: Tensor, discounts: Tensor, next_logits_target: Tensor, support: Tensor,
               next_logits_online: Tensor | None = None) -> Tensor:
    """The projected target distribution m ``[B, N]`` of R + discount * Z(s', a*; theta^-).

    a* = argmax of the expectation of the target network's distributions (``next_logits_target`` ``[B, A, N]``), or
    of the online network's (``next_logits_online``) for double targets; ``discounts`` already gamma^m (1 - done).
    """
    probs_target = torch.softmax(next_logits_target, dim=-1)
    selector = probs_target if next_logits_online is None else torch.softmax(next_logits_online, dim=-1)
    best = categorical_expectation(selector, support).argmax(-1)
    return categorical_projection(action_distribution(probs_target, best), rewards, discounts, support)


def c51_loss(logits: Tensor, actions: Tensor, target_probs: Tensor) -> Tensor:
    """Per-sample cross-entropy -sum_i m_i log p_i(s, a) of the taken actions: logits ``[B, A, N]``, actions
    ``[B]``, target ``[B, N]`` -> ``[B]``."""
    return categorical_cross_entropy(action_distribution(logits, actions.long()), target_probs)


# ---- the agent -------------------------------------------------------------------------------------------------


class C51(Agent):
    """C51: categorical distributional DQN (projected cross-entropy targets), epsilon-greedy on the expectation."""

    name = "c51"
    Config = C51Config
    action_spaces = (gym.spaces.Discrete,)

    def build(self) -> None:
        config = self.config
        envs = self.connect_env(config.n_envs)
        self.n_actions = int(envs.action_space.n)
        OffPolicyLoop.require_networks(self, envs, config, config.n_atoms)
        self.q, self.q_target = online_and_target(
            lambda: q_network(envs.observation_space, self.n_actions, config.hidden_sizes, n_atoms=config.n_atoms),
            self.device)
        self.support = categorical_support(config.v_min, config.v_max, config.n_atoms, device=self.device)
        self.optimizer = adam(self.q.parameters(), lr=config.lr, device=self.device)
        self.loop = OffPolicyLoop(self, envs, config, self.q, self.q_target, self.optimizer, config.epsilon_schedule())
        self.buffer, self.schedule = self.loop.buffer, self.loop.schedule
        self.components = {"q": self.q, "q_target": self.q_target, "optimizer": self.optimizer,
                           **self.loop.components()}

    # ---- collect -> targets -> update -> log ----------------------------------------------------------------

    def greedy(self, obs: Tensor) -> Tensor:
        """argmax_a E[Z(s, a)]."""
        return expected_q(self.q(obs), self.support).argmax(-1)

    @torch.no_grad()
    def collect_step(self) -> None:
        """One vectorised epsilon-greedy step of every copy into the replay buffer."""
        self.loop.store(self.loop.act_epsilon_greedy(self.obs, self.greedy))

    @torch.no_grad()
    def targets(self, batch: dict[str, Tensor]) -> Tensor:
        """The projected target distributions m ``[B, N]`` of a minibatch (theta^- held fixed)."""
        next_obs = batch["next_obs"]
        online = self.q(next_obs) if self.config.double else None
        return c51_target(batch["rewards"].float(), self.loop.bootstrap_discounts(batch), self.q_target(next_obs),
                          self.support, online)

    def gradient_step(self) -> Tensor:
        """One minibatch step on the (weighted) cross-entropy; returns the loss, detached."""
        batch, weights = self.loop.sample()
        losses = c51_loss(self.q(batch["obs"]), batch["actions"], self.targets(batch))
        return self.loop.descend(losses, weights, batch)

    def learn(self, total_steps: int) -> C51:
        """Train until ``total_steps`` env steps or the run's ``stop_return`` (DQN's loop)."""
        self.loop.learn(total_steps, self.collect_step, self.gradient_step, self.loop.epsilon_column)
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """argmax_a E[Z(s, a)] (deterministic), or epsilon-greedy with the final epsilon."""
        greedy = self.greedy(obs.to(self.device))
        return self.loop.greedy_or_epsilon(greedy, deterministic, self.config.epsilon_end, generator)
