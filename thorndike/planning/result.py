"""What every exact planner returns, and the small pieces they share (gamma, greedy improvement).

Lecture-notes concept: *value functions and greedy policies* (F0 L63-L70, L233: pi*(s) = argmax_a Q*(s, a);
F2 L120-L122: ties may be broken any way). thorndike breaks ties by the lowest action index so that results are
deterministic and policy iteration terminates.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.envs.tabular import TabularMDP

__all__ = ["PlanningResult"]


@dataclass
class PlanningResult:
    """The solution of a planner on a :class:`~thorndike.envs.tabular.TabularMDP` (float64 / long tensors).

    Common fields: ``V`` [S], ``Q`` [S, A], ``policy`` [S] (greedy w.r.t. ``Q``, lowest index among ties),
    ``sweeps`` (full Bellman backups, policy evaluations for PI, episodes for RTDP), ``residuals`` (max-norm change
    of the iterate per sweep) and ``converged``. The other fields are filled by the methods that have them.
    """

    V: Tensor
    Q: Tensor
    policy: Tensor
    sweeps: int
    residuals: list[float]
    converged: bool = True
    # Infinite horizon: bound on max_s |V(s) - V*(s)| from the last residual eps, gamma * eps / (1 - gamma).
    error_bound: float | None = None
    # Finite horizon: V_0..V_H [H+1, S]; infinite horizon with keep_history=True: every iterate.
    V_history: Tensor | None = None
    # Finite horizon: [H, S], row k-1 is the greedy action with k steps to go (act with row H-1-t at time t).
    # Policy iteration: [n, S], the policies pi_0..pi_{n-1} it evaluated.
    policy_history: Tensor | None = None
    # Soft value iteration: the Boltzmann policy pi(a|s) = exp((Q(s, a) - V(s)) / temperature), [S, A].
    policy_probs: Tensor | None = None
    # Policy iteration: how many times the policy changed; policy_values [n, S] holds V^{pi_0}..V^{pi_{n-1}}.
    improvements: int | None = None
    policy_values: Tensor | None = None
    # RTDP: how often each state was backed up.
    visits: Tensor | None = None


def resolve_gamma(mdp: TabularMDP, gamma: float | None) -> float:
    """``gamma`` if given, else the MDP's own; validated to lie in [0, 1]."""
    gamma = mdp.gamma if gamma is None else float(gamma)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    return gamma


def greedy(Q: Tensor) -> Tensor:
    """argmax_a Q(s, a) per state, the lowest action index among exact ties (long [S])."""
    return Q.argmax(1)


def initial_values(mdp: TabularMDP, V0: Tensor | None) -> Tensor:
    """V0 (default zeros) as a fresh float64 [S] tensor, zero at terminal states."""
    if V0 is None:
        return torch.zeros(mdp.n_states, dtype=torch.float64)
    V = torch.as_tensor(V0, dtype=torch.float64).clone()
    if V.shape != (mdp.n_states,):
        raise ValueError(f"V0 must have shape [{mdp.n_states}], got {list(V.shape)}")
    return V.masked_fill_(mdp.terminal, 0.0)


def stopping_bound(gamma: float, residual: float) -> float:
    """max_s |V_k(s) - V*(s)| <= gamma / (1 - gamma) * max_s |V_k(s) - V_{k-1}(s)| for a gamma-contraction."""
    return float("inf") if gamma >= 1.0 else gamma * residual / (1.0 - gamma)


def check_max_sweeps(max_sweeps: int) -> None:
    """max_sweeps must allow at least one sweep."""
    if not isinstance(max_sweeps, int) or max_sweeps < 1:
        raise ValueError(f"max_sweeps must be a positive int, got {max_sweeps!r}")


def iterate_to_fixed_point(
    sweep: Callable[[Tensor], tuple[Tensor, Tensor | None]],
    start: Tensor,
    tol: float,
    max_sweeps: int,
    method: str,
    history: list[Tensor] | None = None,
) -> tuple[Tensor, Tensor | None, list[float], bool]:
    """Apply ``sweep`` (x_k -> (x_{k+1}, by-product such as Q)) until max|x_{k+1} - x_k| < tol.

    The loop every iterative planner shares. Returns the last iterate, the last sweep's by-product, the residual per
    sweep, and whether it converged (a warning names ``method`` when it did not). ``history`` collects iterates.
    """
    x, extra, residuals = start, None, []
    for _ in range(max_sweeps):
        x_next, extra = sweep(x)
        residuals.append(float((x_next - x).abs().max()) if x.numel() else 0.0)
        x = x_next
        if history is not None:
            history.append(x)
        if residuals[-1] < tol:
            return x, extra, residuals, True
    warn_not_converged(method, max_sweeps, residuals[-1], tol)
    return x, extra, residuals, False


def warn_not_converged(method: str, sweeps: int, residual: float, tol: float) -> None:
    """The warning every iterative planner gives when it runs out of sweeps."""
    warnings.warn(
        f"{method} stopped after {sweeps} sweeps with residual {residual:.3g} > tol {tol:.3g}; raise max_sweeps, "
        "loosen tol, or check that gamma < 1 (or that every policy reaches a terminal state when gamma = 1)",
        stacklevel=4,
    )
