"""What the cross-entropy methods that act step by step share: playing sessions in lockstep and choosing elites.

Notes: 003 L54-L103 (CEM: "sample N games with that policy", "get M best sessions (elites)", the elites as a list of
(s, a) pairs; "parallelize sampling"). The tabular CEM (:mod:`thorndike.search.cem`, a policy matrix refit to the
elites' action frequencies) and the approximate CEM (:mod:`thorndike.search.approx_cem`, a network refit to the elites
by maximum likelihood) differ only in the policy and its update; both play and select the same way:

- :func:`~thorndike.core.episodes.play_sessions` (in ``core/``, REINFORCE plays the same way) resets every env copy
  and plays one session (episode) in each, all copies in lockstep; steps after a session ended are masked out.
- :func:`select_elites` chooses each run's elite sessions by a percentile of their scores, with the tie rules
  written there; :func:`elite_steps` marks the (s, a) pairs that belong to elite sessions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from thorndike.core.episodes import Sessions, play_sessions

__all__ = ["Sessions", "elite_steps", "play_sessions", "select_elites"]


def select_elites(returns: Tensor, percentile: float) -> tuple[Tensor, Tensor]:
    """Elite sessions of each run: ``returns`` ``[R, N]`` -> (mask ``[R, N]``, threshold ``[R]``).

    The threshold is the ``percentile``-th percentile of the run's returns with linear interpolation (what
    ``numpy.percentile`` computes). A session is an elite when its return is >= the threshold and > the run's worst
    return: every session tied at the threshold is kept, except when the threshold is the worst return itself, where
    the ties are sessions no better than any other (all of them when every return is equal; and with sparse rewards,
    such as FrozenLake's, the percentile of a few successes among many failures is 0). Then only the strictly better
    sessions are elites, and when every return is equal there are none. Interpolating between equal returns gives
    that return exactly, so ties are never lost to rounding.
    """
    returns = returns.double()
    threshold = torch.quantile(returns, percentile / 100.0, dim=1, interpolation="linear")
    worst = returns.amin(1, keepdim=True)
    return (returns >= threshold.unsqueeze(1)) & (returns > worst), threshold


def elite_steps(sessions: Sessions, elite: Tensor) -> Tensor:
    """``[T, N]``: the steps that belong to an elite session (``elite`` ``[R, N_per_run]`` or ``[N]``, copies in run
    order), before that session ended."""
    return sessions.active & elite.reshape(-1)
