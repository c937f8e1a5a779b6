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

import math
from dataclasses import dataclass

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thorndike.agent import Agent
from thorndike.config import check, check_limits, check_network, describe
from thorndike.core.diagnostics import StepChecks
from thorndike.core.encoders import make_encoder
from thorndike.core.networks import adam
from thorndike.core.off_policy import OffPolicySchedule, hard_update, soft_update
from thorndike.core.q_heads import q_network
from thorndike.core.replay import PrioritizedReplayBuffer, ReplayBuffer
from thorndike.core.resources import require_memory, tensor_bytes
from thorndike.core.schedules import Linear
from thorndike.core.targets import double_dqn_target, dqn_target

__all__ = ["DQN", "DQNConfig"]

AUTO_BUFFER_BYTES = 256 * 2**20  # buffer_in_checkpoint="auto" keeps buffers up to this size in checkpoints


@dataclass
class DQNConfig:
    """DQN's hyperparameters (Stable-Baselines3's names where it has them)."""

    n_envs: int = describe("parallel environment copies", 1)
    buffer_size: int = describe("replay buffer capacity (transitions)", 100_000)
    learning_starts: int = describe("env steps of uniform random actions before learning starts", 1000)
    batch_size: int = describe("transitions per gradient step", 64)
    lr: float = describe("Adam learning rate", 1e-3)
    gamma: float = describe("discount factor", 0.99)
    train_freq: int = describe("env steps between updates", 4)
    gradient_steps: int = describe("gradient steps per update", 1, at_most=10_000)
    target_update_interval: int = describe("env steps between target-network updates", 1000)
    tau: float = describe("target update: 1 copies theta (hard), below 1 moves theta^- by tau toward theta (soft)",
                          1.0)
    epsilon_start: float = describe("epsilon of epsilon-greedy at step 0 (the warm-up acts uniformly anyway)", 1.0)
    epsilon_end: float = describe("epsilon from step learning_starts + epsilon_steps on", 0.05)
    epsilon_steps: int = describe("epsilon falls linearly from start to end over the first learning_starts + "
                                  "epsilon_steps env steps", 10_000)
    loss: str = describe("huber (smooth L1, as in the Nature DQN) or mse", "huber")
    double: bool = describe("double DQN: the online network picks a', the target network values it", False)
    n_step: int = describe("n of the n-step returns (1: one-step targets)", 1, at_most=1000)
    prioritized: bool = describe("prioritised replay", False)
    per_alpha: float = describe("prioritised replay: P(i) proportional to p_i^alpha", 0.6)
    per_beta: float = describe("prioritised replay: beta of the importance weights when learning starts (it "
                               "rises linearly to 1 over per_beta_steps env steps)", 0.4)
    per_beta_steps: int = describe("prioritised replay: env steps over which beta reaches 1", 100_000)
    per_eps: float = describe("prioritised replay: p_i = |delta_i| + per_eps", 1e-6)
    max_grad_norm: float | None = describe("clip the gradient's global norm to this (None: off)", 10.0)
    hidden_sizes: tuple[int, ...] = describe("hidden layer widths of the Q-network", (64, 64))
    log_every: int = describe("env steps between log rows (an iteration: checkpoints and evaluations fall at its "
                              "ends)", 1000)
    buffer_in_checkpoint: str = describe("keep the replay buffer in checkpoints: auto (when it is at most 256 MiB), "
                                         "always or never", "auto")

    def __post_init__(self) -> None:
        check_limits(self)
        check(self.n_envs >= 1, "n_envs", self.n_envs, ">= 1")
        check(self.buffer_size >= 1, "buffer_size", self.buffer_size, ">= 1")
        check(self.learning_starts >= 0, "learning_starts", self.learning_starts, ">= 0")
        check(1 <= self.batch_size <= self.buffer_size, "batch_size", self.batch_size,
              f">= 1 and <= buffer_size = {self.buffer_size}")
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        check(self.train_freq >= 1, "train_freq", self.train_freq, ">= 1")
        check(self.gradient_steps >= 0, "gradient_steps", self.gradient_steps, ">= 0")
        check(self.target_update_interval >= 1, "target_update_interval", self.target_update_interval, ">= 1")
        check(0 < self.tau <= 1, "tau", self.tau, "in (0, 1]")
        for name in ("epsilon_start", "epsilon_end"):
            check(0 <= getattr(self, name) <= 1, name, getattr(self, name), "in [0, 1]")
        check(self.epsilon_steps >= 0, "epsilon_steps", self.epsilon_steps, ">= 0")
        check(self.loss in ("huber", "mse"), "loss", self.loss, "huber or mse")
        check(self.n_step >= 1, "n_step", self.n_step, ">= 1")
        check(0 <= self.per_alpha <= 1, "per_alpha", self.per_alpha, "in [0, 1]")
        check(0 <= self.per_beta <= 1, "per_beta", self.per_beta, "in [0, 1]")
        check(self.per_beta_steps >= 0, "per_beta_steps", self.per_beta_steps, ">= 0")
        check(self.per_eps > 0, "per_eps", self.per_eps, "> 0")
        check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm,
              "> 0 or None")
        check_network(self)
        check(self.log_every >= 1, "log_every", self.log_every, ">= 1")
        check(self.buffer_in_checkpoint in ("auto", "always", "never"), "buffer_in_checkpoint",
              self.buffer_in_checkpoint, "auto, always or never")


