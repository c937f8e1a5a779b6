"""Value iteration and Q-value iteration: repeated Bellman backups on a known model.

Lecture-notes concept: *value iteration* (F0 L36-L61; YSDA F3 L205-L221) and *Q-value iteration* (F0 L63-L72).
Starting from V_0 = 0 ("when H=0 ... V* is 0"), each sweep backs up every state at once:

    V_k(s) = max_a sum_s' P(s'|s, a) (R(s, a, s') + gamma V_{k-1}(s'))
    Q_k(s, a) = sum_s' P(s'|s, a) (R(s, a, s') + gamma max_a' Q_{k-1}(s', a'))

With a finite horizon H the result is V_0..V_H and the time-indexed greedy policies (the best first action with k
steps to go). Without one, sweeps stop when max_s |V_k(s) - V_{k-1}(s)| < tol; since the backup is a
gamma-contraction in the max-norm, V_k is then within gamma * tol / (1 - gamma) of V* (``error_bound``).

Each sweep is one matrix-vector product over the whole state space (dense, or sparse CSR for large problems), so
the loop in Python runs once per sweep, never once per state.
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

__all__ = ["q_value_iteration", "tail_bound", "value_iteration"]


def value_iteration(
    mdp: TabularMDP,
    gamma: float | None = None,
    horizon: int | None = None,
    tol: float = 1e-10,
    max_sweeps: int = 100_000,
    V0: Tensor | None = None,
    keep_history: bool = False,
) -> PlanningResult:
    """Value iteration, V_k = max_a (r + gamma P V_{k-1}), from V0 (default 0).

    Args:
        mdp: the problem; ``gamma`` defaults to ``mdp.gamma``.
        horizon: H for the finite-horizon problem: exactly H backups, ``V_history`` = V_0..V_H [H+1, S] and
            ``policy_history`` [H, S] (row k-1 = greedy action with k steps to go). None: iterate to ``tol``.
        tol: stop when the max-norm change of V in one sweep is below it (infinite horizon).
        max_sweeps: give up (with a warning, ``converged=False``) after this many sweeps.
        keep_history: also keep every iterate in ``V_history`` in the infinite-horizon case.

    Returns a :class:`PlanningResult` whose ``Q`` is the last sweep's backup, ``V = max_a Q`` and
    ``policy = argmax_a Q``.
    """
    gamma = resolve_gamma(mdp, gamma)
    V = initial_values(mdp, V0)
    if horizon is not None:
        return _finite_horizon(mdp, gamma, horizon, V)
    check_max_sweeps(max_sweeps)
    history = [V] if keep_history else None

    def sweep(V: Tensor) -> tuple[Tensor, Tensor]:
        Q = mdp.backup(V, gamma)
        return Q.amax(1), Q

    V, Q, residuals, converged = iterate_to_fixed_point(sweep, V, tol, max_sweeps, "value_iteration", history)
    return PlanningResult(
        V=V, Q=Q, policy=greedy(Q), sweeps=len(residuals), residuals=residuals, converged=converged,
        error_bound=stopping_bound(gamma, residuals[-1]),
        V_history=torch.stack(history) if history is not None else None,
    )


def q_value_iteration(
    mdp: TabularMDP,
    gamma: float | None = None,
    horizon: int | None = None,
    tol: float = 1e-10,
    max_sweeps: int = 100_000,
    Q0: Tensor | None = None,
) -> PlanningResult:
    """Q-value iteration, Q_k(s, a) = r(s, a) + gamma sum_s' P(s'|s, a) max_a' Q_{k-1}(s', a'), from Q0 (default 0).

    The same stopping rule and ``horizon`` semantics as :func:`value_iteration` (the residual is the max-norm change
    of Q); with Q0 = 0, max_a Q_k = V_k of value iteration at every k.
    """
    gamma = resolve_gamma(mdp, gamma)
    S, A = mdp.n_states, mdp.n_actions
    Q = torch.zeros(S, A, dtype=torch.float64) if Q0 is None else torch.as_tensor(Q0, dtype=torch.float64).clone()
    if Q.shape != (S, A):
        raise ValueError(f"Q0 must have shape [{S}, {A}], got {list(Q.shape)}")
    Q.masked_fill_(mdp.terminal[:, None], 0.0)
    if horizon is not None:
        return _finite_horizon(mdp, gamma, horizon, Q.amax(1))
    check_max_sweeps(max_sweeps)
    Q, _, residuals, converged = iterate_to_fixed_point(
        lambda Q: (mdp.backup(Q.amax(1), gamma), None), Q, tol, max_sweeps, "q_value_iteration"
    )
    return PlanningResult(
        V=Q.amax(1), Q=Q, policy=greedy(Q), sweeps=len(residuals), residuals=residuals, converged=converged,
        error_bound=stopping_bound(gamma, residuals[-1]),
    )


def tail_bound(gamma: float, horizon: int, R_max: float) -> float:
    """The notes' bound on the rewards after step H (F0 L60): sum_{t > H} gamma^t R_max = gamma^(H+1) R_max / (1-gamma).

    It bounds the objective sum_{t=0}^{H} gamma^t r_t, which has H + 1 rewards, so it bounds
    max_s |V_{H+1}(s) - V*(s)| for value iteration's V after H + 1 backups from V_0 = 0 (R_max = max |R|).
    V_H, with only H rewards, can be off by up to gamma^H R_max / (1 - gamma) = tail_bound(gamma, H - 1, R_max).
    """
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"the tail bound needs 0 <= gamma < 1, got {gamma}")
    return gamma ** (horizon + 1) * R_max / (1.0 - gamma)


def _finite_horizon(mdp: TabularMDP, gamma: float, horizon: int, V: Tensor) -> PlanningResult:
    """H backups from V_0, keeping every V_k and the greedy action with k steps to go."""
    if not isinstance(horizon, int) or horizon < 0:
        raise ValueError(f"horizon must be a non-negative int, got {horizon!r}")
    S, A = mdp.n_states, mdp.n_actions
    V_history = torch.empty(horizon + 1, S, dtype=torch.float64)
    policy_history = torch.empty(horizon, S, dtype=torch.int64)
    V_history[0] = V
    # With no steps to go there is nothing to choose: Q_0 = 0 and the policy is action 0 (arbitrary).
    Q = torch.zeros(S, A, dtype=torch.float64)
    residuals: list[float] = []
    for k in range(1, horizon + 1):
        Q = mdp.backup(V_history[k - 1], gamma)
        V_history[k] = Q.amax(1)
        policy_history[k - 1] = greedy(Q)
        residuals.append(float((V_history[k] - V_history[k - 1]).abs().max()) if S else 0.0)
    return PlanningResult(
        V=V_history[-1].clone(), Q=Q, policy=greedy(Q), sweeps=horizon, residuals=residuals, converged=True,
        V_history=V_history, policy_history=policy_history,
    )
