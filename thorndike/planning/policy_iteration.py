"""Policy evaluation, policy iteration and modified policy iteration.

Lecture-notes concept: *policy iteration* (F0 L74-L80; YSDA F3 L159-L203) and *modified policy iteration*
(F3 L223-L235).

- Policy evaluation (F0 L76): V^pi(s) = sum_s' P(s'|s, pi(s)) (R(s, pi(s), s') + gamma V^pi(s')), solved exactly as
  the linear system (I - gamma P_pi) V = r_pi, or iteratively by repeating that backup (F3 L197: "exactly or
  iteratively").
- Policy iteration: evaluate pi_k, improve greedily, pi_{k+1}(s) in argmax_a Q^{pi_k}(s, a), until the policy is
  stable. By the policy improvement theorem (F3 L175-L189) every V^{pi_{k+1}} >= V^{pi_k} pointwise, and as there
  are finitely many policies it stops after finitely many improvements at an optimal policy (F0 L80, F3 L201). The
  improvement keeps the current action when it is still (numerically) greedy, otherwise takes the lowest greedy
  index; without that rule two tied actions could alternate forever.
- Modified policy iteration with k evaluation sweeps: V_{n+1} = (T_{pi_{n+1}})^k V_n with pi_{n+1} greedy for V_n.
  k = 1 is value iteration, iterate for iterate; k -> infinity is policy iteration (F3 L233-L235).
"""

from __future__ import annotations

import warnings

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
    warn_not_converged,
)

__all__ = ["modified_policy_iteration", "policy_evaluation", "policy_iteration"]

# Largest sparse problem whose exact evaluation is done as a dense solve (S*S doubles = 128 MiB); larger ones use
# scipy's sparse direct solver.
_DENSE_SOLVE_LIMIT = 4096
# A state keeps its action when that action's Q is within this relative margin of the best one.
_TIE_TOL = 1e-11


def policy_evaluation(
    mdp: TabularMDP,
    policy: Tensor,
    gamma: float | None = None,
    method: str = "exact",
    tol: float = 1e-10,
    max_sweeps: int = 100_000,
    V0: Tensor | None = None,
) -> Tensor:
    """V^pi [S] of a deterministic (long [S]) or stochastic ([S, A]) policy; 0 at terminal states.

    ``method="exact"`` solves (I - gamma P_pi) V = r_pi over the non-terminal states (a dense solve, or scipy's
    sparse solver for large sparse MDPs); ``"iterative"`` repeats V <- r_pi + gamma P_pi V from V0 until the
    max-norm change is below ``tol``.
    """
    gamma = resolve_gamma(mdp, gamma)
    P_pi, r_pi = mdp.policy_model(policy)  # also validates the policy
    if method == "exact":
        return _solve(mdp, P_pi, r_pi, gamma)
    if method == "iterative":
        check_max_sweeps(max_sweeps)
        policy = policy.long() if policy.dim() == 1 else policy.to(torch.float64)
        V, _, _, _ = iterate_to_fixed_point(lambda V: (_policy_backup(mdp, V, policy, gamma), None),
                                            initial_values(mdp, V0), tol, max_sweeps, "policy_evaluation")
        return V
    raise ValueError(f"method must be 'exact' or 'iterative', got {method!r}")


def evaluate_policies(mdp: TabularMDP, policies: Tensor, gamma: float | None = None) -> Tensor:
    """V^pi ``[R, S]`` of a batch of policies (``[R, S]`` actions or ``[R, S, A]`` probabilities), each solved
    exactly: how learners' runs are judged without sampling noise."""
    return torch.stack([policy_evaluation(mdp, policy, gamma=gamma) for policy in policies.cpu()])


def policy_iteration(
    mdp: TabularMDP,
    gamma: float | None = None,
    policy: Tensor | None = None,
    evaluation: str = "exact",
    tol: float = 1e-10,
    max_improvements: int = 10_000,
) -> PlanningResult:
    """Policy iteration from ``policy`` (default: action 0 everywhere).

    Returns the final policy, its value ``V``, ``Q = r + gamma P V``, ``sweeps`` = policy evaluations,
    ``improvements`` = how many times the policy changed, ``policy_history`` / ``policy_values`` with every
    evaluated policy and its value, and ``residuals[i] = max |V^{pi_{i+1}} - V^{pi_i}|``.
    With gamma = 1, every policy it meets must reach a terminal state (otherwise its value is undefined).
    """
    gamma = resolve_gamma(mdp, gamma)
    S = mdp.n_states
    pi = torch.zeros(S, dtype=torch.int64) if policy is None else torch.as_tensor(policy, dtype=torch.int64).clone()
    policies, values, residuals = [], [], []
    converged = False
    for _ in range(max_improvements + 1):
        V = policy_evaluation(mdp, pi, gamma, method=evaluation, tol=tol)
        if values:
            residuals.append(float((V - values[-1]).abs().max()) if S else 0.0)
        policies.append(pi)
        values.append(V)
        Q = mdp.backup(V, gamma)
        improved = _improve(Q, pi)
        if torch.equal(improved, pi):
            converged = True
            break
        pi = improved
    if not converged:
        warnings.warn(f"policy_iteration stopped after {max_improvements} improvements before the policy was stable; "
                      "raise max_improvements", stacklevel=2)
    return PlanningResult(
        V=values[-1], Q=Q, policy=policies[-1], sweeps=len(values), residuals=residuals, converged=converged,
        improvements=len(policies) - 1, policy_history=torch.stack(policies), policy_values=torch.stack(values),
    )


