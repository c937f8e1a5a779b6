"""Running mean and variance (Chan et al.'s parallel update), for observation and reward normalisation."""

from __future__ import annotations

import torch


class RunningMeanStd:
    """Mean and variance of everything seen so far, updated a batch at a time."""

    def __init__(self, shape: tuple[int, ...] = (), device: torch.device | str = "cpu", epsilon: float = 1e-4):
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        # A tiny prior count keeps the first update from dividing by zero.
        self.count = torch.tensor(epsilon, dtype=torch.float64, device=device)

    def update(self, batch: torch.Tensor) -> None:
        """Fold a batch ``[B, *shape]`` into the statistics."""
        batch = batch.to(torch.float64)
        batch_var, batch_mean = torch.var_mean(batch, 0, unbiased=False)
        batch_count = batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta.pow(2) * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = self.mean.device
        self.mean, self.var, self.count = (state[k].to(device) for k in ("mean", "var", "count"))
