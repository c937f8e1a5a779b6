"""Conjugate gradient, Fisher-vector products and the natural step (TRPO, 003 lecture 8), against explicit matrices:
CG equals torch.linalg.solve, the KL's Hessian equals the Fisher matrix E[grad log pi grad log pi^T] of a tiny
network, and the step size puts the quadratic KL exactly at delta."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from thorndike.core.distributions import Categorical
from thorndike.core.natural_gradient import conjugate_gradient, fisher_vector_product, flat_grad, natural_step_size


@pytest.fixture(autouse=True)
def float64():
    """Every test here in float64: the comparisons are to about 1e-8."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_conjugate_gradient_solves_a_symmetric_positive_definite_system() -> None:
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g)
    a = m @ m.T + 0.5 * torch.eye(6)
    b = torch.randn(6, generator=g)
    x = conjugate_gradient(lambda v: a @ v, b, iterations=6)  # exact after n iterations, up to rounding
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-10)
    # fewer iterations: an approximation that already reduces the residual
    rough = conjugate_gradient(lambda v: a @ v, b, iterations=2)
    assert torch.linalg.norm(a @ rough - b) < torch.linalg.norm(b)


def test_conjugate_gradient_stops_at_a_zero_right_hand_side_and_refuses_no_iterations() -> None:
    calls = []
    x = conjugate_gradient(lambda v: calls.append(v) or v, torch.zeros(3))
    assert torch.equal(x, torch.zeros(3)) and not calls
    with pytest.raises(ValueError, match="iterations"):
        conjugate_gradient(lambda v: v, torch.ones(3), iterations=0)


def tiny_policy() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4))
    states = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
    return net, states


def test_the_kl_hessian_is_the_fisher_matrix_and_cg_on_its_products_is_the_exact_natural_gradient() -> None:
    net, states = tiny_policy()
    params = list(net.parameters())
    names = [name for name, _ in net.named_parameters()]
    shapes = [p.shape for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    old_logits = net(states).detach()

    def unflat(theta):
        out, start = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            out[name] = theta[start:start + shape.numel()].view(shape)
            start += shape.numel()
        return out

    def mean_kl_of(theta):
        new = Categorical(functional_call(net, unflat(theta), (states,)))
        old = Categorical(old_logits)
        return (old.probs * (old.logits - new.logits)).sum(-1).mean()

    hessian = torch.autograd.functional.hessian(mean_kl_of, flat)
    # the Fisher matrix by its definition, the expectation over a ~ pi(.|s) taken exactly (4 actions)
    fisher = torch.zeros_like(hessian)
    probs = Categorical(old_logits).probs
    for i in range(len(states)):
        for a in range(4):
            log_prob = Categorical(net(states[i:i + 1])).log_prob(torch.tensor([a]))[0]
            score = flat_grad(log_prob, params)
            fisher += probs[i, a] * torch.outer(score, score) / len(states)
    torch.testing.assert_close(hessian, fisher, rtol=1e-7, atol=1e-10)

    def mean_kl():
        new = Categorical(net(states))
        old = Categorical(old_logits)
        return (old.probs * (old.logits - new.logits)).sum(-1).mean()

    damping = 0.1
    fvp = fisher_vector_product(mean_kl, params, damping)
    v = torch.randn(len(flat), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(fvp(v), (fisher + damping * torch.eye(len(flat))) @ v, rtol=1e-7, atol=1e-10)

    gradient = torch.randn(len(flat), generator=torch.Generator().manual_seed(3))
    direction = conjugate_gradient(fvp, gradient, iterations=len(flat), tolerance=1e-24)
    expected = torch.linalg.solve(fisher + damping * torch.eye(len(flat)), gradient)
    torch.testing.assert_close(direction, expected, rtol=1e-6, atol=1e-8)

    # the step size of the closed form puts the quadratic KL (1/2) d^T F d at delta (F here with its damping)
    delta = 0.01
    step = natural_step_size(gradient, direction, delta) * direction
    quadratic_kl = 0.5 * step @ ((fisher + damping * torch.eye(len(flat))) @ step)
    torch.testing.assert_close(quadratic_kl, torch.tensor(delta), rtol=1e-6, atol=0.0)


def test_the_natural_step_refuses_a_radius_that_is_not_positive() -> None:
    for bad in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_kl"):
            natural_step_size(torch.ones(2), torch.ones(2), bad)
