"""Soft (maximum-entropy) value iteration, and the notes' one-step maximum-entropy solution.

Lecture-notes concept: *the maximum-entropy formulation* (F0 L81-L109; YSDA F3 L1359-L1403): maximise
E[sum_t gamma^t (r_t + beta H(pi(.|s_t)))]. For one step (a bandit) the solution is the Boltzmann policy
pi(a) = exp(r(a) / beta) / Z with Z = sum_a exp(r(a) / beta), and the optimal objective is beta log Z (F0 L102-L106).
Over many steps the same holds state by state with Q in place of r, which gives soft value iteration:

    Q(s, a) = r(s, a) + gamma sum_s' P(s'|s, a) V(s')
    V(s) = beta log sum_a exp(Q(s, a) / beta),    pi(a|s) = exp((Q(s, a) - V(s)) / beta)

with beta called ``temperature`` here. As the temperature goes to 0 the log-sum-exp becomes the max and soft value
iteration becomes value iteration; a larger temperature makes the policy closer to uniform (higher entropy). The
notes say the opposite at F0 L96 ("if we have big beta, we will collect less entropy"); their own L109 and the
formula agree with the code (inventory E1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from thorndike.envs.tabular import TabularMDP
from thorndike.planning.result import (
    PlanningResult,
    check_max_sweeps,
    greedy,
    initial_values,
    iterate_to_fixed_point,
    resolve_gamma,
    stopping_bound,
)

__all__ = ["one_step_max_entropy", "soft_value_iteration"]


def soft_value_iteration(
    mdp: TabularMDP,
    gamma: float | None = None,
    temperature: float = 1.0,
    tol: float = 1e-10,
    max_sweeps: int = 100_000,
    V0: Tensor | None = None,
) -> PlanningResult:
    """Soft value iteration: V <- temperature * logsumexp_a(Q / temperature) with Q = r + gamma P V, to ``tol``.

    Returns ``V``, ``Q``, the Boltzmann ``policy_probs`` [S, A] and its most likely action as ``policy``. The
    log-sum-exp subtracts the max before exponentiating, so tiny temperatures are safe (they approach value
    iteration). Terminal states keep V = 0.
    """
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    check_max_sweeps(max_sweeps)
    gamma = resolve_gamma(mdp, gamma)
    V = initial_values(mdp, V0)

    def sweep(V: Tensor) -> tuple[Tensor, Tensor]:
        Q = mdp.backup(V, gamma)
        return soft_max(Q, temperature).masked_fill_(mdp.terminal, 0.0), Q

    V, Q, residuals, converged = iterate_to_fixed_point(sweep, V, tol, max_sweeps, "soft_value_iteration")
    return PlanningResult(
        V=V, Q=Q, policy=greedy(Q), sweeps=len(residuals), residuals=residuals, converged=converged,
        error_bound=stopping_bound(gamma, residuals[-1]), policy_probs=torch.softmax(Q / temperature, dim=1),
    )


def soft_max(Q: Tensor, temperature: float) -> Tensor:
    """temperature * log sum_a exp(Q(s, a) / temperature) over the last dim (the soft maximum of Q)."""
    return temperature * torch.logsumexp(Q / temperature, dim=-1)


def one_step_max_entropy(rewards: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """The one-step maximum-entropy solution (F0 L102-L106): pi(a) = exp(r(a) / beta) / Z and the optimum
    max_pi E_pi[r] + beta H(pi) = beta log Z, for rewards r [..., A]. Returns (pi [..., A], optimum [...])."""
    if not beta > 0.0:
        raise ValueError(f"beta must be > 0, got {beta}")
    r = torch.as_tensor(rewards, dtype=torch.float64)
    return torch.softmax(r / beta, dim=-1), soft_max(r, beta)
