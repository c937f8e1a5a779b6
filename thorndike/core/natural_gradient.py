"""The natural gradient and how TRPO computes it without forming the Fisher matrix.

Notes: 003 lecture 8 (TRPO: maximise the surrogate subject to KL(pi_old || pi_theta) <= delta; to second order the
KL is (1/2) d^T F d with F the Fisher information matrix, and the step is the natural gradient

    d = sqrt(2 delta / (g^T F^-1 g)) F^-1 g

with g the surrogate's gradient). F has n_params^2 entries, too many to form for a network, so TRPO solves
F x = g by conjugate gradient, which needs only products F v. Those come from the KL's Hessian at the current
parameters, where it equals F: F v = d/dtheta ((d KL / dtheta) . v), two backward passes (Schulman et al. 2015,
appendix C).

- :func:`conjugate_gradient` solves A x = b for a symmetric positive definite A given as ``v -> A v``.
- :func:`fisher_vector_product` builds ``v -> (F + damping I) v`` from a function returning the mean KL.
- :func:`natural_step_size` is the scale sqrt(2 delta / g^T F^-1 g) that puts the quadratic KL at delta.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["conjugate_gradient", "fisher_vector_product", "flat_grad", "natural_step_size"]


def conjugate_gradient(matrix_vector_product: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10,
                       tolerance: float = 1e-10) -> Tensor:
    """x with A x = b, A symmetric positive definite given as ``matrix_vector_product(v) = A v`` (``b`` flat).

    The textbook iteration from x = 0: residual r = b - A x, search direction p, step alpha = r.r / p.A p, new
    direction r' + (r'.r' / r.r) p. Exact after ``len(b)`` iterations in exact arithmetic; stops early when r.r falls
    below ``tolerance``. TRPO uses about 10 iterations: an approximate F^-1 g is enough for a step that the line
    search then checks.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    r_dot_r = r @ r
    for _ in range(iterations):
        if float(r_dot_r) < tolerance:  # one host sync per iteration: CG runs once per update, not per step
            break
        a_p = matrix_vector_product(p)
        alpha = r_dot_r / (p @ a_p)
        x = x + alpha * p
        r = r - alpha * a_p
        new_r_dot_r = r @ r
        p = r + (new_r_dot_r / r_dot_r) * p
        r_dot_r = new_r_dot_r
    return x


def flat_grad(output: Tensor, params: Sequence[nn.Parameter], create_graph: bool = False,
              retain_graph: bool | None = None) -> Tensor:
    """d output / d params as one flat vector (zeros for parameters ``output`` does not depend on)."""
    grads = torch.autograd.grad(output, params, create_graph=create_graph, retain_graph=retain_graph,
                                allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params,
                                                                                             strict=True)])


def fisher_vector_product(mean_kl: Callable[[], Tensor], params: Sequence[nn.Parameter],
                          damping: float = 0.0) -> Callable[[Tensor], Tensor]:
    """``v -> (F + damping I) v`` with F the Hessian of ``mean_kl()`` at the current ``params``.

    ``mean_kl()`` must return the mean KL(pi_old || pi_params) over a batch of states, pi_old being the current
    policy detached, so that it is 0 with zero gradient here and its Hessian is the Fisher matrix. Its first
    derivative is computed once; each product is one more backward pass. ``damping`` (TRPO uses about 0.1) keeps
    the system well conditioned where the batch says little about some directions.
    """
    params = list(params)
    kl_grad = flat_grad(mean_kl(), params, create_graph=True)

    def product(v: Tensor) -> Tensor:
        # the graph of kl_grad is kept: conjugate gradient asks for several products
        return flat_grad(kl_grad @ v.detach(), params, retain_graph=True) + damping * v

    return product


def natural_step_size(gradient: Tensor, natural_direction: Tensor, max_kl: float) -> Tensor:
    """sqrt(2 delta / (g^T F^-1 g)): the scale of ``natural_direction = F^-1 g`` whose quadratic KL,
    (1/2) (s F^-1 g)^T F (s F^-1 g) = (s^2 / 2) g^T F^-1 g, equals ``max_kl`` = delta."""
    if not max_kl > 0 or not math.isfinite(max_kl):
        raise ValueError(f"max_kl must be a positive number, got {max_kl}")
    return torch.sqrt(2.0 * max_kl / (gradient @ natural_direction))
