"""SAC: soft actor-critic, off-policy maximum-entropy RL with twin critics and an automatic temperature.

Notes: 003 lecture 9 (maximum-entropy RL, soft value functions, SAC, L1405-L1458; the reparameterisation trick,
L1277-L1321), 002 (diagonal Gaussian policies). The objective adds the policy's entropy to every reward,
J(pi) = E[sum_t gamma^t (r_t + alpha H(pi(.|s_t)))], and each gradient step on a replayed minibatch does:

    critics (twin, one batched forward):
        a' ~ pi(.|s'),   y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha log pi(a'|s'))
        phi_i <- phi_i - lr grad sum_i mean (Q_i(s, a) - y)^2
    actor (reparameterised: a = tanh(mu(s) + sigma(s) eps), eps ~ N(0, I)):
        theta <- theta - lr grad mean (alpha log pi(a|s) - min_i Q_i(s, a))
    temperature (toward the target entropy H_bar = -|A|):
        log alpha <- log alpha - lr grad mean (-log alpha (log pi(a|s) + H_bar))
    targets: phi'_i <- phi'_i + tau (phi_i - phi'_i)

log pi(a|s) of the squashed Gaussian carries the change-of-variables correction
log pi(a|s) = log N(u; mu, sigma) - sum_d log(1 - tanh(u_d)^2), computed in the stable form
2 (log 2 - u - softplus(-2u)) (:class:`thorndike.core.distributions.TanhGaussian`). Actions live in [-1, 1]: the tanh
puts them there, replay stores them there, and they are scaled to the Box's bounds only on their way to the env
(:func:`thorndike.core.spaces.scale_action`). The first ``learning_starts`` env steps act uniformly in [-1, 1].

"Prefer SAC - easier to implement & hyperparametrize" (003 L1458). The replay buffer is a checkpoint component when
``buffer_in_checkpoint`` says so (``auto``: when it is at most 256 MiB); then resume is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.continuous.common import check_box_actions, require_networks
from thorndike.core.capture import GradientStep, capture, capture_by_default
from thorndike.core.entropy import Temperature, continuous_target_entropy, temperature_loss
from thorndike.core.networks import adam
from thorndike.core.off_policy import (
    ActorCriticReplayConfig,
    OffPolicyLoop,
    RowStats,
    joint_step,
    online_and_target,
    soft_update,
)
from thorndike.core.off_policy_networks import Critics, SquashedGaussianActor
from thorndike.core.spaces import scale_action
from thorndike.core.targets import soft_q_target

__all__ = ["SAC", "SACConfig", "sac_actor_loss", "twin_critic_loss"]


@dataclass
class SACConfig(ActorCriticReplayConfig):
    """SAC's hyperparameters: the replay fields the off-policy actor-critics share, and the temperature's."""

    alpha: float = describe("the temperature alpha: its initial value, or its value throughout without auto_alpha",
                            1.0)
    auto_alpha: bool = describe("learn alpha toward the target entropy", True)
    target_entropy: float | None = describe("the target entropy H_bar (None: -|A|, the action dimension)", None)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha > 0, "alpha", self.alpha, "> 0")


# ---- the losses -----------------------------------------------------------------------------------------------------


def twin_critic_loss(q: Tensor, y: Tensor) -> Tensor:
    """Per-sample sum_i (Q_i(s, a) - y)^2 of the K critics ``q`` ``[K, B]`` against one target ``y`` ``[B]``."""
    return (q - y).square().sum(0)


def sac_actor_loss(log_prob: Tensor, q_min: Tensor, alpha: Tensor | float) -> Tensor:
    """mean(alpha log pi(a|s) - min_i Q_i(s, a)) at reparameterised actions a (003 L1423-L1438)."""
    return (alpha * log_prob - q_min).mean()


# ---- the agent ------------------------------------------------------------------------------------------------------


def build_soft_actor_critic(agent: Any, envs: Any, actor: nn.Module, target_entropy: float) -> None:
    """What SAC and discrete SAC build alike around their ``actor`` (made first, so the seed gives the same weights):
    twin critics and their targets, the temperature, an Adam for each of the three, the off-policy loop, the log
    row's statistics and the checkpoint components, as attributes of ``agent``."""
    config, device = agent.config, agent.device
    agent.actor = actor.to(device)
    agent.critic, agent.critic_target = online_and_target(
        lambda: Critics(envs.observation_space, envs.action_space, config.hidden_sizes, n_critics=2), device)
    agent.temperature = Temperature(config.alpha).to(device)
    agent.target_entropy = target_entropy
    agent.actor_optimizer = adam(agent.actor.parameters(), lr=config.lr, device=device)
    agent.critic_optimizer = adam(agent.critic.parameters(), lr=config.lr, device=device)
    agent.temperature_optimizer = adam(agent.temperature.parameters(), lr=config.lr, device=device)
    agent.loop = OffPolicyLoop(agent, envs, config, agent.critic, None, agent.critic_optimizer)
    agent.stats = RowStats("actor_loss", "alpha", "entropy")
    agent.components = {"actor": agent.actor, "critic": agent.critic, "critic_target": agent.critic_target,
                        "temperature": agent.temperature, "actor_optimizer": agent.actor_optimizer,
                        "critic_optimizer": agent.critic_optimizer,
                        "temperature_optimizer": agent.temperature_optimizer, **agent.loop.components()}


