"""VPG: the vanilla policy gradient with a learned value function and GAE advantages (Spinning Up's VPG).

Notes: 003 lecture 6 (the policy gradient theorem, a baseline b(s_t) leaves the gradient unbiased and lowers its
variance), 003 L811-L818 (the advantage form grad J = E[grad log pi(a_t|s_t) A^pi(s_t, a_t)]), 000 lecture 3 and
001 unit 4 (value-function baselines). Each iteration collects ``n_steps`` from each of ``n_envs`` copies with the
current policy, estimates A_t by GAE(lambda) from the critic V, then takes ONE Adam step on

    L(theta) = -mean_t[ log pi_theta(a_t | s_t) A_t ]

and, apart from it, fits V to the lambda-returns R_t = A_t + V_old(s_t) by ``value_steps`` regression steps of
mean squared error with its own Adam (Spinning Up: 80 full-batch steps at 1e-3). Unlike A2C the critic is not in
the policy's loss and takes many steps per batch; unlike REINFORCE the batch is a fixed number of steps, with
episodes cut and bootstrapped by V at the rollout's end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.config import check, check_limits, describe
from thorndike.core.diagnostics import explained_variance
from thorndike.core.networks import adam
from thorndike.core.on_policy import fit_value, policy_params
from thorndike.core.returns import normalize
from thorndike.policy_gradient.base import OnPolicyAgent, check_family_fields

__all__ = ["VPG", "VPGConfig"]


@dataclass
class VPGConfig:
    """VPG's hyperparameters (Spinning Up's names in the help where they differ)."""

    n_envs: int = describe("parallel environment copies", 4)
    n_steps: int = describe("steps per copy each iteration; batch = n_envs * n_steps (Spinning Up: steps_per_epoch)",
                            1000)
    lr: float = describe("Adam learning rate of the policy (pi_lr)", 3e-4)
    anneal_lr: bool = describe("decay the policy's learning rate linearly to 0 over the run (V's stays)", False)
    value_lr: float = describe("Adam learning rate of V (vf_lr)", 1e-3)
    value_steps: int = describe("regression steps on V per update (train_v_iters)", 80, at_most=200)
    value_minibatch_size: int | None = describe("samples per V step (None: the whole batch)", None)
    gamma: float = describe("discount factor", 0.99)
    gae_lambda: float = describe("GAE lambda (lam)", 0.97)
    normalize_advantages: bool = describe("standardise the advantages of each batch", True)
    ent_coef: float = describe("entropy-bonus coefficient (0: the plain policy gradient)", 0.0)
    normalize_obs: bool = describe("normalise observations with running statistics", False)
    normalize_reward: bool = describe("scale rewards by the running std of the discounted return", False)
    hidden_sizes: tuple[int, ...] = describe("hidden layer widths of the policy and of V", (64, 64))
    activation: str = describe("hidden activation: tanh or relu", "tanh")
    log_std_init: float = describe("initial log std of the Gaussian policy (continuous actions)", -0.5)

    def __post_init__(self) -> None:
        check_limits(self)
        check_family_fields(self)
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.value_lr > 0, "value_lr", self.value_lr, "> 0")
        check(self.value_steps >= 1, "value_steps", self.value_steps, ">= 1")
        check(self.value_minibatch_size is None or self.value_minibatch_size >= 1, "value_minibatch_size",
              self.value_minibatch_size, ">= 1 or None")
        check(self.ent_coef >= 0, "ent_coef", self.ent_coef, ">= 0")


class VPG(OnPolicyAgent):
    """Vanilla policy gradient: one step on -log pi(a|s) A (GAE) per batch, V fitted by its own regression steps."""

    name = "vpg"
    Config = VPGConfig

    def build(self) -> None:
        config = self.config
        self.connect_actor_critic()
        self.policy_optimizer = adam(policy_params(self.model), lr=config.lr, device=self.device)
        self.value_optimizer = adam(self.model.critic.parameters(), lr=config.value_lr, device=self.device)
        self.components = {"model": self.model, "policy_optimizer": self.policy_optimizer,
                           "value_optimizer": self.value_optimizer}

    def annealed_optimizers(self) -> list[tuple[torch.optim.Optimizer, float]]:
        return [(self.policy_optimizer, self.config.lr)] if self.config.anneal_lr else []

    # ---- update (collect, targets and the loop: OnPolicyAgent) --------------------------------------------------

    def update(self, advantages: Tensor, returns: Tensor) -> dict[str, float]:
        """One policy step on -mean log pi(a|s) A (minus the entropy bonus), then ``value_steps`` steps on V."""
        config = self.config
        batch = self.buffer.flat(advantages=advantages, returns=returns)
        dist = self.model.distribution(batch["obs"])
        adv = normalize(batch["advantages"]) if config.normalize_advantages else batch["advantages"]
        policy_loss = -(dist.log_prob(batch["actions"]) * adv).mean()
        entropy = dist.entropy().mean()
        loss = policy_loss - config.ent_coef * entropy if config.ent_coef > 0 else policy_loss
        self.policy_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.policy_optimizer.step()
        value_loss = fit_value(self.model, self.value_optimizer, batch["obs"], batch["returns"], config.value_steps,
                               config.value_minibatch_size, self.generator)
        parts = torch.stack([policy_loss.detach(), value_loss, entropy.detach()])
        self.check_finite("loss", parts)
        policy_value, value_value, entropy_value = parts.tolist()  # one host sync per iteration
        return {"policy_loss": policy_value, "value_loss": value_value, "entropy": entropy_value,
                "explained_variance": float(explained_variance(batch["values"], batch["returns"]))}
