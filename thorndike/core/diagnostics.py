"""Numbers that say how training is going (not part of any update)."""

from __future__ import annotations

import torch
from torch import Tensor


def explained_variance(predictions: Tensor, targets: Tensor) -> Tensor:
    """1 - Var[targets - predictions] / Var[targets]: 1 is perfect, 0 is no better than the mean, NaN if
    the targets are constant."""
    var_targets = targets.var(unbiased=False)
    if var_targets == 0:
        return torch.tensor(float("nan"))
    return 1 - (targets - predictions).var(unbiased=False) / var_targets


class NonFiniteError(FloatingPointError):
    """An observation, reward or loss became NaN or infinite; training stops and keeps the last checkpoint."""


def check_finite(what: str, tensor: Tensor, first_step: int | None = None, where: str = "") -> None:
    """Stop with a clear error when ``tensor`` holds NaN or inf.

    One reduction (one host sync), so call it once per rollout on the ``[T, N, ...]`` storage, where ``first_step``
    is the global step of row 0 (row t is step ``first_step + t * N``; the error names the first bad step and env
    copy), or once per update on a loss. ``where`` adds context such as the iteration.
    """
    if bool(torch.isfinite(tensor).all()):
        return
    location = where
    if first_step is not None:
        bad = ~torch.isfinite(tensor.reshape(tensor.shape[0], tensor.shape[1], -1))
        t, copy = bad.any(-1).nonzero()[0].tolist()
        location = f"step {first_step + t * tensor.shape[1]}" + (f" ({where})" if where else "") + f", env copy {copy}"
    raise NonFiniteError(
        f"{what} is not finite (NaN or inf){' at ' + location if location else ''}. Check the environment's "
        "outputs, lower the learning rate, or enable normalize_obs / normalize_reward."
    )
