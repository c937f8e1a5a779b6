"""The on-policy actor-critic family: A2C, VPG, TRPO and PPO.

Every member builds the same :class:`~thorndike.core.actor_critic.ActorCritic` and rollout buffer, collects
``n_steps`` from each of ``n_envs`` copies with the current policy, and computes GAE(lambda) advantages with the
critic's lambda-return targets (:mod:`thorndike.core.on_policy`); what each one is, is its ``update``. The members'
Configs all have ``n_envs``, ``n_steps``, ``gamma``, ``gae_lambda``, ``normalize_obs``, ``normalize_reward``,
``hidden_sizes``, ``activation`` and ``log_std_init``. A member whose config has ``anneal_lr`` lists the optimisers
it decays in :meth:`OnPolicyAgent.annealed_optimizers`, and the loop sets their rate before each update (PPO, whose
loop is its own, does the same itself).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from thorndike.agent import Agent
from thorndike.config import check, check_network
from thorndike.core.actor_critic import ACTIVATIONS, ActorCritic
from thorndike.core.on_policy import CompiledGAE, gae_targets, rollout_buffer
from thorndike.core.rollout import NativeCollection, collect_rollout
from thorndike.core.schedules import Linear

__all__ = ["OnPolicyAgent", "check_family_fields", "set_learning_rate"]


def check_family_fields(config: Any) -> None:
    """Check the fields every member's Config has: the rollout's n_envs and n_steps, gamma, gae_lambda, and the
    actor-critic's hidden_sizes and activation (each member checks its own fields besides)."""
    check(config.n_envs >= 1, "n_envs", config.n_envs, ">= 1")
    check(config.n_steps >= 1, "n_steps", config.n_steps, ">= 1")
    check(0 < config.gamma <= 1, "gamma", config.gamma, "in (0, 1]")
    check(0 <= config.gae_lambda <= 1, "gae_lambda", config.gae_lambda, "in [0, 1]")
    check_network(config, ACTIVATIONS)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (a schedule's value for this update)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


class OnPolicyAgent(Agent):
    """Collect with the current policy, GAE targets, the member's ``update``, a log row: the family's loop."""

    action_spaces = (gym.spaces.Discrete, gym.spaces.Box)

    def connect_actor_critic(self, **env_options: Any) -> Any:
        """Connect ``n_envs`` copies (``env_options`` go to :meth:`connect_env`; rewards are scaled by the running std
        of the discounted return when the config's ``normalize_reward`` is set) and build ``self.model``, the rollout
        buffer and the rollout's policy step ``self.rollout_step`` (a member may replace it, e.g. compiled)."""
        config = self.config
        # Scaled below the episode ledger: logged and evaluated returns stay raw.
        env_options.setdefault("normalize_reward", config.normalize_reward)
        env_options.setdefault("gamma", config.gamma)
        envs = self.connect_env(config.n_envs, **env_options)
        self.model = ActorCritic(envs.observation_space, envs.action_space, config.hidden_sizes, config.activation,
                                 config.log_std_init, normalize_obs=config.normalize_obs).to(self.device)
        if config.normalize_obs:
            self.model.normalizer.update(self.obs)  # the statistics start from the reset observations
        self.buffer = rollout_buffer(envs, self.model, config.n_steps, config.n_envs, self.device)
        self.rollout_step = self.sample_actions
        # With the run option compile, a native env's rollouts are played as one compiled program each.
        self.native_collection = (NativeCollection.build(self.interaction, self.model, config.n_steps, compile=True)
                                  if self.options.compile else None)
        # and GAE runs as compiled programs (the loop over time unrolled).
        self.compiled_gae = (CompiledGAE(config.n_steps, config.gamma, config.gae_lambda, self.device)
                             if self.options.compile else None)
        return envs

    # ---- collect -> targets -> update -> log ----------------------------------------------------------------

    def sample_actions(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """The rollout's policy step: a ~ pi(. | s) and log pi(a | s) for every copy."""
        dist = self.model.distribution(obs)
        actions = dist.sample(self.generator)
        return actions, dist.log_prob(actions)

    def collect(self) -> None:
        """Fill the buffer with n_steps x n_envs transitions under the current policy (the behaviour pi_old), with
        the critic's V(s_t) and V(s_t+1).

        With ``normalize_obs`` the model's observation statistics take in every step as it comes, so the behaviour
        acts on up-to-date inputs; ``log_probs`` are its own probabilities. The update then sees the whole rollout
        through the final statistics.
        """
        where = f"iteration {self.iteration + 1}"
        if self.native_collection is not None:
            self.native_collection(self.buffer, self.generator, self.model.value, self.global_step, where)
        else:
            observe = self.model.normalizer.update if self.config.normalize_obs else None
            collect_rollout(self.interaction, self.buffer, self.rollout_step, self.model.value, self.global_step,
                            where=where, observe=observe)
        self.global_step += self.config.n_steps * self.config.n_envs

    def targets(self) -> tuple[Tensor, Tensor]:
        """GAE(lambda) advantages and the critic's regression targets (lambda-returns); compiled with the run option
        ``compile``."""
        return gae_targets(self.buffer, self.config.gamma, self.config.gae_lambda, self.compiled_gae)

    @abstractmethod
    def update(self, advantages: Tensor, returns: Tensor) -> dict[str, float]:
        """The member's learning step on the collected batch; returns the log row's values."""

    def annealed_optimizers(self) -> list[tuple[torch.optim.Optimizer, float]]:
        """The (optimiser, initial learning rate) pairs whose rate decays linearly to 0 over ``learn``'s budget:
        none unless the member's config sets ``anneal_lr``."""
        return []

    def learn(self, total_steps: int) -> OnPolicyAgent:
        """Train until ``total_steps`` env steps (counting all copies) or the run's ``stop_return``.

        With annealed optimisers, each update runs at ``lr * (1 - global_step / total_steps)``, the step counted
        after the update's rollout (as PPO does), so a resumed run (same ``total_steps``) uses the same rates.
        """
        annealed = [(optimizer, Linear(lr, 0.0, total_steps)) for optimizer, lr in self.annealed_optimizers()]
        with self.session(total_steps) as run:
            while run.running():
                self.collect()
                advantages, returns = self.targets()
                for optimizer, schedule in annealed:
                    set_learning_rate(optimizer, schedule(self.global_step))
                stats = self.update(advantages, returns)
                if annealed:
                    stats["lr"] = float(annealed[0][0].param_groups[0]["lr"])
                run.log(stats)
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """The most probable action (deterministic) or a sample of pi(. | s)."""
        if deterministic:
            return self.model.greedy(obs)
        return self.model.distribution(obs).sample(generator)
