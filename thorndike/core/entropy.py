"""Automatic temperature of maximum-entropy RL (SAC and discrete SAC).

Notes: 003 L1440-L1448: a target entropy H_bar (-|A| for an |A|-dimensional Gaussian policy) and the loss

    L(alpha) = E_{s ~ D, a ~ pi}[ -alpha (log pi(a|s) + H_bar) ]

descended in alpha, so alpha rises while the policy's entropy -E[log pi] is below H_bar and falls while it is above.
The loss is written in log alpha (alpha = exp(log alpha) stays positive and the steps are relative), as in SAC's
reference code; its gradient in log alpha has the sign of -(log pi + H_bar), as the loss in alpha does.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["Temperature", "continuous_target_entropy", "discrete_target_entropy", "temperature_loss"]


def temperature_loss(log_alpha: Tensor, log_prob: Tensor, target_entropy: float) -> Tensor:
    """-mean(log alpha * (log pi(a|s) + H_bar)), the log-probabilities held fixed (only alpha moves). For discrete
    SAC ``log_prob`` is the exact expectation sum_a pi(a|s) log pi(a|s) = -H(pi(.|s))."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


def continuous_target_entropy(action_dim: int) -> float:
    """-|A|, the default target entropy of a tanh-Gaussian policy over |A| dimensions (003 L1442)."""
    return -float(action_dim)


def discrete_target_entropy(n_actions: int, ratio: float) -> float:
    """ratio * log |A|: a fraction of the uniform policy's entropy (Christodoulou 2019 uses 0.98)."""
    return ratio * math.log(n_actions)


class Temperature(nn.Module):
    """alpha = exp(log alpha), a learnable scalar (a module, so checkpoints and optimisers take it as they are)."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)))

    @property
    def alpha(self) -> Tensor:
        """alpha, detached: the losses of the critics and the actor treat it as a constant."""
        return self.log_alpha.detach().exp()
