"""Rollout storage: preallocated ``[T, N, ...]`` tensors on the algorithm's device, filled one step at a time."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from thorndike.core.resources import require_memory, tensor_bytes


class RolloutBuffer:
    """Named tensors of shape ``[n_steps, n_envs, *shape]``; ``add`` writes row ``t`` of each."""

    def __init__(
        self,
        n_steps: int,
        n_envs: int,
        fields: dict[str, tuple[tuple[int, ...], torch.dtype]],
        device: torch.device | str = "cpu",
    ):
        self.n_steps, self.n_envs = n_steps, n_envs
        per_step = sum(tensor_bytes(*shape, dtype=dtype) for shape, dtype in fields.values())
        # the buffer, and the update's copies of it (flattened batch, minibatches, advantages, returns)
        require_memory("the rollout buffer and the update's copies of it", 3 * n_steps * n_envs * per_step, device,
                       {"n_steps": n_steps, "n_envs": n_envs}, f"{per_step:,} bytes per transition, x 3")
        self.data = {
            name: torch.zeros((n_steps, n_envs, *shape), dtype=dtype, device=device)
            for name, (shape, dtype) in fields.items()
        }

    def __getitem__(self, name: str) -> Tensor:
        return self.data[name]

    def add(self, t: int, **values: Tensor) -> None:
        for name, value in values.items():
            self.data[name][t] = value

    def flat(self, **extra: Tensor) -> dict[str, Tensor]:
        """Every field (and ``extra`` ``[T, N, ...]`` tensors) with time and env merged: ``[T*N, ...]``."""
        merged = {**self.data, **extra}
        return {name: t.reshape(self.n_steps * self.n_envs, *t.shape[2:]) for name, t in merged.items()}


def minibatches(
    batch: dict[str, Tensor], minibatch_size: int, generator: torch.Generator | None = None
) -> Iterator[dict[str, Tensor]]:
    """One shuffled pass over ``batch`` in minibatches (the last one may be smaller).

    A minibatch as large as the batch is the batch itself: a full-batch gradient does not depend on the order.
    """
    size = next(iter(batch.values())).shape[0]
    if minibatch_size >= size:
        yield batch
        return
    device = next(iter(batch.values())).device
    # The permutation is drawn where the generator lives (torch requires it) and moved to the data.
    order = torch.randperm(size, generator=generator, device=generator.device if generator is not None else device)
    order = order.to(device)
    for start in range(0, size, minibatch_size):
        index = order[start : start + minibatch_size]
        yield {name: t[index] for name, t in batch.items()}
