"""Real-time dynamic programming (RTDP): Bellman backups only on the states a simulated agent visits.

Lecture-notes concept: *RTDP* (F0 L357-L388; inventory A14, C11, E10). Instead of sweeping every state, run
episodes from the start state; in each visited state s compute the one-step look-ahead

    Q(s, a) = sum_s' P(s'|s, a) (R(s, a, s') + gamma V(s'))

with the true model, set V(s) = max_a Q(s, a) (a Bellman backup of that one state), pick an action, sample s' and
go on until a terminal state. Two variants:

- ``variant="notes"``: the notes' epsilon-greedy version: V starts at 0 (or V0), the action is random with
  probability epsilon and argmax_a Q(s, a) otherwise, and epsilon decays by ``epsilon_decay`` after every
  episode (defaults from the notes: gamma 0.99, epsilon 0.9, decay 0.995, 1000 episodes).
- ``variant="greedy"``: classic RTDP (Barto, Bradtke and Singh, 1995): always the greedy action, from an
  optimistic V0 (an upper bound on V*; by default max(0, max r) / (1 - gamma)), which is what makes it converge
  to V* on the states an optimal policy visits without exploring the rest.

What differs from the notes' code (F0 L362-L383), as corrected here:

- the backup is V(s) = max_a sum_s' P(s'|s, a) (R(s, a, s') + gamma V(s')); the notes write
  V[s] = reward(s, executed action) + gamma * max_a V[next(s, a)], which mixes the reward of the action taken with
  the successor of another action (E10 c);
- the greedy action maximises Q(s, a), immediate reward included, not V of the successor alone (E10 d);
- successors are an expectation over P (the notes' ``get_next_state`` assumes deterministic moves);
- epsilon is a parameter (the notes read an undefined ``epsilon_start`` and then overwrite it, E10 a);
- terminal states keep V = 0 (they are never backed up), so rewards are paid on the transition into them, as
  :class:`~thorndike.envs.tabular.TabularMDP` does; episodes are also cut after ``max_episode_steps``.

RTDP handles one state at a time by nature, so its inner loop runs on numpy views of the model (a torch call per
scalar would cost more than the arithmetic).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from thorndike.core.schedules import Constant, Exponential
from thorndike.envs.tabular import TabularMDP
from thorndike.planning.result import PlanningResult, greedy, initial_values

__all__ = ["rtdp"]

VARIANTS = ("notes", "greedy")


def rtdp(
    mdp: TabularMDP,
    gamma: float = 0.99,
    episodes: int = 1000,
    variant: str = "notes",
    epsilon: float = 0.9,
    epsilon_decay: float = 0.995,
    V0: Tensor | None = None,
    max_episode_steps: int | None = None,
    tol: float = 1e-6,
    seed: int = 0,
) -> PlanningResult:
    """Run RTDP for ``episodes`` episodes from ``mdp.start`` and return the values it learned.

    Args:
        gamma: discount (the notes use 0.99).
        variant: ``"notes"`` (epsilon-greedy, epsilon * epsilon_decay**episode) or ``"greedy"`` (classic RTDP).
        V0: initial values [S]; default 0 for ``"notes"``, the optimistic max(0, max r) / (1 - gamma) for
            ``"greedy"`` (which then needs gamma < 1).
        max_episode_steps: cut an episode after this many steps (default ``mdp.max_steps``, else 10,000).
        tol: ``converged`` is True when the last episode changed no value by ``tol`` or more.
        seed: seeds the start states, exploration and sampled transitions.

    Returns a :class:`PlanningResult`: ``V`` (only visited states were backed up), ``Q = r + gamma P V`` and its
    greedy ``policy``, ``sweeps`` = episodes, ``residuals`` = the largest change of V in each episode, ``visits``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive int, got {episodes!r}")
    S, A = mdp.n_states, mdp.n_actions
    if V0 is None and variant == "greedy":
        if gamma >= 1.0:
            raise ValueError("greedy RTDP with gamma = 1 needs an optimistic V0 (an upper bound on V*)")
        V0 = torch.full((S,), max(0.0, float(mdp.r.max())) / (1.0 - gamma), dtype=torch.float64)
    V_t = initial_values(mdp, V0)
    V = V_t.numpy()  # shares memory: updates below land in V_t
    cap = max_episode_steps or mdp.max_steps or 10_000
    model = mdp.transition_arrays()
    crow, cols, probs, start_cdf = model["crow"], model["cols"], model["probs"], model["start_cdf"]
    r = mdp.r.numpy()
    terminal = mdp.terminal.numpy()
    visits = np.zeros(S, dtype=np.int64)
    rng = np.random.default_rng(seed)
    exploration = Exponential(epsilon, epsilon_decay) if variant == "notes" else Constant(0.0)
    residuals: list[float] = []
    for episode in range(episodes):
        eps = exploration(episode)
        s = int(np.searchsorted(start_cdf, rng.random() * start_cdf[-1], side="right"))
        largest_change = 0.0
        for _ in range(cap):
            if terminal[s]:
                break
            first, last = s * A, s * A + A
            lo, hi = int(crow[first]), int(crow[last])
            # One-step look-ahead for every action of s: each action's transitions are a contiguous CSR run.
            Q_s = r[s] + gamma * np.add.reduceat(probs[lo:hi] * V[cols[lo:hi]], crow[first:last] - lo)
            best = int(np.argmax(Q_s))
            a = int(rng.integers(A)) if eps > 0.0 and rng.random() < eps else best
            largest_change = max(largest_change, abs(Q_s[best] - V[s]))
            V[s] = Q_s[best]
            visits[s] += 1
            row_lo, row_hi = int(crow[first + a]), int(crow[first + a + 1])
            cdf = np.cumsum(probs[row_lo:row_hi])
            k = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), row_hi - row_lo - 1)
            s = int(cols[row_lo + k])
        residuals.append(float(largest_change))
    Q = mdp.backup(V_t, gamma)
    return PlanningResult(
        V=V_t, Q=Q, policy=greedy(Q), sweeps=episodes, residuals=residuals, converged=residuals[-1] < tol,
        visits=torch.from_numpy(visits),
    )
