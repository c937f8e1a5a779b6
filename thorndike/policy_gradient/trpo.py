"""TRPO: trust region policy optimisation with conjugate gradient, a KL radius and a backtracking line search.

Notes: 003 lecture 8 (L1058-L1142: maximise the surrogate L(theta') = E_t[pi_theta'(a_t|s_t) / pi_theta(a_t|s_t) A_t]
subject to E_s[KL(pi_theta(.|s) || pi_theta'(.|s))] <= delta; to first order L gains g^T d, to second order the KL is
(1/2) d^T F d, and the step is the natural gradient d* = sqrt(2 delta / g^T F^-1 g) F^-1 g), 000 and 004 (TRPO before
PPO), Schulman et al. 2015 (appendix C: F^-1 g by conjugate gradient on Fisher-vector products, then a line search).
Each iteration

1. collects ``n_steps`` from each of ``n_envs`` copies with pi_theta and computes GAE(lambda) advantages;
2. takes g = grad L at theta (where the ratio is 1, so g is the policy gradient), solves (F + damping I) x = g by
   ``cg_iterations`` of conjugate gradient, and scales x to the full step sqrt(2 delta / g^T x) x
   (:func:`~thorndike.core.natural_gradient.natural_step_size`);
3. backtracks: tries the full step, then ``line_search_shrink`` times it, ... (``line_search_steps`` tries), and keeps
   the first whose exact mean KL is at most delta AND whose surrogate improved; if none, the policy stays. So every
   step taken satisfies KL <= delta, which :meth:`TRPO.update` checks and logs (``kl``);
4. fits V to the lambda-returns apart from the policy, by ``value_steps`` passes of Adam regression.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from thorndike.config import check, check_limits, describe
from thorndike.core.diagnostics import explained_variance
from thorndike.core.losses import importance_ratio, kl_divergence, surrogate
from thorndike.core.natural_gradient import conjugate_gradient, fisher_vector_product, flat_grad, natural_step_size
from thorndike.core.networks import adam
from thorndike.core.on_policy import fit_value, policy_params
from thorndike.core.returns import normalize
from thorndike.policy_gradient.base import OnPolicyAgent, check_family_fields

__all__ = ["TRPO", "TRPOConfig", "TrustRegionStep", "trust_region_step"]


@dataclass
class TRPOConfig:
    """TRPO's hyperparameters (Stable-Baselines3's defaults where it has them; delta is its target_kl)."""

    n_envs: int = describe("parallel environment copies", 1)
    n_steps: int = describe("steps per copy each iteration; batch = n_envs * n_steps", 2048)
    max_kl: float = describe("the trust region's radius delta: the mean KL(pi_old || pi_new) a step may reach",
                             0.01)
    cg_iterations: int = describe("conjugate-gradient iterations solving F x = g", 15, at_most=1000)
    cg_damping: float = describe("added to F's diagonal (F + damping I) to keep the solve well conditioned", 0.1)
    line_search_steps: int = describe("step sizes tried: the full natural step, then shrunk each time", 10,
                                      at_most=100)
    line_search_shrink: float = describe("factor of each backtrack of the line search", 0.8)
    value_lr: float = describe("Adam learning rate of V", 1e-3)
    value_steps: int = describe("passes of regression on V per update (SB3: n_critic_updates)", 10, at_most=200)
    value_minibatch_size: int | None = describe("samples per V step (None: the whole batch)", 128)
    gamma: float = describe("discount factor", 0.99)
    gae_lambda: float = describe("GAE lambda", 0.95)
    normalize_advantages: bool = describe("standardise the advantages of each batch", True)
    normalize_obs: bool = describe("normalise observations with running statistics", False)
    normalize_reward: bool = describe("scale rewards by the running std of the discounted return", False)
    hidden_sizes: tuple[int, ...] = describe("hidden layer widths of the policy and of V", (64, 64))
    activation: str = describe("hidden activation: tanh or relu", "tanh")
    log_std_init: float = describe("initial log std of the Gaussian policy (continuous actions)", 0.0)

    def __post_init__(self) -> None:
        check_limits(self)
        check_family_fields(self)
        check(0 < self.max_kl < math.inf, "max_kl", self.max_kl, "> 0 and finite")
        check(self.cg_iterations >= 1, "cg_iterations", self.cg_iterations, ">= 1")
        check(self.cg_damping >= 0, "cg_damping", self.cg_damping, ">= 0")
        check(self.line_search_steps >= 1, "line_search_steps", self.line_search_steps, ">= 1")
        check(0 < self.line_search_shrink < 1, "line_search_shrink", self.line_search_shrink, "in (0, 1)")
        check(self.value_lr > 0, "value_lr", self.value_lr, "> 0")
        check(self.value_steps >= 1, "value_steps", self.value_steps, ">= 1")
        check(self.value_minibatch_size is None or self.value_minibatch_size >= 1, "value_minibatch_size",
              self.value_minibatch_size, ">= 1 or None")


@dataclass
class TrustRegionStep:
    """What one trust-region step did: the natural step's scale, and the line search's outcome."""

    step_size: float  # sqrt(2 delta / g^T x), x ~ (F + damping I)^-1 g: the full step is step_size * x
    expected_improvement: float  # g^T (full step): the surrogate's first-order gain of the full step
    improvement: float  # the surrogate's true gain of the step taken (0 if none)
    kl: float  # the exact mean KL(pi_old || pi_new) of the step taken (0 if none)
    backtracks: int  # how many times the step was shrunk before one was accepted (all of them if none)
    accepted: bool  # False: no tried step satisfied both conditions, and the parameters are unchanged


def trust_region_step(params: Sequence[nn.Parameter], objective: Callable[[], Tensor],
                      mean_kl: Callable[[], Tensor], max_kl: float, cg_iterations: int = 10, damping: float = 0.1,
                      shrink: float = 0.8, tries: int = 10) -> TrustRegionStep:
    """Move ``params`` by TRPO's step: natural gradient scaled to the KL radius, then a backtracking line search.

    ``objective()`` is the surrogate to maximise at the current ``params``; ``mean_kl()`` the mean
    KL(pi_old || pi_params) with pi_old the policy at the call (detached), so it is 0 there and its Hessian is the
    Fisher matrix. A step fraction ``shrink**k`` (k = 0, 1, ..., tries - 1) is accepted when its exact KL is at most
    ``max_kl`` and the surrogate went up; if none is, ``params`` are restored.
    """
    params = list(params)
    old_objective = objective()
    gradient = flat_grad(old_objective, params)
    direction = conjugate_gradient(fisher_vector_product(mean_kl, params, damping), gradient, cg_iterations)
    g_dot_x = float(gradient @ direction)
    if not (g_dot_x > 0 and math.isfinite(g_dot_x)):  # a zero gradient (all advantages 0): nothing to step along
        return TrustRegionStep(0.0, 0.0, 0.0, 0.0, 0, False)
    step_size = natural_step_size(gradient, direction, max_kl)
    full_step = step_size * direction
    start = parameters_to_vector(params).detach()
    baseline = float(old_objective.detach())
    with torch.no_grad():
        for k in range(tries):
            vector_to_parameters(start + shrink**k * full_step, params)
            kl, gain = float(mean_kl()), float(objective()) - baseline  # one host sync per try, per update
            if kl <= max_kl and gain > 0:
                return TrustRegionStep(float(step_size), float(gradient @ full_step), gain, kl, k, True)
        vector_to_parameters(start, params)
    return TrustRegionStep(float(step_size), float(gradient @ full_step), 0.0, 0.0, tries, False)


class TRPO(OnPolicyAgent):
    """Trust region policy optimisation: natural-gradient steps inside a KL radius, checked by a line search."""

    name = "trpo"
    Config = TRPOConfig

    def build(self) -> None:
        config = self.config
        self.connect_actor_critic()
        # the policy has no optimiser: its step is the trust-region step; V has its own Adam
        self.value_optimizer = adam(self.model.critic.parameters(), lr=config.value_lr, device=self.device)
        self.components = {"model": self.model, "value_optimizer": self.value_optimizer}

    # ---- update (collect, targets and the loop: OnPolicyAgent) --------------------------------------------------

    def update(self, advantages: Tensor, returns: Tensor) -> dict[str, float]:
        """The trust-region step on the policy (its KL checked against delta), then V's regression."""
        config = self.config
        batch = self.buffer.flat(advantages=advantages, returns=returns)
        obs, actions = batch["obs"], batch["actions"]
        adv = normalize(batch["advantages"]) if config.normalize_advantages else batch["advantages"]
        # pi_old is the policy now: with normalize_obs it already sees the final statistics of this rollout, so the
        # ratio and the KL are measured from theta, where the surrogate's gradient is the policy gradient.
        with torch.no_grad():
            old = self.model.distribution(obs)
            old_log_probs = old.log_prob(actions)

        def objective() -> Tensor:
            log_ratio = self.model.distribution(obs).log_prob(actions) - old_log_probs
            return surrogate(importance_ratio(log_ratio), adv).mean()

        def mean_kl() -> Tensor:
            return kl_divergence(old, self.model.distribution(obs)).mean()

        step = trust_region_step(policy_params(self.model), objective, mean_kl, config.max_kl, config.cg_iterations,
                                 config.cg_damping, config.line_search_shrink, config.line_search_steps)
        if not step.kl <= config.max_kl:  # the line search's guarantee; NaN fails it too
            raise RuntimeError(f"TRPO step with KL {step.kl} above max_kl {config.max_kl}")
        value_loss = fit_value(self.model, self.value_optimizer, obs, batch["returns"], config.value_steps,
                               config.value_minibatch_size, self.generator)
        self.check_finite("loss", value_loss)
        with torch.no_grad():
            entropy = self.model.distribution(obs).entropy().mean()
        return {"kl": step.kl, "step_size": step.step_size, "surrogate_improvement": step.improvement,
                "expected_improvement": step.expected_improvement, "backtracks": step.backtracks,
                "accepted": float(step.accepted), "value_loss": float(value_loss), "entropy": float(entropy),
                "explained_variance": float(explained_variance(batch["values"], batch["returns"]))}
