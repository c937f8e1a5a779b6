"""Policy-gradient loss pieces: PPO's clipped surrogate, (clipped) value loss, approximate KL.

Lecture-notes concept: *trust-region-style policy optimisation* (the PPO-Clip surrogate objective,
value-function regression, and monitoring the policy change with a KL estimator).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["clipped_surrogate", "value_loss", "approx_kl"]


def clipped_surrogate(ratio: Tensor, advantages: Tensor, clip: float) -> Tensor:
    """Per-sample PPO-Clip objective (to MAXIMISE): min(ratio * A, clamp(ratio, 1-clip, 1+clip) * A).

    ratio, advantages: same (broadcastable) shape -> same shape. Pessimistic: never above ratio * A.
    """
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    return torch.minimum(unclipped, clipped)


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