class DQN(Agent):
    """DQN with optional double targets, n-step returns, prioritised replay and soft target updates."""

    name = "dqn"
    Config = DQNConfig
    action_spaces = (gym.spaces.Discrete,)

    def build(self) -> None:
        config = self.config
        envs = self.connect_env(config.n_envs)
        self.n_actions = int(envs.action_space.n)
        sizes = [make_encoder(envs.observation_space).out_features, *config.hidden_sizes, self.n_actions]
        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        require_memory("the Q-network's weights (online and target), gradients and Adam moments",
                       tensor_bytes(5 * n_params), self.device, {"hidden_sizes": tuple(config.hidden_sizes)},
                       f"{n_params:,} weights x 5 copies")
        self.q = q_network(envs.observation_space, self.n_actions, config.hidden_sizes).to(self.device)
        self.q_target = q_network(envs.observation_space, self.n_actions, config.hidden_sizes).to(self.device)
        hard_update(self.q_target, self.q)
        self.q_target.requires_grad_(False)
        self.optimizer = adam(self.q.parameters(), lr=config.lr, device=self.device)
        rows = math.ceil(config.buffer_size / config.n_envs) * config.n_envs  # whole rows of n_envs transitions
        buffer_args = dict(capacity=rows, observation=envs.observation_space, action=envs.action_space,
                           n_envs=config.n_envs, device=self.device, n_step=config.n_step, gamma=config.gamma)
        self.buffer = (PrioritizedReplayBuffer(**buffer_args, alpha=config.per_alpha, eps=config.per_eps)
                       if config.prioritized else ReplayBuffer(**buffer_args))
        self.schedule = OffPolicySchedule(
            config.n_envs, config.learning_starts, config.train_freq, config.gradient_steps,
            1 if config.tau < 1 else config.target_update_interval,
            Linear(config.epsilon_start, config.epsilon_end, config.learning_starts + config.epsilon_steps))
        self.components = {"q": self.q, "q_target": self.q_target, "optimizer": self.optimizer}
        space = envs.observation_space
        self.checks = StepChecks(int(space.n) if isinstance(space, gym.spaces.Discrete) else None)
        keep = config.buffer_in_checkpoint
        if keep == "always" or (keep == "auto" and self.buffer.nbytes <= AUTO_BUFFER_BYTES):
            self.components["buffer"] = self.buffer

    # ---- collect -> targets -> update -> log ----------------------------------------------------------------

    @torch.no_grad()
    def act_epsilon_greedy(self, obs: Tensor) -> Tensor:
        """Uniform actions during the warm-up, then epsilon-greedy on Q(s, .; theta) (epsilon from the schedule)."""
        n = obs.shape[0]
        uniform = torch.randint(self.n_actions, (n,), generator=self.generator, device=self.device)
        if self.schedule.random_actions(self.global_step):
            return uniform
        explore = torch.rand(n, generator=self.generator, device=self.device) < self.schedule.epsilon(self.global_step)
        return torch.where(explore, uniform, self.q(obs).argmax(-1))

    def collect_step(self) -> None:
        """One vectorised step of every copy into the replay buffer (s' = the true next observation).

        What the env returned is checked once per chunk of steps and at the end of each iteration (before the
        loss is: a NaN from the env is named by step and copy, not found later as a NaN loss); until then, states
        out of range and NaN are mapped to harmless ones so that no encoder fails on them first."""
        obs, step = self.obs, self.global_step + self.config.n_envs
        actions = self.act_epsilon_greedy(obs)
        next_obs, rewards, terminated, truncated, info = self.interaction.step(actions, step)
        if self.checks.add(step, observation=next_obs, final_observation=info["final_obs"], reward=rewards):
            self.checks.check(f"iteration {self.iteration + 1}")
        self.obs = self.checks.safe(next_obs)
        self.buffer.add(obs, actions, rewards, self.checks.safe(info["final_obs"]), terminated, truncated)

    def targets(self, batch: dict[str, Tensor]) -> Tensor:
        """The regression targets y of a sampled minibatch (no gradient: theta^- is held fixed)."""
        with torch.no_grad():
            q_next_target = self.q_target(batch["next_obs"])
            # gamma^m (1 - terminated): no bootstrap after a termination, from the true last s' after a truncation
            discount = torch.where(batch["terminated"], 0.0, batch["discounts"].float())
            rewards = batch["rewards"].float()
            if self.config.double:
                return double_dqn_target(rewards, discount, self.q(batch["next_obs"]), q_next_target)
            return dqn_target(rewards, discount, q_next_target)

    def gradient_step(self) -> Tensor:
        """One minibatch step on the (weighted) TD loss; returns the loss, detached."""
        config = self.config
        if config.prioritized:
            beta = Linear(config.per_beta, 1.0, config.per_beta_steps)(max(self.global_step - config.learning_starts,
                                                                          0))
            batch = self.buffer.sample(config.batch_size, self.generator, beta)
            weights = batch["weights"].float()
        else:
            batch = self.buffer.sample(config.batch_size, self.generator)
            weights = None
        y = self.targets(batch)
        q = self.q(batch["obs"]).gather(-1, batch["actions"].long().unsqueeze(-1)).squeeze(-1)
        td = q - y
        losses = F.smooth_l1_loss(q, y, reduction="none") if config.loss == "huber" else td.square()
        loss = (losses * weights).mean() if weights is not None else losses.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.q.parameters(), config.max_grad_norm)
        self.optimizer.step()
        if config.prioritized:
            self.buffer.update_priorities(batch["indices"], td.detach())
        return loss.detach()

    def learn(self, total_steps: int) -> DQN:
        """Train until ``total_steps`` env steps (counting all copies) or the run's ``stop_return``; a log row every
        ``log_every`` env steps (rounded up to whole vectorised steps)."""
        config = self.config
        steps_per_row = max(1, math.ceil(config.log_every / config.n_envs))
        with self.session(total_steps) as run:
            while run.running():
                losses: list[Tensor] = []
                for _ in range(steps_per_row):
                    self.collect_step()
                    due = self.schedule.due(self.global_step)
                    self.global_step += config.n_envs
                    for _ in range(due.gradient_steps):
                        losses.append(self.gradient_step())
                    for _ in range(due.target_updates):
                        if config.tau < 1:
                            soft_update(self.q_target, self.q, config.tau)
                        else:
                            hard_update(self.q_target, self.q)
                    if self.global_step >= total_steps:
                        break
                self.checks.check(f"iteration {self.iteration + 1}")
                loss = torch.stack(losses).mean() if losses else torch.tensor(math.nan)
                if losses:
                    self.check_finite("loss", loss)
                run.log({"loss": float(loss), "epsilon": self.schedule.epsilon(self.global_step),
                         "gradient_steps": len(losses)})
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """argmax_a Q(s, a) (deterministic), or epsilon-greedy with the final epsilon."""
        obs = obs.to(self.device)
        greedy = self.q(obs).argmax(-1)
        if deterministic:
            return greedy
        uniform = torch.randint(self.n_actions, (len(obs),), generator=generator, device=self.device)
        explore = torch.rand(len(obs), generator=generator, device=self.device) < self.config.epsilon_end
        return torch.where(explore, uniform, greedy)
