"""QR-DQN: distributional DQN by quantile regression: N learned quantiles of the return, no fixed support.

Notes: 003 lecture 5 (F3 L584-L596; the math is in :mod:`thorndike.core.distributional`). The network outputs
theta_i(s, a) ``[A, N]``, the return's quantiles at the midpoints tau_i = (2i + 1) / (2N), and Q(s, a) = mean_i
theta_i(s, a). Each gradient step, on a replayed (n-step) transition (s, a, R, s', discount):

    a* = argmax_a' mean_j theta_j(s', a'; theta^-)
    T theta_j = R + discount * theta_j(s', a*; theta^-)                       (j = 1..N: samples of the target)
    theta <- theta - lr grad mean_b w_b sum_i mean_j rho^kappa_tau_i(T theta_j - theta_i(s_b, a_b; theta))

(the quantile Huber loss, kappa = 1) with discount = gamma^m (1 - terminated) and w_b the importance weights of
prioritised replay (priorities: the per-sample losses). Acting is epsilon-greedy on the mean quantile; the loop is
DQN's (:class:`thorndike.core.off_policy.OffPolicyLoop`).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor

from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.core.distributional import action_distribution, quantile_huber_loss, quantile_midpoints
from thorndike.core.networks import adam
from thorndike.core.off_policy import EpsilonGreedyConfig, OffPolicyLoop, online_and_target
from thorndike.core.q_heads import q_network

__all__ = ["QRDQN", "QRDQNConfig", "qr_loss", "qr_target"]


@dataclass
class QRDQNConfig(EpsilonGreedyConfig):
    """QR-DQN's hyperparameters: the DQN family's replay, schedule and epsilon fields, and the quantiles."""

    n_quantiles: int = describe("quantiles per action (at the midpoints (2i + 1) / 2N)", 50, at_most=10_000)
    kappa: float = describe("the quantile Huber loss's threshold (0: the plain quantile loss)", 1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_quantiles >= 1, "n_quantiles", self.n_quantiles, ">= 1")
        check(self.kappa >= 0, "kappa", self.kappa, ">= 0")


# ---- the math (pure functions; hand-checked in tests/value_based/test_qr_dqn.py) -------------------------------


def qr_target(rewards: Tensor, discounts: Tensor, next_quantiles_target: Tensor) -> Tensor:
    """The target samples R + discount * theta_j(s', a*) ``[B, N]``, a* = argmax of the target network's mean
    quantile (``next_quantiles_target`` ``[B, A, N]``; ``discounts`` already gamma^m (1 - terminated))."""
    best = next_quantiles_target.mean(-1).argmax(-1)
    return rewards.unsqueeze(-1) + discounts.unsqueeze(-1) * action_distribution(next_quantiles_target, best)


def qr_loss(quantiles: Tensor, actions: Tensor, target: Tensor, taus: Tensor, kappa: float = 1.0) -> Tensor:
    """Per-sample quantile Huber loss of the taken actions' quantiles: ``[B, A, N]``, ``[B]``, ``[B, N]`` -> ``[B]``."""
    return quantile_huber_loss(action_distribution(quantiles, actions.long()), target, taus, kappa, reduction="none")


# ---- the agent -------------------------------------------------------------------------------------------------


class QRDQN(Agent):
    """QR-DQN: quantile-regression distributional DQN, epsilon-greedy on the mean quantile."""

    name = "qr_dqn"
    Config = QRDQNConfig
    action_spaces = (gym.spaces.Discrete,)

    def build(self) -> None:
        config = self.config
        envs = self.connect_env(config.n_envs)
        self.n_actions = int(envs.action_space.n)
        OffPolicyLoop.require_networks(self, envs, config, config.n_quantiles)
        # A flat head of A * N outputs, viewed as [A, N] by quantiles(): q_network's n_atoms = 1 would drop the axis
        self.q, self.q_target = online_and_target(
            lambda: q_network(envs.observation_space, self.n_actions * config.n_quantiles, config.hidden_sizes),
            self.device)
        self.taus = quantile_midpoints(config.n_quantiles, device=self.device)
        self.optimizer = adam(self.q.parameters(), lr=config.lr, device=self.device)
        self.loop = OffPolicyLoop(self, envs, config, self.q, self.q_target, self.optimizer, config.epsilon_schedule())
        self.buffer, self.schedule = self.loop.buffer, self.loop.schedule
        self.components = {"q": self.q, "q_target": self.q_target, "optimizer": self.optimizer,
                           **self.loop.components()}

    def quantiles(self, net: torch.nn.Module, obs: Tensor) -> Tensor:
        """theta(s, .) ``[B, A, N]``."""
        return net(obs).view(obs.shape[0], self.n_actions, self.config.n_quantiles)

    # ---- collect -> targets -> update -> log ----------------------------------------------------------------

    def greedy(self, obs: Tensor) -> Tensor:
        """argmax_a mean_i theta_i(s, a)."""
        return self.quantiles(self.q, obs).mean(-1).argmax(-1)

    @torch.no_grad()
    def collect_step(self) -> None:
        """One vectorised epsilon-greedy step of every copy into the replay buffer."""
        self.loop.store(self.loop.act_epsilon_greedy(self.obs, self.greedy))

    @torch.no_grad()
    def targets(self, batch: dict[str, Tensor]) -> Tensor:
        """The target samples ``[B, N]`` of a minibatch (theta^- held fixed)."""
        return qr_target(batch["rewards"].float(), self.loop.bootstrap_discounts(batch),
                         self.quantiles(self.q_target, batch["next_obs"]))

    def gradient_step(self) -> Tensor:
        """One minibatch step on the (weighted) quantile Huber loss; returns the loss, detached."""
        batch, weights = self.loop.sample()
        losses = qr_loss(self.quantiles(self.q, batch["obs"]), batch["actions"], self.targets(batch), self.taus,
                         self.config.kappa)
        return self.loop.descend(losses, weights, batch)

    def learn(self, total_steps: int) -> QRDQN:
        """Train until ``total_steps`` env steps or the run's ``stop_return`` (DQN's loop)."""
        self.loop.learn(total_steps, self.collect_step, self.gradient_step, self.loop.epsilon_column)
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """argmax_a of the mean quantile (deterministic), or epsilon-greedy with the final epsilon."""
        greedy = self.greedy(obs.to(self.device))
        return self.loop.greedy_or_epsilon(greedy, deterministic, self.config.epsilon_end, generator)
