"""DDPG: deep deterministic policy gradient, an actor mu(s) and a critic Q(s, a) learned off-policy.

Notes: 003 lecture 9 (the deterministic policy gradient, L1323-L1339), 004 DDPG (L2287-L2406). The policy is
deterministic, a = mu(s), and its gradient has no log-derivative: it goes through the critic with respect to the
action, grad_theta J = E_s[grad_theta mu(s) grad_a Q(s, a)|_{a = mu(s)}]. Each gradient step on a replayed minibatch:

    critic:   y = r + gamma (1 - terminated) Q'(s', mu'(s'))          (the target actor and the target critic)
              phi <- phi - lr grad mean (Q(s, a) - y)^2
    actor:    theta <- theta - lr grad mean (-Q(s, mu(s)))
    targets:  theta' <- theta' + tau (theta - theta'),  phi' <- phi' + tau (phi - phi')     (tau << 1)

(003 L415-L419 has the two losses swapped; the critic regresses on y and the actor ascends Q, as 004 L2318-L2324
has them.) Exploration adds noise to mu(s) while collecting: Gaussian, or an Ornstein-Uhlenbeck process with one
state per env copy, reset where that copy's episode ended (:mod:`thorndike.core.action_noise`, a checkpoint
component). The actor's tanh output keeps actions in [-1, 1]; replay stores them there and they are scaled to the
Box's bounds only on their way to the env (:func:`thorndike.core.spaces.scale_action`). The first
``learning_starts`` env steps act uniformly in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.continuous.common import check_box_actions, require_networks
from thorndike.core.action_noise import NOISE_KINDS, ActionNoise
from thorndike.core.networks import adam
from thorndike.core.off_policy import (
    ActorCriticReplayConfig,
    OffPolicyLoop,
    RowStats,
    online_and_target,
    optimizer_step,
    soft_update,
)
from thorndike.core.off_policy_networks import Critics, DeterministicActor
from thorndike.core.spaces import scale_action
from thorndike.core.targets import td3_target

__all__ = ["DDPG", "DDPGConfig", "deterministic_actor_loss", "noisy_actions"]


@dataclass
class DDPGConfig(ActorCriticReplayConfig):
    """DDPG's hyperparameters: the replay fields the off-policy actor-critics share, and the exploration noise."""

    action_noise: str = describe("exploration noise added to mu(s): gaussian, ou (Ornstein-Uhlenbeck) or none",
                                 "gaussian")
    noise_std: float = describe("sigma of the exploration noise, in [-1, 1] action units", 0.1)
    ou_theta: float = describe("Ornstein-Uhlenbeck: the rate of the drift back to 0 (per unit of time)", 0.15)
    ou_dt: float = describe("Ornstein-Uhlenbeck: the time one step takes", 1e-2)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.action_noise in NOISE_KINDS, "action_noise", self.action_noise, " or ".join(NOISE_KINDS))
        check(self.noise_std >= 0, "noise_std", self.noise_std, ">= 0")
        check(self.ou_theta >= 0, "ou_theta", self.ou_theta, ">= 0")
        check(self.ou_dt > 0, "ou_dt", self.ou_dt, "> 0")


# ---- the pieces TD3 shares -----------------------------------------------------------------------------------------


def deterministic_actor_loss(q: Tensor) -> Tensor:
    """-mean Q(s, mu(s)): descending it ascends Q along grad_a Q(s, a) grad_theta mu(s) (004 L2324)."""
    return -q.mean()


def noisy_actions(mean: Tensor, noise: ActionNoise, generator: torch.Generator | None) -> Tensor:
    """clip(mu(s) + n_t, -1, 1): the behaviour action in [-1, 1] units."""
    return (mean + noise.sample(generator)).clamp(-1.0, 1.0)


@torch.no_grad()
def collect_with_noise(agent: Any) -> None:
    """DDPG's and TD3's vectorised step: uniform actions during the warm-up, then mu(s) + noise into the replay (the
    env gets them scaled to its bounds); the noise of a copy whose episode ended starts afresh."""
    loop = agent.loop
    if loop.schedule.random_actions(agent.global_step):
        actions = loop.uniform_actions(agent.obs.shape[0], agent.generator)
    else:
        actions = noisy_actions(agent.actor(agent.obs), agent.noise, agent.generator)
    info = loop.store(actions, scale_action(actions, agent.action_space))
    agent.noise.reset(info["done"])


