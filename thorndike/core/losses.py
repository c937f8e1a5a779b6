"""Policy-gradient loss pieces shared by PPO and TRPO: the importance ratio, the surrogate, its PPO-Clip and
KL-penalised forms, (clipped) value loss, the approximate (sampled) KL and the exact KL between two policies' action
distributions.

Lecture-notes concept: *trust-region-style policy optimisation* (003 lecture 8: the surrogate
L(theta') = E_t[pi_theta'(a_t|s_t) / pi_theta(a_t|s_t) A_t], TRPO's constraint E_s[KL(pi_theta || pi_theta')] <= delta,
the PPO-Clip surrogate objective and its KL-regularised form, value-function regression, and monitoring the policy
change with a KL estimator).
"""

from __future__ import annotations

import torch
from torch import Tensor

from thorndike.core.distributions import Categorical, DiagGaussian

__all__ = ["importance_ratio", "surrogate", "clipped_surrogate", "kl_penalized_surrogate", "value_loss", "approx_kl",
           "kl_divergence"]


def importance_ratio(log_ratio: Tensor) -> Tensor:
    """r = pi_new(a|s) / pi_old(a|s) from ``log_ratio`` = log pi_new(a|s) - log pi_old(a|s), any shape.

    Taken in log space: the two probabilities may each be tiny while their ratio is not.
    """
    return log_ratio.exp()


def surrogate(ratio: Tensor, advantages: Tensor) -> Tensor:
    """Per-sample surrogate objective (to MAXIMISE) r * A: its gradient at r = 1 is the policy gradient
    grad log pi(a|s) A (003 lecture 8; 004 "if the current policy and the old policy is the same, we would have
    exactly the vanilla policy gradient")."""
    return ratio * advantages


def clipped_surrogate(ratio: Tensor, advantages: Tensor, clip: float) -> Tensor:
    """Per-sample PPO-Clip objective (to MAXIMISE): min(ratio * A, clamp(ratio, 1-clip, 1+clip) * A).

    ratio, advantages: same (broadcastable) shape -> same shape. Pessimistic: never above ratio * A.
    """
    return torch.minimum(surrogate(ratio, advantages), surrogate(ratio.clamp(1.0 - clip, 1.0 + clip), advantages))


def kl_penalized_surrogate(ratio: Tensor, advantages: Tensor, kl: Tensor, beta: Tensor | float) -> Tensor:
    """Per-sample KL-penalised surrogate (to MAXIMISE): r * A - beta * KL(pi_old || pi)(s), the PPO paper's
    "adaptive KL penalty" objective (003 lecture 8: PPO's KL-regularised form of TRPO's constraint).

    ratio, advantages: the samples' r and A; kl: the exact KL per sample's state (:func:`kl_divergence`, ``old``
    detached), same (broadcastable) shape -> same shape. Unlike the clip, the penalty bounds the step softly: the
    farther pi moves from pi_old on any state, the more it costs, whatever the sign of A.
    """
    return surrogate(ratio, advantages) - beta * kl


def value_loss(
    values: Tensor, returns: Tensor, old_values: Tensor | None = None, clip: float | None = None
) -> Tensor:
    """Scalar value regression loss 0.5 * mean((V - R)^2).

    With ``clip`` (requires ``old_values``), PPO's clipped variant:
    0.5 * mean(max((V - R)^2, (V_old + clamp(V - V_old, -clip, clip) - R)^2)).
    values, returns, old_values: same shape -> scalar.
    """
    sq = (values - returns).square()
    if clip is None:
        return 0.5 * sq.mean()
    if old_values is None:
        raise ValueError("value_loss: clip requires old_values")
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    # max() keeps the loss pessimistic: clipping can only remove, never add, an incentive to move V.
    return 0.5 * torch.maximum(sq, (clipped_values - returns).square()).mean()


def approx_kl(log_ratio: Tensor) -> Tensor:
    """k3 estimator of KL(old || new) from old-policy samples: mean((r - 1) - log r), r = exp(log_ratio).

    log_ratio = log pi_new(a|s) - log pi_old(a|s), any shape -> scalar, always >= 0.
    """
    # expm1 keeps precision for the tiny ratios typical of a PPO update.
    return (torch.expm1(log_ratio) - log_ratio).mean()


def kl_divergence(old: Categorical | DiagGaussian, new: Categorical | DiagGaussian) -> Tensor:
    """Exact KL(old || new) per state, summed over the action (dimensions) -> batch shape ``[...]``.

    Categorical: sum_a p_old(a) (log p_old(a) - log p_new(a)). Diagonal Gaussian, per dimension:
    log(s_new / s_old) + (s_old^2 + (m_old - m_new)^2) / (2 s_new^2) - 1/2. TRPO's constraint is its mean over the
    batch's states, with ``old`` the behaviour policy (detached) and ``new`` the candidate.
    """
    if isinstance(old, Categorical) and isinstance(new, Categorical):
        return (old.probs * (old.logits - new.logits)).sum(-1)
    if isinstance(old, DiagGaussian) and isinstance(new, DiagGaussian):
        var_ratio = (old.log_std - new.log_std).mul(2).exp()  # s_old^2 / s_new^2
        mean_term = ((old.mean - new.mean) / new.std).square()
        return 0.5 * (var_ratio + mean_term - 1.0 - var_ratio.log()).sum(-1)
    raise TypeError(f"kl_divergence: no closed form for {type(old).__name__} and {type(new).__name__}")
