"""Optimisers whose statistics live in shared memory, for Hogwild-style updates from several processes (A3C).

Notes: 004 "A3C" (asynchronous workers apply their gradients to one shared model); Mnih et al. 2016, "Asynchronous
Methods for Deep RL", section 4 and appendix: RMSprop whose moving average of squared gradients g is *shared* by
all threads works better than one kept per thread.

torch's optimisers create their state lazily, at the first ``step`` and in the process that takes it, so a worker
process would get statistics of its own. Here the state is made at construction and moved to shared memory, so every
process that holds the optimiser (forked, or given it when spawned) reads and writes the same tensors; updates take
no lock, as in Hogwild. The math is torch's ``RMSprop`` (eps added outside the square root, no momentum, not
centred) and ``Adam`` (bias-corrected, no weight decay); ``tests/core/test_shared_optim.py`` checks every step
against torch's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["SharedAdam", "SharedRMSprop"]


class _SharedOptimizer(torch.optim.Optimizer):
    """A torch optimiser whose per-parameter state is made eagerly and kept in shared memory."""

    def __init__(self, params: Iterable[Tensor], defaults: dict[str, Any],
                 initial_state: Callable[[Tensor], dict[str, Tensor]]) -> None:
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = initial_state(p)
        self.share_memory()

    def share_memory(self) -> None:
        """Move every state tensor to shared memory (in place: the optimiser keeps the same tensor objects)."""
        for state in self.state.values():
            for value in state.values():
                if isinstance(value, Tensor):
                    value.share_memory_()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # torch's load makes new state tensors: share them again, or workers would each write their own copy.
        super().load_state_dict(state_dict)
        self.share_memory()


class SharedRMSprop(_SharedOptimizer):
    """RMSprop with a shared g: g <- alpha g + (1 - alpha) grad^2, theta <- theta - lr grad / (sqrt(g) + eps)."""

    def __init__(self, params: Iterable[Tensor], lr: float = 7e-4, alpha: float = 0.99, eps: float = 1e-5) -> None:
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps}, self.initial_state)

    def initial_state(self, p: Tensor) -> dict[str, Tensor]:
        return {"step": torch.zeros((), dtype=torch.float32),
                "square_avg": torch.zeros_like(p, memory_format=torch.preserve_format)}

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            states = [self.state[p] for p in params]
            square_avgs = [s["square_avg"] for s in states]
            torch._foreach_add_([s["step"] for s in states], 1)
            # one kernel per op over every tensor (torch's foreach path): a worker's update is many small tensors
            torch._foreach_mul_(square_avgs, alpha)
            torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
            denominators = torch._foreach_sqrt(square_avgs)
            torch._foreach_add_(denominators, eps)
            torch._foreach_addcdiv_(params, grads, denominators, value=-lr)


class SharedAdam(_SharedOptimizer):
    """Adam with shared moments and a shared step count (each worker's step advances the bias correction)."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps}, self.initial_state)

    def initial_state(self, p: Tensor) -> dict[str, Tensor]:
        return {"step": torch.zeros((), dtype=torch.float32),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                state["step"] += 1
                step = float(state["step"])  # one host read per parameter tensor, as torch's own Adam does
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(p.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                bias1, bias2 = 1 - beta1**step, 1 - beta2**step
                denom = (exp_avg_sq.sqrt() / bias2**0.5).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-lr / bias1)