def actor_and_temperature_step(agent: Any, actor_loss: Tensor, log_prob: Tensor, alpha: Tensor) -> None:
    """The actor's step and, with ``auto_alpha``, the temperature's on ``log_prob`` (log pi of the sampled actions,
    or E_pi[log pi] for discrete actions) in one backward pass (alpha is detached in the actor's loss, log pi in the
    temperature's); then the targets' soft update and the log row's statistics."""
    steps = [(agent.actor_optimizer, actor_loss)]
    if agent.config.auto_alpha:
        steps.append((agent.temperature_optimizer,
                      temperature_loss(agent.temperature.log_alpha, log_prob, agent.target_entropy)))
    loss = joint_step(steps)[0]
    soft_update(agent.critic_target, agent.critic, agent.config.tau)
    agent.stats.add(actor_loss=loss, alpha=alpha, entropy=-log_prob.detach().mean())


class SAC(Agent):
    """Soft actor-critic: twin critics, a tanh-Gaussian actor, the entropy in the target, automatic temperature."""

    name = "sac"
    Config = SACConfig
    action_spaces = (gym.spaces.Box,)

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().check_spaces(observation_space, action_space)
        check_box_actions(cls, action_space)

    def build(self) -> None:
        config = self.config
        envs = self.connect_env(config.n_envs)
        self.action_space = envs.action_space
        require_networks(self, envs, config, n_critics=2, actor_heads=2, target_actor=False)
        actor = SquashedGaussianActor(envs.observation_space, envs.action_space, config.hidden_sizes)
        target_entropy = (continuous_target_entropy(math.prod(envs.action_space.shape))
                          if config.target_entropy is None else config.target_entropy)
        build_soft_actor_critic(self, envs, actor, target_entropy)
        # With the run option compile, each gradient step (critics, actor, temperature, targets) is one captured
        # program (settable before the first update: ``capture``).
        self.capture = capture_by_default(self.options.compile, self.device)
        self.captured_update = None

    # ---- collect -> targets -> update -> log ----------------------------------------------------------------

    @torch.no_grad()
    def collect_step(self) -> None:
        """One vectorised step: uniform actions in [-1, 1] during the warm-up, then a ~ pi(.|s); stored in [-1, 1],
        scaled to the bounds for the env."""
        loop = self.loop
        if loop.schedule.random_actions(self.global_step):
            actions = loop.uniform_actions(self.obs.shape[0], self.generator)
        else:
            actions, _ = self.actor.distribution(self.obs).sample(self.generator)
        loop.store(actions, scale_action(actions, self.action_space))

    @torch.no_grad()
    def targets(self, batch: dict[str, Tensor], alpha: Tensor, noise: Tensor | None = None) -> Tensor:
        """y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s') (from the
        standard normal ``noise`` when given)."""
        dist = self.actor.distribution(batch["next_obs"])
        next_actions, next_log_prob = dist.sample(self.generator) if noise is None else dist.reparameterize(noise)
        q_next = self.critic_target(batch["next_obs"], next_actions)
        return soft_q_target(batch["rewards"].float(), self.loop.bootstrap_discounts(batch), q_next, next_log_prob,
                             alpha)

    def gradient_step(self) -> Tensor:
        """The critics, the actor and the temperature on one minibatch, then the targets; returns the critics' loss.
        With ``capture`` all of it is one program (:meth:`captured_gradient_step`)."""
        batch, _ = self.loop.sample()
        if self.capture:
            return self.captured_gradient_step(batch)
        alpha = self.temperature.alpha
        y = self.targets(batch, alpha)
        critic_loss = self.loop.descend(twin_critic_loss(self.critic(batch["obs"], batch["actions"]), y), None, batch)

        actions, log_prob = self.actor.distribution(batch["obs"]).rsample(self.generator)
        q_min = self.critic(batch["obs"], actions, frozen=True).amin(0)  # the actor's gradient only
        actor_and_temperature_step(self, sac_actor_loss(log_prob, q_min, alpha), log_prob, alpha)
        return critic_loss

    def captured_gradient_step(self, batch: dict[str, Tensor]) -> Tensor:
        """:meth:`gradient_step`'s work as one captured program (:mod:`thorndike.core.capture`), with the same
        random numbers: the noise of a' and of the actor's actions drawn first, in the eager step's order."""
        if self.captured_update is None:
            critic_step = GradientStep({"critic": self.critic}, self.critic_optimizer)
            modules, optimizers = {"actor": self.actor}, [self.actor_optimizer]
            if self.config.auto_alpha:
                modules["temperature"], optimizers = self.temperature, optimizers + [self.temperature_optimizer]
            actor_step = GradientStep(modules, optimizers)  # one gradient of the summed losses, as joint_step

            def critic_loss(batch: dict[str, Tensor], y: Tensor) -> tuple[Tensor, tuple[()]]:
                return twin_critic_loss(self.critic(batch["obs"], batch["actions"]), y).mean(), ()

            def actor_loss(obs: Tensor, noise: Tensor, alpha: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
                actions, log_prob = self.actor.distribution(obs).reparameterize(noise)
                loss = sac_actor_loss(log_prob, self.critic(obs, actions, frozen=True).amin(0), alpha)
                total = loss + temperature_loss(self.temperature.log_alpha, log_prob, self.target_entropy) \
                    if self.config.auto_alpha else loss
                return total, (loss.detach(), log_prob.detach())

            def update(batch: dict[str, Tensor], next_noise: Tensor, noise: Tensor) -> tuple[Tensor, ...]:
                alpha = self.temperature.alpha
                critic, _ = critic_step(critic_loss, batch, self.targets(batch, alpha, next_noise))
                _, (actor, log_prob) = actor_step(actor_loss, batch["obs"], noise, alpha)
                soft_update(self.critic_target, self.critic, self.config.tau)
                return critic, actor, alpha, -log_prob.mean()

            self.captured_update = capture(update, [critic_step, actor_step], self.device, "the SAC gradient step",
                                           static=list(self.critic_target.parameters()))
        shape = (batch["obs"].shape[0], *self.actor.mean.bias.shape)
        next_noise, noise = (torch.randn(shape, generator=self.generator, device=self.device) for _ in range(2))
        critic, actor, alpha, entropy = self.captured_update(batch, next_noise, noise)
        self.stats.add(actor_loss=actor, alpha=alpha, entropy=entropy)
        return critic

    def learn(self, total_steps: int) -> SAC:
        """Train until ``total_steps`` env steps (counting all copies) or the run's ``stop_return``: collect, then
        the gradient steps the schedule makes due; a log row every ``log_every`` env steps."""
        self.loop.learn(total_steps, self.collect_step, self.gradient_step, self.stats.means)
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """tanh(mu(s)) (deterministic) or a ~ pi(.|s), scaled to the action space's bounds."""
        dist = self.actor.distribution(obs.to(self.device))
        actions = dist.mode() if deterministic else dist.sample(generator)[0]
        return scale_action(actions, self.action_space)