def modified_policy_iteration(
    mdp: TabularMDP,
    gamma: float | None = None,
    k: int = 5,
    tol: float = 1e-10,
    max_sweeps: int = 100_000,
    V0: Tensor | None = None,
    keep_history: bool = False,
) -> PlanningResult:
    """Modified policy iteration: greedy improvement, then k sweeps of evaluation of that policy.

    Each step n computes Q = r + gamma P V_n, pi_{n+1} = argmax_a Q, V = max_a Q (the first evaluation sweep, as
    T_{pi_{n+1}} V_n = T V_n), then k - 1 more sweeps V <- r_pi + gamma P_pi V. It stops when the improvement step
    changes V by less than ``tol`` in max-norm; ``sweeps`` counts improvement steps. k = 1 gives value iteration's
    iterates exactly (compare ``V_history`` with ``keep_history=True``).
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k (evaluation sweeps per improvement) must be a positive int, got {k!r}")
    check_max_sweeps(max_sweeps)
    gamma = resolve_gamma(mdp, gamma)
    V = initial_values(mdp, V0)
    history = [V] if keep_history else None
    residuals: list[float] = []
    converged = False
    for _ in range(max_sweeps):
        Q = mdp.backup(V, gamma)
        pi = greedy(Q)
        V_next = Q.amax(1)
        residuals.append(float((V_next - V).abs().max()) if V.numel() else 0.0)
        if residuals[-1] < tol:
            converged = True
        else:
            for _ in range(k - 1):
                V_next = _policy_backup(mdp, V_next, pi, gamma)
        V = V_next
        if history is not None:
            history.append(V)
        if converged:
            break
    if not converged:
        warn_not_converged("modified_policy_iteration", max_sweeps, residuals[-1], tol)
    return PlanningResult(
        V=V, Q=Q, policy=pi, sweeps=len(residuals), residuals=residuals, converged=converged,
        error_bound=stopping_bound(gamma, residuals[-1]),
        V_history=torch.stack(history) if history is not None else None,
    )


def _improve(Q: Tensor, pi: Tensor) -> Tensor:
    """Greedy improvement that keeps pi(s) where it is still greedy (up to round-off), else the lowest argmax."""
    best = Q.amax(1)
    current = Q.gather(1, pi[:, None]).squeeze(1)
    still_greedy = current >= best - _TIE_TOL * (1.0 + best.abs())
    return torch.where(still_greedy, pi, greedy(Q))


def _policy_backup(mdp: TabularMDP, V: Tensor, policy: Tensor, gamma: float) -> Tensor:
    """T_pi V (s) = sum_a pi(a|s) Q(s, a) with Q = r + gamma P V, for a deterministic [S] or stochastic [S, A] policy.

    Backing up all actions and picking costs more arithmetic than P_pi V, but reuses the fused backup and needs no
    per-policy matrix, which is what modified policy iteration would otherwise rebuild at every improvement.
    """
    Q = mdp.backup(V, gamma)
    if policy.dim() == 1:
        return Q.gather(1, policy[:, None]).squeeze(1)
    return (policy * Q).sum(1)


def _solve(mdp: TabularMDP, P_pi: Tensor, r_pi: Tensor, gamma: float) -> Tensor:
    """Solve (I - gamma P_pi) V = r_pi on the non-terminal states; V = 0 on terminal ones."""
    S = mdp.n_states
    live = torch.nonzero(~mdp.terminal).squeeze(1)
    V = torch.zeros(S, dtype=torch.float64)
    if live.numel() == 0:
        return V
    sparse = P_pi.layout != torch.strided
    if sparse and S > _DENSE_SOLVE_LIMIT:
        V[live] = _sparse_solve(P_pi, r_pi, gamma, live)
        return V
    P_dense = P_pi.to_dense() if sparse else P_pi
    system = torch.eye(live.numel(), dtype=torch.float64) - gamma * P_dense[live][:, live]
    try:
        V[live] = torch.linalg.solve(system, r_pi[live])
    except RuntimeError as err:  # torch.linalg.LinAlgError is a RuntimeError
        raise ValueError(
            "the policy's value is undefined: I - gamma P_pi is singular (with gamma = 1, some state never reaches "
            "a terminal state under this policy); use gamma < 1 or a policy that terminates"
        ) from err
    if not torch.isfinite(V).all():
        raise ValueError("the policy's value is not finite; with gamma = 1 every state must reach a terminal state")
    return V


def _sparse_solve(P_pi: Tensor, r_pi: Tensor, gamma: float, live: Tensor) -> Tensor:
    """scipy's sparse LU solve of the policy's linear system (large sparse MDPs only)."""
    try:
        import scipy.sparse
        import scipy.sparse.linalg
    except ImportError as err:
        raise ValueError(
            "exact evaluation of a large sparse MDP needs scipy (pip install scipy); or use method='iterative'"
        ) from err
    n = P_pi.shape[0]
    P = scipy.sparse.csr_matrix(
        (P_pi.values().numpy(), P_pi.col_indices().numpy(), P_pi.crow_indices().numpy()), shape=(n, n)
    )
    idx = live.numpy()
    system = (scipy.sparse.identity(idx.size, format="csc") - gamma * P[idx][:, idx]).tocsc()
    V = scipy.sparse.linalg.spsolve(system, r_pi[live].numpy())
    if not torch.isfinite(torch.from_numpy(V)).all():
        raise ValueError("the policy's value is not finite; with gamma = 1 every state must reach a terminal state")
    return torch.from_numpy(V)
