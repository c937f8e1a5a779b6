"""DQN: Q-learning with a neural network, experience replay and a target network (with its common extensions).

Notes: 000 lecture 2 and the guide's Q-network (target y = r + gamma max_a' Q(s', a'; theta^-), loss (y - Q)^2),
001 unit 3 (replay memory, the fixed Q-target copied every C steps, double DQN), 003 lectures 4-5 (the stop-gradient
target, hard and soft target updates, double DQN, prioritised replay, n-step returns). Each vectorised step:

    a ~ epsilon-greedy(Q(s, .; theta))          (uniform during the first learning_starts steps)
    store (s, a, r, s', terminated, truncated)   (s' the true next observation, also at a time-limit cut)
    every train_freq env steps, gradient_steps times:
        y = R + discount * (1 - terminated) * max_a' Q(s', a'; theta^-)
            (double DQN: Q(s', argmax_a' Q(s', a'; theta); theta^-))
        theta <- theta - lr grad mean_i w_i L(Q(s_i, a_i; theta) - y_i)      (L: Huber or squared error)
    every target_update_interval env steps: theta^- <- theta (tau = 1), or theta^- <- theta^- + tau (theta - theta^-)

R and discount are r and gamma for one-step transitions, the n-step sum and gamma^m with ``n_step`` > 1 (the
replay buffer computes them: :mod:`thorndike.core.replay`). With ``prioritized`` the minibatch is drawn with
P(i) proportional to p_i^alpha, p_i = |delta_i| + eps, and weighed by w_i = (N P(i))^-beta, beta annealed to 1; else
w_i = 1. The schedule (random steps, updates, target updates, epsilon) counts env steps and keeps no state
(:mod:`thorndike.core.off_policy`), so a resumed run updates at the same steps.

The replay buffer is a checkpoint component when ``buffer_in_checkpoint`` says so (``auto``: when it is at most
256 MiB); then resume is exact. Without it a resumed run starts with an empty buffer and acts at random for another
``learning_starts`` steps before it learns again.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor

from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.core.capture import capture_by_default
from thorndike.core.networks import adam
from thorndike.core.off_policy import EpsilonGreedyConfig, OffPolicyLoop, online_and_target
from thorndike.core.q_heads import q_network
from thorndike.core.targets import double_dqn_target, dqn_target

__all__ = ["DQN", "DQNConfig"]


@dataclass
class DQNConfig(EpsilonGreedyConfig):
    """DQN's hyperparameters: the replay, schedule and epsilon fields the DQN family shares, and DQN's own."""

    loss: str = describe("huber (smooth L1, as in the Nature DQN) or mse", "huber")
    double: bool = describe("double DQN: the online network picks a', the target network values it", False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.loss in ("huber", "mse"), "loss", self.loss, "huber or mse")


class DQN(Agent):
    """DQN with optional double targets, n-step returns, prioritised replay and soft target updates."""

    name = "dqn"
    Config = DQNConfig
    action_spaces = (gym.spaces.Discrete,)

    def build(self) -> None:
        config = self.config
        envs = self.connect_env(config.n_envs)
        self.n_actions = int(envs.action_space.n)
        OffPolicyLoop.require_networks(self, envs, config)
        self.q, self.q_target = online_and_target(
            lambda: q_network(envs.observation_space, self.n_actions, config.hidden_sizes), self.device)
        self.optimizer = adam(self.q.parameters(), lr=config.lr, device=self.device)
        self.loop = OffPolicyLoop(self, envs, config, self.q, self.q_target, self.optimizer, config.epsilon_schedule())
        self.buffer, self.schedule, self.checks = self.loop.buffer, self.loop.schedule, self.loop.checks
        self.components = {"q": self.q, "q_target": self.q_target, "optimizer": self.optimizer,
                           **self.loop.components()}
        # With the run option compile, each gradient step is one captured program (settable before the first
        # update: ``capture``); the target network's updates stay eager (one fused copy every C steps).
        self.capture = capture_by_default(self.options.compile, self.device)
        self.captured_descent = None

    # ---- collect -> targets -> update -> log ----------------------------------------------------------------

    @torch.no_grad()
    def act_epsilon_greedy(self, obs: Tensor) -> Tensor:
        """Uniform actions during the warm-up, then epsilon-greedy on Q(s, .; theta) (epsilon from the schedule)."""
        return self.loop.act_epsilon_greedy(obs, lambda o: self.q(o).argmax(-1))

    def collect_step(self) -> None:
        """One vectorised step of every copy into the replay buffer."""
        self.loop.store(self.act_epsilon_greedy(self.obs))

    def targets(self, batch: dict[str, Tensor]) -> Tensor:
        """The regression targets y of a sampled minibatch (no gradient: theta^- is held fixed)."""
        with torch.no_grad():
            q_next_target = self.q_target(batch["next_obs"])
            discount = self.loop.bootstrap_discounts(batch)
            rewards = batch["rewards"].float()
            if self.config.double:
                return double_dqn_target(rewards, discount, self.q(batch["next_obs"]), q_next_target)
            return dqn_target(rewards, discount, q_next_target)

    def td_losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The per-sample TD losses L(Q(s, a; theta) - y) of a minibatch, and |delta| (PER's priorities)."""
        y = self.targets(batch)
        q = self.q(batch["obs"]).gather(-1, batch["actions"].long().unsqueeze(-1)).squeeze(-1)
        td = q - y
        losses = F.smooth_l1_loss(q, y, reduction="none") if self.config.loss == "huber" else td.square()
        return losses, td.abs()

    def gradient_step(self) -> Tensor:
        """One minibatch step on the (weighted) TD loss; PER priorities from |delta|; returns the loss, detached.
        With ``capture``, loss, backward, clip and Adam are one program (:mod:`thorndike.core.capture`)."""
        batch, weights = self.loop.sample()
        if self.capture:
            if self.captured_descent is None:
                self.captured_descent = self.loop.captured_descent(self.td_losses, "the DQN gradient step")
            return self.captured_descent(batch, weights)
        losses, priorities = self.td_losses(batch)
        return self.loop.descend(losses, weights, batch, priorities=priorities)

    def learn(self, total_steps: int) -> DQN:
        """Train until ``total_steps`` env steps (counting all copies) or the run's ``stop_return``: collect, then
        the gradient steps and target updates the schedule makes due; a log row every ``log_every`` env steps."""
        self.loop.learn(total_steps, self.collect_step, self.gradient_step, self.loop.epsilon_column)
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """argmax_a Q(s, a) (deterministic), or epsilon-greedy with the final epsilon."""
        greedy = self.q(obs.to(self.device)).argmax(-1)
        return self.loop.greedy_or_epsilon(greedy, deterministic, self.config.epsilon_end, generator)
