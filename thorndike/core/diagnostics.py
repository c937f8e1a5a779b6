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
