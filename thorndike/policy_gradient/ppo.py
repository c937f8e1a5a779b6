"""Proximal Policy Optimization: PPO-Clip, and the KL-penalised variant.

Notes: 003 lecture 8 (TRPO -> PPO), 004 "Proximal Policy Optimization" (surrogate, clipping, the K-epoch loop),
000 lecture 3. Each iteration collects ``n_steps`` from ``n_envs`` copies with the current policy pi_old, computes
GAE(lambda) advantages, then takes ``n_epochs`` passes of minibatch gradient steps on

    L(theta) = E_t[ min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t) ] - c1 L^VF + c2 S[pi_theta],
    r_t = pi_theta(a_t | s_t) / pi_old(a_t | s_t),

maximised (we minimise its negative). eps = 0.2 as in the paper and the notes.

``objective="kl_penalty"`` replaces the clipped term by the PPO paper's adaptive KL penalty (its section 4; 003
lecture 8, "PPO's clip and its KL-regularised form"):

    L^KLPEN(theta) = E_t[ r_t A_t - beta KL(pi_old(. | s_t) || pi_theta(. | s_t)) ],

with the exact KL between the two action distributions. After each iteration's epochs, d = the batch's mean KL, and
beta adapts for the next iteration: if d < d_targ / 1.5, beta <- beta / 2; if d > d_targ * 1.5, beta <- beta * 2
(``kl_target`` is d_targ). beta is part of the run's state, checkpointed like the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from thorndike.config import check, check_limits, describe
from thorndike.core.buffers import minibatches
from thorndike.core.capture import GradientStep, capture, capture_by_default
from thorndike.core.compile import maybe_compile
from thorndike.core.diagnostics import explained_variance
from thorndike.core.distributions import Categorical, DiagGaussian
from thorndike.core.losses import (
    approx_kl,
    clipped_surrogate,
    importance_ratio,
    kl_divergence,
    kl_penalized_surrogate,
    value_loss,
)
from thorndike.core.networks import adam
from thorndike.core.returns import normalize
from thorndike.core.schedules import Constant, Linear
from thorndike.policy_gradient.base import OnPolicyAgent, check_family_fields

OBJECTIVES = ("clip", "kl_penalty")


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
    objective: str = describe("policy objective: clip (L^CLIP) or kl_penalty (r A - beta KL(pi_old || pi), beta "
                              "adapted towards kl_target)", "clip")
    clip: float = describe("clip range eps of the probability ratio (kl_penalty: only the logged clip_fraction)", 0.2)
    kl_target: float = describe("kl_penalty: the target d_targ of the mean KL(pi_old || pi) per iteration", 0.01)
    kl_beta_init: float = describe("kl_penalty: the penalty coefficient beta of the first iteration", 1.0)
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
        check(self.objective in OBJECTIVES, "objective", self.objective, " or ".join(OBJECTIVES))
        check(self.clip > 0, "clip", self.clip, "> 0")
        check(self.kl_target > 0, "kl_target", self.kl_target, "> 0")
        check(self.kl_beta_init > 0, "kl_beta_init", self.kl_beta_init, "> 0")
        check(self.clip_value is None or self.clip_value > 0, "clip_value", self.clip_value, "> 0 or None")
        check(self.vf_coef >= 0, "vf_coef", self.vf_coef, ">= 0")
        check(self.ent_coef >= 0, "ent_coef", self.ent_coef, ">= 0")
        check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm,
              "> 0 or None")
        check(self.target_kl is None or self.target_kl > 0, "target_kl", self.target_kl, "> 0 or None")


def adapt_kl_beta(beta: float, kl: float, kl_target: float) -> float:
    """The PPO paper's adaptive KL coefficient: halve beta when the iteration's mean KL ``kl`` fell below
    ``kl_target / 1.5`` (the penalty held the policy back), double it above ``kl_target * 1.5`` (the policy moved
    too far), keep it in between. The factors 1.5 and 2 are the paper's; it reports the result is not sensitive to
    them."""
    if kl < kl_target / 1.5:
        return beta / 2
    if kl > kl_target * 1.5:
        return beta * 2
    return beta


class KLPenalty:
    """The KL penalty's coefficient beta, a checkpoint component: a 0-d float64 tensor on the agent's device, so the
    (possibly compiled) loss reads it without a host value baked in, changed in place once per iteration."""

    def __init__(self, beta: float, device: torch.device | str) -> None:
        self.beta = torch.tensor(beta, dtype=torch.float64, device=device)

    def adapt(self, kl: float, kl_target: float) -> None:
        """Move beta by :func:`adapt_kl_beta` for the iteration's mean KL (already on the host, for the log)."""
        self.beta.fill_(adapt_kl_beta(float(self.beta), kl, kl_target))

    def state_dict(self) -> dict[str, Tensor]:
        return {"beta": self.beta.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.beta.copy_(state["beta"])


class PPO(OnPolicyAgent):
    """Proximal Policy Optimization with clipped (or KL-penalised) surrogate, GAE and minibatch epochs."""

    name = "ppo"
    Config = PPOConfig

    def build(self) -> None:
        config: PPOConfig = self.config
        # Rewards are scaled below the episode ledger (logged returns stay raw); observations are normalised by the
        # model, so the rollout stores raw observations.
        self.connect_actor_critic(normalize_reward=config.normalize_reward, gamma=config.gamma)
        self.optimizer = adam(self.model.parameters(), lr=config.lr, eps=1e-5, device=self.device)
        self.components = {"model": self.model, "optimizer": self.optimizer}
        if config.objective == "kl_penalty":
            self.kl_penalty = KLPenalty(config.kl_beta_init, self.device)
            self.components["kl_penalty"] = self.kl_penalty
        # The hot functions, compiled when options.compile is set (eager if compiling fails). The gradient step
        # (loss, backward, clip, Adam) then runs as one captured program (``capture``, which may be set before the
        # first update; not with target_kl, whose early stop reads each minibatch's KL before its step); without
        # it the loss alone is compiled.
        compile_on = self.options.compile
        self.rollout_step = maybe_compile(self.sample_actions, compile_on, self.device, "the PPO rollout step")
        self.loss = maybe_compile(self.minibatch_loss, compile_on, self.device, "the PPO loss")
        self.capture = capture_by_default(compile_on, self.device) and config.target_kl is None
        self.captured_step = None

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
        """-L^CLIP (or -L^KLPEN) + c1 L^VF - c2 S on one minibatch, and its two losses (detached) for the log.

        Only what the gradient needs is computed here, once per gradient step; the diagnostics (KL, clip fraction,
        entropy) are measured once per iteration by :meth:`diagnostics`. With ``target_kl`` set, the minibatch's
        approximate KL is returned too, for the early stop.
        """
        config = self.config
        dist, values = self.model.distribution_and_value(mb["obs"])  # the observations encoded once for both
        log_ratio = dist.log_prob(mb["actions"]) - mb["log_probs"]
        ratio = importance_ratio(log_ratio)
        adv = normalize(mb["advantages"]) if config.normalize_advantages else mb["advantages"]
        if config.objective == "kl_penalty":
            kl = kl_divergence(self.old_distribution(mb), dist)
            policy_loss = -kl_penalized_surrogate(ratio, adv, kl, self.kl_penalty.beta).mean()
        else:
            policy_loss = -clipped_surrogate(ratio, adv, config.clip).mean()
        v_loss = value_loss(values, mb["returns"], mb["values"], config.clip_value)
        loss = policy_loss + config.vf_coef * v_loss
        if config.ent_coef > 0:
            loss = loss - config.ent_coef * dist.entropy().mean()
        parts = {"policy_loss": policy_loss.detach(), "value_loss": v_loss.detach()}
        if config.target_kl is not None:
            parts["approx_kl"] = approx_kl(log_ratio.detach())
        return loss, parts

    def gradient_step(self, mb: dict[str, Tensor]) -> dict[str, Tensor] | None:
        """One step on a minibatch's loss (backward, the gradient's norm clipped, Adam); returns its losses, or None
        without a step when ``target_kl`` stops the epochs (the minibatch's KL above it). Captured as one program
        when ``capture`` is set (:mod:`thorndike.core.capture`; not with ``target_kl``)."""
        if self.capture and self.config.target_kl is None:
            if self.captured_step is None:
                step = GradientStep({"model": self.model}, self.optimizer, self.config.max_grad_norm)
                self.captured_step = capture(lambda mb: step(self.minibatch_loss, mb)[1], [step], self.device,
                                             "the PPO gradient step")
            return self.captured_step(mb)
        loss, parts = self.loss(mb)
        if self.config.target_kl is not None and parts["approx_kl"] > self.config.target_kl:
            return None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        return parts

    @torch.no_grad()
    def old_parameters(self, obs: Tensor) -> dict[str, Tensor]:
        """pi_old's distribution on every state of the batch, as batch fields (so minibatches slice them): the
        policy as the update begins, the behaviour's network (with ``normalize_obs``, seen through the statistics
        the update uses). Categorical: its log-probabilities; Gaussian: mean and log std."""
        dist = self.model.distribution(obs)
        if isinstance(dist, Categorical):
            return {"old_logits": dist.logits}
        return {"old_mean": dist.mean, "old_log_std": dist.log_std.contiguous()}

    def old_distribution(self, mb: dict[str, Tensor]) -> Categorical | DiagGaussian:
        """pi_old(. | s) on a minibatch's states, from the fields :meth:`old_parameters` added (no gradient)."""
        if "old_logits" in mb:
            return Categorical(mb["old_logits"])
        return DiagGaussian(mb["old_mean"], mb["old_log_std"])

    @torch.no_grad()
    def diagnostics(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """How far the update moved the policy from pi_old, over the whole batch: approx. KL(pi_old || pi), the
        fraction of samples whose ratio left [1 - eps, 1 + eps], and the entropy of pi; for ``kl_penalty`` also the
        exact mean KL(pi_old || pi), the d that adapts beta."""
        dist = self.model.distribution(batch["obs"])
        log_ratio = dist.log_prob(batch["actions"]) - batch["log_probs"]
        stats = {
            "entropy": float(dist.entropy().mean()),
            "approx_kl": float(approx_kl(log_ratio)),
            "clip_fraction": float(((log_ratio.exp() - 1).abs() > self.config.clip).float().mean()),
        }
        if self.config.objective == "kl_penalty":
            stats["kl"] = float(kl_divergence(self.old_distribution(batch), dist).mean())
        return stats

    def update(self, advantages: Tensor, returns: Tensor, lr: float | None = None) -> dict[str, float]:
        """n_epochs passes of minibatch steps on the clipped (or KL-penalised) surrogate, value loss and entropy
        bonus, at learning rate ``lr`` (None: the optimiser's current one); ``kl_penalty`` then adapts beta."""
        config = self.config
        if lr is None:
            lr = float(self.optimizer.param_groups[0]["lr"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        rollout = self.buffer.flat(advantages=advantages, returns=returns)
        # Only the fields the loss reads are gathered per minibatch.
        batch = {k: rollout[k] for k in ("obs", "actions", "log_probs", "values", "advantages", "returns")}
        if config.objective == "kl_penalty":
            batch.update(self.old_parameters(batch["obs"]))
            beta = float(self.kl_penalty.beta)  # the beta this iteration's steps use, for the log
        totals = {"policy_loss": 0.0, "value_loss": 0.0}
        n_updates, stopped_early = 0, False
        for _ in range(config.n_epochs):
            for mb in minibatches(batch, config.minibatch_size, self.generator):
                parts = self.gradient_step(mb)
                if parts is None:
                    stopped_early = True
                    break
                n_updates += 1
                totals["policy_loss"] += parts["policy_loss"]  # summed on device; read once per iteration
                totals["value_loss"] += parts["value_loss"]
            if stopped_early:
                break
        self.check_finite("loss", torch.as_tensor(totals["policy_loss"] + totals["value_loss"]))
        stats = {k: float(v) / max(n_updates, 1) for k, v in totals.items()}
        stats.update(self.diagnostics(batch))
        stats["explained_variance"] = float(explained_variance(batch["values"], batch["returns"]))
        if config.objective == "kl_penalty":
            stats["kl_beta"] = beta
            self.kl_penalty.adapt(stats["kl"], config.kl_target)  # for the next iteration, as in the paper
        stats["lr"] = lr
        stats["updates"] = n_updates
        return stats
