"""Rainbow: C51 with double targets, a dueling network, prioritised replay, n-step returns and noisy nets.

Notes: 003 lecture 4 (F3 L524-L538: "Rainbow" combines the DQN extensions) and lecture 5 (the categorical return).
The pieces are C51's (:func:`thorndike.value_based.c51.c51_target`, :func:`~thorndike.value_based.c51.c51_loss`),
DQN's loop (:class:`thorndike.core.off_policy.OffPolicyLoop`) and :mod:`thorndike.core.q_heads` (dueling per atom,
noisy layers). Each gradient step, on a replayed n-step transition (s, a, R, s', discount), drawn with
P(i) proportional to p_i^alpha:

    a* = argmax_a' sum_i p_i(s', a'; theta) z_i                 (double: the online network picks)
    m  = Phi(R + discount * z, p(s', a*; theta^-))              (the target network's distribution, projected)
    theta <- theta - lr grad mean_b w_b (-sum_i m_i log p_i(s_b, a_b; theta)),    p_b <- the cross-entropy

Exploration is by the noisy layers alone (no epsilon): the noise is drawn again from the agent's generator before
every acting step and every gradient step (online and target networks each their own draw); greedy evaluation uses
the mean weights mu (the network in eval mode). The first ``learning_starts`` steps act uniformly, as in DQN.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor, nn

from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.core.distributional import categorical_support
from thorndike.core.networks import adam
from thorndike.core.off_policy import OffPolicyLoop, ReplayConfig, online_and_target
from thorndike.core.q_heads import q_network
from thorndike.value_based.c51 import c51_loss, c51_target, expected_q

__all__ = ["Rainbow", "RainbowConfig"]


@dataclass
class RainbowConfig(ReplayConfig):
    """Rainbow's hyperparameters: the DQN family's replay and schedule fields (prioritised 3-step replay by
    default) and C51's support."""

    n_step: int = describe("n of the n-step returns (1: one-step targets)", 3, at_most=1000)
    prioritized: bool = describe("prioritised replay", True)
    per_alpha: float = describe("prioritised replay: P(i) proportional to p_i^alpha", 0.5)
    n_atoms: int = describe("atoms of the categorical support", 51, at_most=10_000)
    v_min: float = describe("the support's lowest return V_min", -10.0)
    v_max: float = describe("the support's highest return V_max", 10.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_atoms >= 2, "n_atoms", self.n_atoms, ">= 2")
        check(self.v_min < self.v_max, "v_max", self.v_max, f"> v_min = {self.v_min}")


@contextmanager
def mean_weights(net: nn.Module) -> Iterator[nn.Module]:
    """The network in eval mode (noisy layers use mu alone) for the duration, its mode restored after."""
    training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(training)


class Rainbow(Agent):
    """Rainbow: double, dueling, prioritised, n-step, noisy-net C51."""

    name = "rainbow"
    Config = RainbowConfig
    action_spaces = (gym.spaces.Discrete,)

    def build(self) -> None:
        config = self.config
        envs = self.connect_env(config.n_envs)
        self.n_actions = int(envs.action_space.n)
        OffPolicyLoop.require_networks(self, envs, config, config.n_atoms, dueling=True, noisy=True)
        # (the target's noise starts as a copy of the online network's; it draws its own from the first gradient step)
        self.q, self.q_target = online_and_target(
            lambda: q_network(envs.observation_space, self.n_actions, config.hidden_sizes, dueling=True, noisy=True,
                              n_atoms=config.n_atoms), self.device)
        self.support = categorical_support(config.v_min, config.v_max, config.n_atoms, device=self.device)
        self.optimizer = adam(self.q.parameters(), lr=config.lr, device=self.device)
        self.loop = OffPolicyLoop(self, envs, config, self.q, self.q_target, self.optimizer)
        self.buffer, self.schedule = self.loop.buffer, self.loop.schedule
        self.components = {"q": self.q, "q_target": self.q_target, "optimizer": self.optimizer,
                           **self.loop.components()}

    # ---- collect -> targets -> update -> log ----------------------------------------------------------------

    @torch.no_grad()
    def act_noisy(self, obs: Tensor) -> Tensor:
        """Uniform actions during the warm-up, then argmax_a E[Z(s, a)] under freshly drawn weight noise."""
        if self.schedule.random_actions(self.global_step):
            return self.loop.uniform_actions(obs.shape[0], self.generator)
        self.q.reset_noise(self.generator)
        return expected_q(self.q(obs), self.support).argmax(-1)

    def collect_step(self) -> None:
        """One vectorised noisy-greedy step of every copy into the replay buffer."""
        self.loop.store(self.act_noisy(self.obs))

    @torch.no_grad()
    def targets(self, batch: dict[str, Tensor]) -> Tensor:
        """The projected target distributions m ``[B, N]``: the online network picks a*, the target network's
        distribution at a* is shifted and projected (theta^- held fixed)."""
        next_obs = batch["next_obs"]
        return c51_target(batch["rewards"].float(), self.loop.bootstrap_discounts(batch), self.q_target(next_obs),
                          self.support, self.q(next_obs))

    def gradient_step(self) -> Tensor:
        """New noise, then one minibatch step on the importance-weighted cross-entropy (priorities: the per-sample
        cross-entropies); returns the loss, detached."""
        self.q.reset_noise(self.generator)
        self.q_target.reset_noise(self.generator)
        batch, weights = self.loop.sample()
        losses = c51_loss(self.q(batch["obs"]), batch["actions"], self.targets(batch))
        return self.loop.descend(losses, weights, batch)

    def learn(self, total_steps: int) -> Rainbow:
        """Train until ``total_steps`` env steps or the run's ``stop_return`` (DQN's loop)."""
        self.loop.learn(total_steps, self.collect_step, self.gradient_step)
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """argmax_a E[Z(s, a)] with the mean weights (deterministic), or under a fresh noise draw from ``generator``
        (the noise the agent trains with is left as it was)."""
        obs = obs.to(self.device)
        if deterministic:
            with mean_weights(self.q):
                return expected_q(self.q(obs), self.support).argmax(-1)
        noise = [buffer.clone() for name, buffer in self.q.named_buffers() if name.endswith(("eps_in", "eps_out"))]
        self.q.reset_noise(generator)
        actions = expected_q(self.q(obs), self.support).argmax(-1)
        kept = (buffer for name, buffer in self.q.named_buffers() if name.endswith(("eps_in", "eps_out")))
        for buffer, saved in zip(kept, noise, strict=True):
            buffer.copy_(saved)
        return actions
