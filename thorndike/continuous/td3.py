"""TD3: twin delayed DDPG, DDPG with three stabilisers against the critic's overestimation.

Notes: 003 lecture 9 (TD3 = DDPG + 3 stabilisers, L1341-L1357; deterministic, external action noise, twin critics,
L1450-L1458), 004 L1605 and L2395-L2399 (double critics, delayed policy updates, target policy smoothing). The
actor-critic of DDPG (:mod:`thorndike.continuous.ddpg`), with

1. twin critics and the minimum of the two in the target (clipped double Q-learning), both computed in one batched
   forward and fitted by one backward (:class:`thorndike.core.off_policy_networks.Critics`);
2. target policy smoothing: the target action is the target actor's plus clipped Gaussian noise, drawn from the
   agent's generator, so Q is fitted to a neighbourhood of it;
3. delayed updates: the actor and the targets move once every ``policy_delay`` critic updates.

Each gradient step on a replayed minibatch:

    a' = clip(mu'(s') + clip(eps, -c, c), -1, 1),   eps ~ N(0, sigma^2)
    y = r + gamma (1 - terminated) min_i Q'_i(s', a')
    phi_i <- phi_i - lr grad sum_i mean (Q_i(s, a) - y)^2
    every policy_delay-th critic update:
        theta <- theta - lr grad mean (-Q_1(s, mu(s)))
        theta' <- theta' + tau (theta - theta'),  phi'_i <- phi'_i + tau (phi_i - phi'_i)

The critic updates are counted in a checkpoint component, so a resumed run's delayed updates fall where an
uninterrupted run's do. Policy delay 2 and target noise 0.2 clipped at 0.5 are Fujimoto et al.'s values (not in the
notes).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor

from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.continuous.common import check_box_actions
from thorndike.continuous.ddpg import (
    DDPGConfig,
    build_deterministic_actor_critic,
    collect_with_noise,
    deterministic_actor_loss,
    deterministic_policy,
)
from thorndike.core.off_policy import Counter, OffPolicyLoop, RowStats, optimizer_step, soft_update
from thorndike.core.targets import smoothed_target_action, td3_target

__all__ = ["TD3", "TD3Config", "actor_update_due"]


@dataclass
class TD3Config(DDPGConfig):
    """TD3's hyperparameters: DDPG's, and its three stabilisers'."""

    policy_delay: int = describe("critic updates per actor and target update", 2)
    target_noise: float = describe("sigma of the target policy smoothing noise, in [-1, 1] action units", 0.2)
    target_noise_clip: float = describe("the smoothing noise is clipped to [-c, c]", 0.5)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.policy_delay >= 1, "policy_delay", self.policy_delay, ">= 1")
        check(self.target_noise >= 0, "target_noise", self.target_noise, ">= 0")
        check(self.target_noise_clip >= 0, "target_noise_clip", self.target_noise_clip, ">= 0")


def actor_update_due(critic_updates: int, policy_delay: int) -> bool:
    """Whether the actor and the targets move after the ``critic_updates``-th critic update (1-based): every
    ``policy_delay``-th."""
    return critic_updates % policy_delay == 0


class TD3(Agent):
    """TD3: DDPG with twin critics, target policy smoothing and delayed actor and target updates."""

    name = "td3"
    Config = TD3Config
    action_spaces = (gym.spaces.Box,)

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().check_spaces(observation_space, action_space)
        check_box_actions(cls, action_space)

    def build(self) -> None:
        envs = self.connect_env(self.config.n_envs)
        parts = build_deterministic_actor_critic(self, envs, self.config, n_critics=2)
        self.critic_updates = Counter()
        self.loop = OffPolicyLoop(self, envs, self.config, self.critic, None, self.critic_optimizer)
        self.stats = RowStats("actor_loss", "q")
        self.components = {**parts, "critic_updates": self.critic_updates, **self.loop.components()}

    # ---- collect -> targets -> update -> log ----------------------------------------------------------------

    def collect_step(self) -> None:
        """One vectorised step, as DDPG's: uniform actions during the warm-up, then mu(s) + noise."""
        collect_with_noise(self)

    @torch.no_grad()
    def targets(self, batch: dict[str, Tensor]) -> Tensor:
        """y = r + gamma (1 - terminated) min_i Q'_i(s', a'), a' the smoothed target action."""
        config = self.config
        next_actions = smoothed_target_action(self.actor_target(batch["next_obs"]), config.target_noise,
                                              config.target_noise_clip, self.generator)
        q_next = self.critic_target(batch["next_obs"], next_actions)
        return td3_target(batch["rewards"].float(), self.loop.bootstrap_discounts(batch), q_next)

    def gradient_step(self) -> Tensor:
        """Both critics on one minibatch (one forward, one backward); every policy_delay-th time the actor and the
        targets too. Returns the critics' loss."""
        batch, _ = self.loop.sample()
        y = self.targets(batch)
        q = self.critic(batch["obs"], batch["actions"])
        critic_loss = self.loop.descend((q - y).square().sum(0), None, batch)
        self.critic_updates.count += 1
        if actor_update_due(self.critic_updates.count, self.config.policy_delay):
            # Q_1 alone, weights frozen: the actor's gradient
            q_mu = self.critic(batch["obs"], self.actor(batch["obs"]), frozen=True, members=slice(0, 1))[0]
            actor_loss = optimizer_step(self.actor_optimizer, deterministic_actor_loss(q_mu))
            soft_update(self.critic_target, self.critic, self.config.tau)
            soft_update(self.actor_target, self.actor, self.config.tau)
            self.stats.add(actor_loss=actor_loss)
        self.stats.add(q=q.detach().mean())
        return critic_loss

    def learn(self, total_steps: int) -> TD3:
        """Train until ``total_steps`` env steps (counting all copies) or the run's ``stop_return``: collect, then
        the gradient steps the schedule makes due; a log row every ``log_every`` env steps."""
        self.loop.learn(total_steps, self.collect_step, self.gradient_step, self.stats.means)
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """mu(s) (deterministic), or mu(s) plus Gaussian noise of ``noise_std``, scaled to the bounds."""
        return deterministic_policy(self, obs, deterministic, generator)
