"""Discrete SAC: soft actor-critic for Discrete actions (Christodoulou 2019).

Notes: 003 lecture 9 (maximum-entropy RL, soft value functions, SAC, L1405-L1448). With finitely many actions the
policy pi(.|s) is a softmax whose whole distribution is known, so the expectations over actions that continuous SAC
estimates with one sampled (reparameterised) action are computed exactly:

    soft value:   V(s') = sum_a' pi(a'|s') (min_i Q'_i(s', a') - alpha log pi(a'|s'))
    critics:      y = r + gamma (1 - terminated) V(s'),   phi_i <- phi_i - lr grad sum_i mean (Q_i(s, a) - y)^2
    actor:        theta <- theta - lr grad mean sum_a pi(a|s) (alpha log pi(a|s) - min_i Q_i(s, a))
    temperature:  log alpha <- log alpha - lr grad mean (-log alpha (sum_a pi(a|s) log pi(a|s) + H_bar))
    targets:      phi'_i <- phi'_i + tau (phi_i - phi'_i)

The critics output Q_i(s, .) for every action (one batched forward for both); the target entropy is a fraction of
the uniform policy's, H_bar = ratio * log |A| (Christodoulou uses 0.98; lower ratios let the policy grow more
certain). The first ``learning_starts`` env steps act uniformly.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor

from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.continuous.common import require_networks
from thorndike.continuous.sac import actor_and_temperature_step, build_soft_actor_critic, twin_critic_loss
from thorndike.core.entropy import discrete_target_entropy
from thorndike.core.exploration import sample
from thorndike.core.off_policy import (
    ActorCriticReplayConfig,
)
from thorndike.core.off_policy_networks import CategoricalActor
from thorndike.core.targets import discounted_target, discrete_soft_value

__all__ = ["DiscreteSAC", "DiscreteSACConfig", "discrete_sac_actor_loss"]


@dataclass
class DiscreteSACConfig(ActorCriticReplayConfig):
    """Discrete SAC's hyperparameters: the replay fields the off-policy actor-critics share, and the temperature's."""

    alpha: float = describe("the temperature alpha: its initial value, or its value throughout without auto_alpha",
                            1.0)
    auto_alpha: bool = describe("learn alpha toward the target entropy", True)
    target_entropy_ratio: float = describe("the target entropy as a fraction of log |A| (the uniform policy's)", 0.98)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha > 0, "alpha", self.alpha, "> 0")
        check(0 <= self.target_entropy_ratio <= 1, "target_entropy_ratio", self.target_entropy_ratio, "in [0, 1]")


def discrete_sac_actor_loss(probs: Tensor, log_probs: Tensor, q_min: Tensor, alpha: Tensor | float) -> Tensor:
    """mean_s sum_a pi(a|s) (alpha log pi(a|s) - min_i Q_i(s, a)): the expectation over actions taken exactly."""
    return (probs * (alpha * log_probs - q_min)).sum(-1).mean()


class DiscreteSAC(Agent):
    """Soft actor-critic for Discrete actions: exact expectations over actions in the target and the actor's loss."""

    name = "sac_discrete"
    Config = DiscreteSACConfig
    action_spaces = (gym.spaces.Discrete,)

    def build(self) -> None:
        config = self.config
        envs = self.connect_env(config.n_envs)
        require_networks(self, envs, config, n_critics=2, actor_heads=1, target_actor=False)
        actor = CategoricalActor(envs.observation_space, envs.action_space, config.hidden_sizes)
        build_soft_actor_critic(self, envs, actor,
                                discrete_target_entropy(int(envs.action_space.n), config.target_entropy_ratio))

    # ---- collect -> targets -> update -> log ----------------------------------------------------------------

    @torch.no_grad()
    def collect_step(self) -> None:
        """One vectorised step: uniform actions during the warm-up, then a ~ pi(.|s)."""
        loop = self.loop
        if loop.schedule.random_actions(self.global_step):
            actions = loop.uniform_actions(self.obs.shape[0], self.generator)
        else:
            # inverse-CDF sampling: a NaN policy (from a NaN reward not yet reported) gives an action in range, so
            # the env data checks, not the sampler, report it
            actions = sample(self.actor.distribution(self.obs).probs, self.generator)
        loop.store(actions)

    @torch.no_grad()
    def targets(self, batch: dict[str, Tensor], alpha: Tensor) -> Tensor:
        """y = r + gamma (1 - terminated) sum_a' pi(a'|s') (min_i Q'_i(s', a') - alpha log pi(a'|s'))."""
        dist = self.actor.distribution(batch["next_obs"])
        value = discrete_soft_value(dist.probs, dist.logits, self.critic_target(batch["next_obs"]), alpha)
        return discounted_target(batch["rewards"].float(), self.loop.bootstrap_discounts(batch), value)

    def gradient_step(self) -> Tensor:
        """The critics, the actor and the temperature on one minibatch, then the targets; returns the critics' loss."""
        batch, _ = self.loop.sample()
        alpha = self.temperature.alpha
        y = self.targets(batch, alpha)
        taken = batch["actions"].long().view(1, -1, 1).expand(self.critic.n_critics, -1, 1)
        q = self.critic(batch["obs"]).gather(-1, taken).squeeze(-1)  # Q_i(s, a) [2, B]
        critic_loss = self.loop.descend(twin_critic_loss(q, y), None, batch)

        dist = self.actor.distribution(batch["obs"])
        probs, log_probs = dist.probs, dist.logits
        q_min = self.critic(batch["obs"], frozen=True).amin(0)
        expected_log_prob = (probs * log_probs).sum(-1)  # -H(pi(.|s)), exactly
        actor_and_temperature_step(self, discrete_sac_actor_loss(probs, log_probs, q_min, alpha), expected_log_prob,
                                   alpha)
        return critic_loss

    def learn(self, total_steps: int) -> DiscreteSAC:
        """Train until ``total_steps`` env steps (counting all copies) or the run's ``stop_return``: collect, then
        the gradient steps the schedule makes due; a log row every ``log_every`` env steps."""
        self.loop.learn(total_steps, self.collect_step, self.gradient_step, self.stats.means)
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """argmax_a pi(a|s) (deterministic) or a ~ pi(.|s)."""
        dist = self.actor.distribution(obs.to(self.device))
        return dist.mode() if deterministic else sample(dist.probs, generator)
