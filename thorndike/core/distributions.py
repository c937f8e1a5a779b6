"""Lightweight action distributions for stochastic policies.

Lecture-notes concept: *stochastic policies and the log-likelihood trick* (categorical policies for
discrete actions, diagonal Gaussians for continuous ones, and tanh-squashed Gaussians with the
change-of-variables correction for bounded actions).

These are deliberately thin (no torch.distributions subclassing, no argument validation) because they
are built once per forward pass on the hot path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Categorical", "DiagGaussian", "TanhGaussian"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class Categorical:
    """Categorical over the last dim of ``logits`` [..., K]; batch shape is ``logits.shape[:-1]``."""

    def __init__(self, logits: Tensor) -> None:
        # Normalised log-probs; clamping -inf (masked actions) avoids 0 * -inf = NaN in entropy.
        self.logits = F.log_softmax(logits, dim=-1).clamp(min=torch.finfo(logits.dtype).min)

    @property
    def probs(self) -> Tensor:
        """Probabilities [..., K]."""
        return self.logits.exp()

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Sample actions (long) of batch shape [...]."""
        probs = self.probs.detach()
        flat = probs.reshape(-1, probs.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])

    def log_prob(self, actions: Tensor) -> Tensor:
        """Log-probability of long ``actions`` [...] -> [...]."""
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        """Entropy -sum p log p -> [...]."""
        return -(self.probs * self.logits).sum(-1)

    def mode(self) -> Tensor:
        """Most likely action (argmax) [...]."""
        return self.logits.argmax(-1)


class DiagGaussian:
    """Diagonal Gaussian over the last dim of ``mean`` [..., D]; ``log_std`` broadcasts to ``mean``."""

    def __init__(self, mean: Tensor, log_std: Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.std = self.log_std.exp()

    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised sample mean + std * eps (differentiable) [..., D]."""
        eps = torch.randn(
            self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device
        )
        return self.reparameterize(eps)

    def reparameterize(self, eps: Tensor) -> Tensor:
        """mean + std * eps for given standard normal noise ``eps`` [..., D] (drawn outside a compiled program)."""
        return self.mean + self.std * eps

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Sample without gradient [..., D]."""
        with torch.no_grad():
            return self.rsample(generator)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Log-density of ``actions`` [..., D], summed over D -> [...]."""
        z = (actions - self.mean) / self.std
        return (-0.5 * z.square() - self.log_std - _HALF_LOG_2PI).sum(-1)

    def entropy(self) -> Tensor:
        """Differential entropy summed over D -> [...]."""
        return (0.5 + _HALF_LOG_2PI + self.log_std).sum(-1)

    def mode(self) -> Tensor:
        """The mean [..., D]."""
        return self.mean


class TanhGaussian:
    """a = tanh(u), u ~ N(mean, diag(exp(log_std)^2)); ``mean`` [..., D], ``log_std`` broadcastable."""

    def __init__(self, mean: Tensor, log_std: Tensor) -> None:
        self.base = DiagGaussian(mean, log_std)

    @staticmethod
    def _log_det_jacobian(u: Tensor) -> Tensor:
        """sum_D log(1 - tanh(u)^2), written as 2(log 2 - u - softplus(-2u)) to stay finite for large |u|."""
        return (2.0 * (_LOG_2 - u - F.softplus(-2.0 * u))).sum(-1)

    def rsample(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Reparameterised (action [..., D], log_prob [...]); log_prob uses u, not atanh(action)."""
        return self._squash(self.base.rsample(generator))

    def reparameterize(self, eps: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`rsample` from given standard normal noise ``eps`` [..., D] (drawn outside a compiled program)."""
        return self._squash(self.base.reparameterize(eps))

    def _squash(self, u: Tensor) -> tuple[Tensor, Tensor]:
        return torch.tanh(u), self.base.log_prob(u) - self._log_det_jacobian(u)

    def sample(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Like :meth:`rsample` but without gradient."""
        with torch.no_grad():
            return self.rsample(generator)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Log-density of squashed ``actions`` [..., D] in (-1, 1) -> [...]."""
        # Clamp so atanh stays finite for actions stored at (or rounded to) the bounds.
        a = actions.clamp(-1.0 + 1e-6, 1.0 - 1e-6)
        u = torch.atanh(a)
        return self.base.log_prob(u) - self._log_det_jacobian(u)

    def mode(self) -> Tensor:
        """Deterministic action tanh(mean) [..., D]."""
        return torch.tanh(self.base.mean)
