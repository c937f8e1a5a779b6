"""Exploration: how a behaviour policy is made from action values Q(s, .).

Notes: greedy (003 L289), epsilon-greedy with epsilon starting at 1 and decaying (000 L127, L269-L271, L382; 003 L292),
softmax / Boltzmann with temperature tau (003 L295-L298), the UCB bonus Q + c sqrt(ln N / n) with unvisited actions
first (000 L391), and optimistic initial values (a constant ``q_init`` above any achievable return).

Every function works on a batch: ``q`` is ``[..., A]`` and the result is ``[...]`` (actions) or ``[..., A]``
(probabilities). Ties among the best actions share the greedy probability equally, so a table of zeros explores
instead of always taking action 0; :func:`sample` draws one action per row from any such probabilities with one
uniform number per row.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "EPSILON_SCHEDULES",
    "EXPLORATION",
    "behaviour_probs",
    "boltzmann_probs",
    "decayed_epsilon",
    "epsilon_greedy_probs",
    "epsilon_greedy_probs_row",
    "epsilon_greedy_sample",
    "epsilon_greedy_sample_row",
    "greedy",
    "greedy_probs",
    "greedy_probs_row",
    "sample",
    "sample_row",
    "ucb_scores",
]

EXPLORATION = ("epsilon_greedy", "boltzmann", "ucb", "greedy")
"""The behaviour policies a tabular agent can use (its ``exploration`` config field)."""


def greedy(q: Tensor) -> Tensor:
    """argmax_a Q(s, a), the first best action on ties (deterministic, as in planning's greedy policy)."""
    return q.argmax(-1)


def greedy_probs(q: Tensor) -> Tensor:
    """The greedy policy as probabilities: 1 / (number of best actions) on each best action, 0 elsewhere."""
    best = q == q.amax(-1, keepdim=True)
    best = best.to(q.dtype if q.is_floating_point() else torch.float64)
    return best / best.sum(-1, keepdim=True)


def epsilon_greedy_probs(q: Tensor, epsilon: Tensor | float) -> Tensor:
    """pi(a|s) = (1 - eps) * greedy(a|s) + eps / |A|; ``epsilon`` is a float or broadcasts against ``q[..., 0]``.

    With eps = 1 the policy is uniform; the greedy action's probability is 1 - eps + eps / |A| (one best action).
    """
    n_actions = q.shape[-1]
    eps = torch.as_tensor(epsilon, dtype=torch.float64, device=q.device)
    if eps.dim():
        eps = eps.unsqueeze(-1)
    return (1 - eps) * greedy_probs(q).double() + eps / n_actions


def boltzmann_probs(q: Tensor, temperature: Tensor | float) -> Tensor:
    """pi(a|s) = exp(Q(s, a) / tau) / sum_b exp(Q(s, b) / tau), computed stably (max subtracted).

    tau -> 0 gives the greedy policy (and tau = 0 is taken to mean exactly that); a large tau is near uniform.
    """
    tau = torch.as_tensor(temperature, dtype=torch.float64, device=q.device)
    if bool((tau < 0).any()):
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if tau.dim():
        tau = tau.unsqueeze(-1)
    q = q.double()
    # A zero temperature divides by zero: treat it as the limit, the greedy policy.
    logits = torch.where(tau > 0, q / tau.clamp_min(1e-300), torch.where(q == q.amax(-1, keepdim=True), 0.0, -math.inf))
    return torch.softmax(logits, dim=-1)


def ucb_scores(q: Tensor, counts: Tensor, c: float) -> Tensor:
    """Q(s, a) + c sqrt(ln N(s) / n(s, a)), with N(s) = sum_a n(s, a); an action never tried scores +inf.

    Acting greedily on these scores tries every action of a state once, then favours the rarely tried ones.
    """
    counts = counts.to(torch.float64)
    total = counts.sum(-1, keepdim=True)
    bonus = c * torch.sqrt(torch.log(total.clamp_min(1.0)) / counts.clamp_min(1.0))
    return torch.where(counts > 0, q.double() + bonus, math.inf)


def sample(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One action per row of ``probs`` ``[..., A]`` by inverse CDF: one uniform number per row, no Python loop."""
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[:-1], generator=generator, dtype=cdf.dtype, device=probs.device)
    # Counting the columns whose cdf is <= u skips zero-probability actions (their cdf equals the previous one);
    # the clamp guards the last column against rounding.
    passed = cdf <= (u * cdf[..., -1]).unsqueeze(-1)
    return passed.sum(-1).clamp_max(probs.shape[-1] - 1)


def epsilon_greedy_sample(q: Tensor, epsilon: Tensor | float, generator: torch.Generator | None = None) -> Tensor:
    """One epsilon-greedy action per row of ``q`` ``[R, A]``: the distribution of :func:`epsilon_greedy_probs`
    (ties broken uniformly) in fewer tensor ops than building it, for the per-step hot path of tabular learners."""
    u = torch.rand(q.shape[0], q.shape[1] + 2, generator=generator, dtype=torch.float64, device=q.device)
    best = q == q.amax(-1, keepdim=True)
    greedy_action = (u[:, :-2] * best).argmax(-1)  # the largest of the best actions' uniforms: a uniform pick
    random_action = (u[:, -1] * q.shape[1]).long()
    return torch.where(u[:, -2] < epsilon, random_action, greedy_action)


# ---- one row in plain Python: the few-runs path of the tabular learners (thorndike.tabular.scalar) -----------------
# The same operations as the tensor functions above on one row of Python floats, in the same order, so they give the
# same actions and probabilities from the same uniform numbers (tests/tabular/test_scalar.py).


def epsilon_greedy_sample_row(q: list[float], epsilon: float, u: list[float]) -> int:
    """:func:`epsilon_greedy_sample` for one row ``q`` of ``A`` values, ``u`` being its ``A + 2`` uniforms."""
    best_value = max(q)
    greedy_action, largest = 0, -1.0
    for a, value in enumerate(q):  # argmax of u * best: the first of the largest (0.0 off the best actions)
        v = u[a] if value == best_value else 0.0
        if v > largest:
            greedy_action, largest = a, v
    if u[-2] < epsilon:
        return int(u[-1] * len(q))
    return greedy_action


def greedy_probs_row(q: list[float]) -> list[float]:
    """:func:`greedy_probs` of one row: 1 / (number of best actions) on each best action, 0 elsewhere."""
    best_value = max(q)
    best = [1.0 if value == best_value else 0.0 for value in q]
    count = sum(best)  # a count of ones: exact in any order
    return [b / count for b in best]


def epsilon_greedy_probs_row(q: list[float], epsilon: float) -> list[float]:
    """:func:`epsilon_greedy_probs` of one row: (1 - eps) * greedy + eps / |A|."""
    spread = epsilon / len(q)
    return [(1 - epsilon) * g + spread for g in greedy_probs_row(q)]


def sample_row(probs: list[float], u: float) -> int:
    """:func:`sample` of one row from its uniform number ``u``: the columns whose cumulative sum is <= u * total."""
    cdf, total = [], 0.0
    for p in probs:
        total += p
        cdf.append(total)
    threshold = u * total
    return min(sum(1 for c in cdf if c <= threshold), len(probs) - 1)


EPSILON_SCHEDULES = ("exponential", "linear", "glie")
"""How epsilon falls with the episodes a run has finished (see :func:`decayed_epsilon`)."""


def decayed_epsilon(start: float, decay: float, end: float, episodes: Tensor, schedule: str = "exponential",
                    horizon: int = 0) -> Tensor:
    """epsilon after ``episodes`` finished episodes, floored at ``end``:

    - ``exponential``: start * decay^episodes (000 L382 decays by 0.995 per episode; decay = 1 keeps it constant);
    - ``linear``: from start to end over ``horizon`` episodes, then end;
    - ``glie``: start / (1 + episodes), greedy in the limit yet every action tried infinitely often (003 L300).

    Closed forms of the episode count, so a resumed run gets the same value bit for bit.
    """
    k = episodes.double()
    if schedule == "exponential":
        value = start * torch.pow(decay, k)
    elif schedule == "linear":
        if horizon < 1:
            raise ValueError(f"a linear epsilon schedule needs horizon >= 1 episodes, got {horizon}")
        value = start + (end - start) * (k / horizon).clamp_max(1.0)
    elif schedule == "glie":
        value = start / (1.0 + k)
    else:
        raise ValueError(f"unknown epsilon schedule {schedule!r}; use one of {', '.join(EPSILON_SCHEDULES)}")
    return value.clamp_min(end) if end <= start else value.clamp_max(end)


def behaviour_probs(kind: str, q: Tensor, epsilon: Tensor | float = 0.0, temperature: float = 1.0,
                    counts: Tensor | None = None, ucb_c: float = 1.0) -> Tensor:
    """The probabilities of the behaviour policy ``kind`` (one of :data:`EXPLORATION`) at action values ``q``;
    ``ucb`` needs the visit ``counts`` of the same shape."""
    if kind == "epsilon_greedy":
        return epsilon_greedy_probs(q, epsilon)
    if kind == "boltzmann":
        return boltzmann_probs(q, temperature)
    if kind == "ucb":
        if counts is None:
            raise ValueError("UCB exploration needs the visit counts n(s, a)")
        return greedy_probs(ucb_scores(q, counts, ucb_c))
    if kind == "greedy":
        return greedy_probs(q)
    raise ValueError(f"unknown exploration {kind!r}; use one of {', '.join(EXPLORATION)}")
