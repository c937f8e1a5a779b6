"""Proximal Policy Optimization (PPO-Clip).

Notes: 003 lecture 8 (TRPO -> PPO), 004 "Proximal Policy Optimization" (surrogate, clipping, the K-epoch loop),
000 lecture 3. Each iteration collects ``n_steps`` from ``n_envs`` copies with the current policy pi_old, computes
GAE(lambda) advantages, then takes ``n_epochs`` passes of minibatch gradient steps on

    L(theta) = E_t[ min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t) ] - c1 L^VF + c2 S[pi_theta],
    r_t = pi_theta(a_t | s_t) / pi_old(a_t | s_t),

maximised (we minimise its negative). eps = 0.2 as in the paper and the notes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from thorndike.config import check, check_limits, describe
from thorndike.core.buffers import minibatches
from thorndike.core.compile import maybe_compile
from thorndike.core.diagnostics import explained_variance
from thorndike.core.losses import approx_kl, clipped_surrogate, importance_ratio, value_loss
from thorndike.core.networks import adam
from thorndike.core.returns import normalize
from thorndike.core.schedules import Constant, Linear
from thorndike.policy_gradient.base import OnPolicyAgent, check_family_fields


@dataclass
class PPOConfig:
    """PPO's hyperparameters, with the PPO paper's names where they have one (N, T, K, eps, c1, c2)."""

    n_envs: int = describe("parallel environment copies (N)", 8)
    n_steps: int = describe("steps collected per copy each iteration (T); batch = N * T", 256)
    lr: float = describe("Adam learning rate", 3e-4)
    anneal_lr: bool = describe("decay the learning rate linearly to 0 over the run", True)
    gamma: float = describe("discount factor", 0.99)
    gae_lambda: float = describe("GAE lambda: 0 is one-step TD, 1 is Monte Carlo", 0.95)
    n_epochs: int = describe("passes over each batch (K)", 10, at_most=100)  # the paper's K is 3 to 15
    minibatch_size: int = describe("samples per gradient step", 64)
    clip: float = describe("clip range eps of the probability ratio", 0.2)
    clip_value: float | None = describe("clip range of the value update (None: unclipped)", None)
    vf_coef: float = describe("value-loss coefficient c1", 0.5)
    ent_coef: float = describe("entropy-bonus coefficient c2", 0.0)
    max_grad_norm: float | None = describe("clip the gradient's global norm to this (None: off)", 0.5)
    target_kl: float | None = describe("stop the epochs early once approx. KL exceeds this (None: off)", None)
    normalize_advantages: bool = describe("standardise advantages per minibatch", True)
    normalize_obs: bool = describe("normalise observations with running statistics", False)
    normalize_reward: bool = describe("scale rewards by the running std of the discounted return", False)
    hidden_sizes: tuple[int, ...] = describe("hidden layer widths of the actor and the critic", (64, 64))
    activation: str = describe("hidden activation: tanh or relu", "tanh")
    log_std_init: float = describe("initial log std of the Gaussian policy (continuous actions)", 0.0)

    def __post_init__(self) -> None:
        check_limits(self)
        check_family_fields(self)
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.n_epochs >= 1, "n_epochs", self.n_epochs, ">= 1")
        check(self.minibatch_size >= 1, "minibatch_size", self.minibatch_size, ">= 1")
        check(self.minibatch_size <= self.n_envs * self.n_steps, "minibatch_size", self.minibatch_size,
              f"<= n_envs * n_steps = {self.n_envs * self.n_steps}")
        check(self.clip > 0, "clip", self.clip, "> 0")
        check(self.clip_value is None or self.clip_value > 0, "clip_value", self.clip_value, "> 0 or None")
        check(self.vf_coef >= 0, "vf_coef", self.vf_coef, ">= 0")
        check(self.ent_coef >= 0, "ent_coef", self.ent_coef, ">= 0")
        check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm,
              "> 0 or None")
        check(self.target_kl is None or self.target_kl > 0, "target_kl", self.target_kl, "> 0 or None")


class PPO(OnPolicyAgent):
    """Proximal Policy Optimization with clipped surrogate, GAE and minibatch epochs."""

    name = "ppo"
    Config = PPOConfig

    def build(self) -> None:
        config: PPOConfig = self.config
        # Rewards are scaled below the episode ledger (logged returns stay raw); observations are normalised by the
        # model, so the rollout stores raw observations.
        self.connect_actor_critic(normalize_reward=config.normalize_reward, gamma=config.gamma)
        self.optimizer = adam(self.model.parameters(), lr=config.lr, eps=1e-5, device=self.device)
        self.components = {"model": self.model, "optimizer": self.optimizer}
        # The two hot functions, compiled when options.compile is set (eager if compiling fails).
        compile_on = self.options.compile
        self.rollout_step = maybe_compile(self.sample_actions, compile_on, self.device, "the PPO rollout step")
        self.loss = maybe_compile(self.minibatch_loss, compile_on, self.device, "the PPO loss")

    def learn(self, total_steps: int) -> PPO:
        """Train until ``total_steps`` env steps (counting all copies) or the run's ``stop_return``."""
        lr = Linear(self.config.lr, 0.0, total_steps) if self.config.anneal_lr else Constant(self.config.lr)
        with self.session(total_steps) as run:
            while run.running():
                self.collect()
                advantages, returns = self.targets()
                stats = self.update(advantages, returns, lr(self.global_step))
                run.log(stats)
        return self

    def minibatch_loss(self, mb: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """-L^CLIP + c1 L^VF - c2 S on one minibatch, and its two losses (detached) for the log.

        Only what the gradient needs is computed here, once per gradient step; the diagnostics (KL, clip fraction,
        entropy) are measured once per iteration by :meth:`diagnostics`. With ``target_kl`` set, the minibatch's
        approximate KL is returned too, for the early stop.
        """
        config = self.config
        dist, values = self.model.distribution_and_value(mb["obs"])  # the observations encoded once for both
        log_ratio = dist.log_prob(mb["actions"]) - mb["log_probs"]
        ratio = importance_ratio(log_ratio)
        adv = normalize(mb["advantages"]) if config.normalize_advantages else mb["advantages"]
        policy_loss = -clipped_surrogate(ratio, adv, config.clip).mean()
        v_loss = value_loss(values, mb["returns"], mb["values"], config.clip_value)
        loss = policy_loss + config.vf_coef * v_loss
        if config.ent_coef > 0:
            loss = loss - config.ent_coef * dist.entropy().mean()
        parts = {"policy_loss": policy_loss.detach(), "value_loss": v_loss.detach()}
        if config.target_kl is not None:
            parts["approx_kl"] = approx_kl(log_ratio.detach())
        return loss, parts

    @torch.no_grad()
    def diagnostics(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """How far the update moved the policy from pi_old, over the whole batch: approx. KL(pi_old || pi), the
        fraction of samples whose ratio left [1 - eps, 1 + eps], and the entropy of pi."""
        dist = self.model.distribution(batch["obs"])
        log_ratio = dist.log_prob(batch["actions"]) - batch["log_probs"]
        return {
            "entropy": float(dist.entropy().mean()),
            "approx_kl": float(approx_kl(log_ratio)),
            "clip_fraction": float(((log_ratio.exp() - 1).abs() > self.config.clip).float().mean()),
        }

    def update(self, advantages: Tensor, returns: Tensor, lr: float | None = None) -> dict[str, float]:
        """n_epochs passes of minibatch steps on the clipped surrogate, value loss and entropy bonus, at learning rate
        ``lr`` (None: the optimiser's current one)."""
        config = self.config
        if lr is None:
            lr = float(self.optimizer.param_groups[0]["lr"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        rollout = self.buffer.flat(advantages=advantages, returns=returns)
        # Only the fields the loss reads are gathered per minibatch.
        batch = {k: rollout[k] for k in ("obs", "actions", "log_probs", "values", "advantages", "returns")}
        totals = {"policy_loss": 0.0, "value_loss": 0.0}
        n_updates, stopped_early = 0, False
        for _ in range(config.n_epochs):
            for mb in minibatches(batch, config.minibatch_size, self.generator):
                loss, parts = self.loss(mb)
                if config.target_kl is not None and parts["approx_kl"] > config.target_kl:
                    stopped_early = True
                    break
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
                self.optimizer.step()
                n_updates += 1
                totals["policy_loss"] += parts["policy_loss"]  # summed on device; read once per iteration
                totals["value_loss"] += parts["value_loss"]
            if stopped_early:
                break
        self.check_finite("loss", torch.as_tensor(totals["policy_loss"] + totals["value_loss"]))
        stats = {k: float(v) / max(n_updates, 1) for k, v in totals.items()}
        stats.update(self.diagnostics(batch))
        stats["explained_variance"] = float(explained_variance(batch["values"], batch["returns"]))
        stats["lr"] = lr
        stats["updates"] = n_updates
        return stats
