"""A2C: synchronous advantage actor-critic with n-step returns.

Notes: 003 lecture 7 (actor-critic: the one-step TD advantage r + gamma V(s') - V(s) in place of the return, the
critic's squared-error loss; A3C's n-step returns), 004 (A3C with n-step returns, "typically 5-20", and the entropy
bonus; A2C as its synchronous version; A2C's total loss), 000 lecture 3 (bootstrap estimates of V). Each iteration
collects ``n_steps`` from each of ``n_envs`` copies with the current policy, then takes ONE gradient step on

    L = -mean_t[ log pi(a_t | s_t) A_t ] + c_v mean_t[ (V(s_t) - R_t)^2 ] - c_e mean_t[ H(pi(. | s_t)) ]

where R_t is the n-step return bootstrapped from V at the end of the rollout (or at a truncation; 0 after a
termination) and A_t = R_t - V(s_t): with ``gae_lambda = 1`` (the default, A2C's n-step advantage) A_t is the sum of
the discounted TD errors from t to the end of the window (003's equivalence, tested in tests/core/test_returns.py);
``gae_lambda < 1`` gives GAE. The optimiser is RMSprop (alpha 0.99, eps 1e-5, as in the A2C/A3C papers' code and
Stable-Baselines3's default; torch adds eps outside the square root, TensorFlow inside, which only matters for tiny
gradients) or Adam.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from thorndike.config import check, check_limits, describe
from thorndike.core.diagnostics import explained_variance
from thorndike.core.networks import adam
from thorndike.core.returns import normalize
from thorndike.policy_gradient.base import OnPolicyAgent, check_family_fields

__all__ = ["A2C", "A2CConfig"]

OPTIMIZERS = ("rmsprop", "adam")


@dataclass
class A2CConfig:
    """A2C's hyperparameters (Stable-Baselines3's defaults where it has them)."""

    n_envs: int = describe("parallel environment copies, stepped synchronously", 8)
    n_steps: int = describe("steps per copy before each update: the n of the n-step returns", 5)
    lr: float = describe("learning rate", 7e-4)
    anneal_lr: bool = describe("decay the learning rate linearly to 0 over the run", False)
    optimizer: str = describe("rmsprop (the A2C papers' code) or adam", "rmsprop")
    rms_alpha: float = describe("RMSprop's smoothing constant", 0.99)
    rms_eps: float = describe("RMSprop's epsilon", 1e-5)
    gamma: float = describe("discount factor", 0.99)
    gae_lambda: float = describe("1: n-step advantages (A2C); below 1: GAE", 1.0)
    vf_coef: float = describe("value-loss coefficient c_v", 0.5)
    ent_coef: float = describe("entropy-bonus coefficient c_e", 0.0)
    max_grad_norm: float | None = describe("clip the gradient's global norm to this (None: off)", 0.5)
    normalize_advantages: bool = describe("standardise the advantages of each batch", False)
    normalize_obs: bool = describe("normalise observations with running statistics", False)
    normalize_reward: bool = describe("scale rewards by the running std of the discounted return", False)
    hidden_sizes: tuple[int, ...] = describe("hidden layer widths of the actor and the critic", (64, 64))
    activation: str = describe("hidden activation: tanh or relu", "tanh")
    log_std_init: float = describe("initial log std of the Gaussian policy (continuous actions)", 0.0)

    def __post_init__(self) -> None:
        check_limits(self)
        check_family_fields(self)
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, " or ".join(OPTIMIZERS))
        check(0 <= self.rms_alpha < 1, "rms_alpha", self.rms_alpha, "in [0, 1)")
        check(self.rms_eps > 0, "rms_eps", self.rms_eps, "> 0")
        check(self.vf_coef >= 0, "vf_coef", self.vf_coef, ">= 0")
        check(self.ent_coef >= 0, "ent_coef", self.ent_coef, ">= 0")
        check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm,
              "> 0 or None")


class A2C(OnPolicyAgent):
    """Synchronous advantage actor-critic: n-step rollouts from parallel copies, one gradient step each."""

    name = "a2c"
    Config = A2CConfig

    def build(self) -> None:
        config = self.config
        self.connect_actor_critic()
        if config.optimizer == "rmsprop":
            self.optimizer: torch.optim.Optimizer = torch.optim.RMSprop(
                self.model.parameters(), lr=config.lr, alpha=config.rms_alpha, eps=config.rms_eps)
        else:
            self.optimizer = adam(self.model.parameters(), lr=config.lr, device=self.device)
        self.components = {"model": self.model, "optimizer": self.optimizer}

    def annealed_optimizers(self) -> list[tuple[torch.optim.Optimizer, float]]:
        return [(self.optimizer, self.config.lr)] if self.config.anneal_lr else []

    # ---- update (collect, targets and the loop: OnPolicyAgent) --------------------------------------------------

    def update(self, advantages: Tensor, returns: Tensor) -> dict[str, float]:
        """One gradient step on the policy loss, c_v times the value loss and -c_e times the entropy."""
        config = self.config
        batch = self.buffer.flat(advantages=advantages, returns=returns)
        dist, values = self.model.distribution_and_value(batch["obs"])
        adv = normalize(batch["advantages"]) if config.normalize_advantages else batch["advantages"]
        policy_loss = -(dist.log_prob(batch["actions"]) * adv).mean()
        value_loss = (values - batch["returns"]).square().mean()
        entropy = dist.entropy().mean()
        loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.optimizer.step()
        parts = torch.stack([policy_loss.detach(), value_loss.detach(), entropy.detach()])
        self.check_finite("loss", parts)
        policy_value, value_value, entropy_value = parts.tolist()  # one host sync per iteration
        return {"policy_loss": policy_value, "value_loss": value_value, "entropy": entropy_value,
                "explained_variance": float(explained_variance(batch["values"], batch["returns"]))}
