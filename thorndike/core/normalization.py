"""Observation normalisation inside the model, with running statistics that travel in its ``state_dict``.

Held by the model rather than wrapped around the env, the statistics are saved and restored with the weights, and
the same module normalises observations during rollouts, updates and evaluation. The caller decides when to fold
observations in (typically each rollout step while training, never while evaluating).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from thorndike.core.spaces import is_float_box

__all__ = ["ObservationNormalizer", "fold_batch"]


def fold_batch(mean: Tensor, var: Tensor, count: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Chan et al.'s parallel update: (mean, var, count) of everything seen, after folding in ``batch`` [B, *shape].

    The same arithmetic as :class:`thorndike.core.running_stats.RunningMeanStd`, on float64 statistics.
    """
    batch = batch.to(torch.float64)
    batch_var, batch_mean = torch.var_mean(batch, 0, unbiased=False)
    batch_count = batch.shape[0]
    delta = batch_mean - mean
    total = count + batch_count
    new_mean = mean + delta * batch_count / total
    m2 = var * count + batch_var * batch_count + delta.square() * count * batch_count / total
    return new_mean, m2 / total, total


class ObservationNormalizer(nn.Module):
    """``((obs - mean) / sqrt(var + epsilon)).clamp(-clip, clip)`` with running mean and variance of observations.

    The float64 statistics (``mean``, ``var``, ``count``) are registered buffers, so they are in ``state_dict`` and
    move with ``.to(device)``. The float32 shift and scale applied by ``forward`` are derived from them once per
    :meth:`update` (and after loading), not per forward. Disabled, it holds no buffers, ``forward`` returns its input
    and ``update`` does nothing, so a model can always hold one.
    """

    mean: Tensor
    var: Tensor
    count: Tensor
    shift: Tensor
    scale: Tensor

    def __init__(
        self, shape: tuple[int, ...] = (), enabled: bool = True, clip: float = 10.0, epsilon: float = 1e-8,
        prior_count: float = 1e-4,
    ) -> None:
        super().__init__()
        self.enabled, self.clip, self.epsilon = enabled, clip, epsilon
        if not enabled:
            return
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        # A tiny prior count keeps the first update from dividing by zero (as in RunningMeanStd).
        self.register_buffer("count", torch.tensor(prior_count, dtype=torch.float64))
        # Derived from the statistics, so not saved.
        self.register_buffer("shift", torch.zeros(shape), persistent=False)
        self.register_buffer("scale", torch.ones(shape), persistent=False)
        self._refresh()

    @classmethod
    def for_space(cls, space: gym.Space, enabled: bool = True, **kwargs: Any) -> ObservationNormalizer:
        """A normaliser for observations of ``space``; enabling it for anything but a float Box is a ValueError."""
        if not enabled:
            return cls(enabled=False, **kwargs)
        if not is_float_box(space):
            raise ValueError(
                f"observation normalisation needs a float Box observation space, got {type(space).__name__} "
                f"({space}); images, Discrete and packed Dict/Tuple observations are not normalised"
            )
        return cls(tuple(space.shape), enabled=True, **kwargs)

    @torch.no_grad()
    def _refresh(self) -> None:
        shift, scale = self._shift_and_scale(self.mean, self.var)
        self.shift.copy_(shift)
        self.scale.copy_(scale)

    def _shift_and_scale(self, mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
        """The float32 shift and scale ``forward`` applies, from float64 statistics."""
        return mean.to(torch.float32), (var + self.epsilon).rsqrt().to(torch.float32)

    def _normalize(self, obs: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
        return ((obs.to(torch.float32) - shift) * scale).clamp(-self.clip, self.clip)

    def forward(self, obs: Tensor) -> Tensor:
        if not self.enabled:
            return obs
        return self._normalize(obs, self.shift, self.scale)

    def normalize_with(self, obs: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        """What ``forward`` gives with the statistics ``mean`` and ``var`` in place of the normaliser's own: a pure
        function, for a compiled rollout that carries the statistics through its steps."""
        return self._normalize(obs, *self._shift_and_scale(mean, var))

    @torch.no_grad()
    def update(self, batch: Tensor) -> None:
        """Fold ``batch`` [B, *shape] into the statistics (a no-op when disabled)."""
        if not self.enabled:
            return
        self.set_statistics(*fold_batch(self.mean, self.var, self.count, batch))

    @torch.no_grad()
    def set_statistics(self, mean: Tensor, var: Tensor, count: Tensor) -> None:
        """Replace the statistics (what :meth:`update` computed elsewhere, e.g. inside a compiled rollout)."""
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.copy_(count)
        self._refresh()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # The loaded statistics replace the ones the cached shift and scale were derived from.
        if self.enabled:
            self._refresh()

    def extra_repr(self) -> str:
        if not self.enabled:
            return "enabled=False"
        return f"shape={tuple(self.mean.shape)}, clip={self.clip}, epsilon={self.epsilon}"