@torch.no_grad()
def deterministic_policy(agent: Any, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
    """mu(s) (deterministic), or mu(s) plus Gaussian noise of ``noise_std``, scaled to the bounds."""
    actions = agent.actor(obs.to(agent.device))
    if not deterministic:
        noise = torch.randn(actions.shape, generator=generator, device=actions.device)
        actions = (actions + agent.config.noise_std * noise).clamp(-1.0, 1.0)
    return scale_action(actions, agent.action_space)


def build_deterministic_actor_critic(agent: Agent, envs: Any, config: DDPGConfig, n_critics: int) -> dict[str, Any]:
    """Give ``agent`` what DDPG and TD3 both learn with: the tanh actor mu and ``n_critics`` critics (one module), each
    with its target copy and Adam, and the action noise; returns them by name, as checkpoint components."""
    agent.action_space = envs.action_space
    require_networks(agent, envs, config, n_critics=n_critics, actor_heads=1, target_actor=True)
    agent.actor, agent.actor_target = online_and_target(
        lambda: DeterministicActor(envs.observation_space, envs.action_space, config.hidden_sizes), agent.device)
    agent.critic, agent.critic_target = online_and_target(
        lambda: Critics(envs.observation_space, envs.action_space, config.hidden_sizes, n_critics=n_critics),
        agent.device)
    agent.actor_optimizer = adam(agent.actor.parameters(), lr=config.lr, device=agent.device)
    agent.critic_optimizer = adam(agent.critic.parameters(), lr=config.lr, device=agent.device)
    agent.noise = ActionNoise(config.action_noise, config.n_envs, tuple(envs.action_space.shape), config.noise_std,
                              config.ou_theta, config.ou_dt, agent.device)
    return {"actor": agent.actor, "actor_target": agent.actor_target, "critic": agent.critic,
            "critic_target": agent.critic_target, "actor_optimizer": agent.actor_optimizer,
            "critic_optimizer": agent.critic_optimizer, "noise": agent.noise}


# ---- the agent ------------------------------------------------------------------------------------------------------


class DDPG(Agent):
    """DDPG: a deterministic tanh actor, a critic Q(s, a), target networks with soft updates, action noise."""

    name = "ddpg"
    Config = DDPGConfig
    action_spaces = (gym.spaces.Box,)

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().check_spaces(observation_space, action_space)
        check_box_actions(cls, action_space)

    def build(self) -> None:
        envs = self.connect_env(self.config.n_envs)
        parts = build_deterministic_actor_critic(self, envs, self.config, n_critics=1)
        self.loop = OffPolicyLoop(self, envs, self.config, self.critic, None, self.critic_optimizer)
        self.stats = RowStats("actor_loss", "q")
        self.components = {**parts, **self.loop.components()}

    # ---- collect -> targets -> update -> log ----------------------------------------------------------------

    def collect_step(self) -> None:
        """One vectorised step: uniform actions during the warm-up, then mu(s) + noise (:func:`collect_with_noise`)."""
        collect_with_noise(self)

    @torch.no_grad()
    def targets(self, batch: dict[str, Tensor]) -> Tensor:
        """y = r + gamma (1 - terminated) Q'(s', mu'(s'))."""
        q_next = self.critic_target(batch["next_obs"], self.actor_target(batch["next_obs"]))
        return td3_target(batch["rewards"].float(), self.loop.bootstrap_discounts(batch), q_next)

    def gradient_step(self) -> Tensor:
        """The critic, then the actor on the same minibatch, then both targets; returns the critic's loss."""
        batch, _ = self.loop.sample()
        y = self.targets(batch)
        q = self.critic(batch["obs"], batch["actions"])
        critic_loss = self.loop.descend((q - y).square().sum(0), None, batch)
        q_mu = self.critic(batch["obs"], self.actor(batch["obs"]), frozen=True)[0]  # the actor's gradient only
        actor_loss = optimizer_step(self.actor_optimizer, deterministic_actor_loss(q_mu))
        soft_update(self.critic_target, self.critic, self.config.tau)
        soft_update(self.actor_target, self.actor, self.config.tau)
        self.stats.add(actor_loss=actor_loss, q=q.detach().mean())
        return critic_loss

    def learn(self, total_steps: int) -> DDPG:
        """Train until ``total_steps`` env steps (counting all copies) or the run's ``stop_return``: collect, then
        the gradient steps the schedule makes due; a log row every ``log_every`` env steps."""
        self.loop.learn(total_steps, self.collect_step, self.gradient_step, self.stats.means)
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """mu(s) (deterministic), or mu(s) plus Gaussian noise of ``noise_std``, scaled to the bounds."""
        return deterministic_policy(self, obs, deterministic, generator)
