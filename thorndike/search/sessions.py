"""What the cross-entropy methods that act step by step share: playing sessions in lockstep and choosing elites.

Notes: 003 L54-L103 (CEM: "sample N games with that policy", "get M best sessions (elites)", the elites as a list of
(s, a) pairs; "parallelize sampling"). The tabular CEM (:mod:`thorndike.search.cem`, a policy matrix refit to the
elites' action frequencies) and the approximate CEM (:mod:`thorndike.search.approx_cem`, a network refit to the elites
by maximum likelihood) differ only in the policy and its update; both play and select the same way:

- :func:`play_sessions` resets every env copy and plays one session (episode) in each, all copies in lockstep, with
  any action chooser (obs -> actions); copies that finished early keep stepping (a vector env steps all its copies)
  but those steps are masked out of the :class:`Sessions`. Sessions are cut at ``max_episode_steps``.
- :func:`select_elites` chooses each run's elite sessions by a percentile of their scores, with the tie rules
  written there; :func:`elite_steps` marks the (s, a) pairs that belong to elite sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.core.diagnostics import EnvOutputError, StepChecks
from thorndike.envs import VecEnv

__all__ = ["Sessions", "elite_steps", "play_sessions", "select_elites"]


@dataclass
class Sessions:
    """One iteration's sessions, one per env copy: ``states`` ``[T, N, ...]`` and ``actions`` ``[T, N, ...]`` as the
    env took them, ``active`` ``[T, N]`` (the steps of each copy's session, before it ended), ``returns`` (sum of
    rewards) and ``scores`` (sum_t gamma^t r_t, what elites are chosen by) ``[N]`` float64, and ``lengths`` ``[N]``."""

    states: Tensor
    actions: Tensor
    active: Tensor
    returns: Tensor
    scores: Tensor
    lengths: Tensor

    @property
    def steps(self) -> int:
        """Lockstep steps the iteration took (the longest session)."""
        return self.states.shape[0]

    def as_finished_episodes(self) -> dict[str, Tensor]:
        """The sessions as the fixed-shape entries a VecEnv step reports for episodes that ended (every copy's
        session counts, cut at ``max_episode_steps`` or not), for :meth:`EpisodeLedger.record`."""
        return {"done": torch.ones_like(self.lengths, dtype=torch.bool), "episode_return": self.returns,
                "episode_length": self.lengths}


def play_sessions(envs: VecEnv, choose: Callable[[Tensor], Tensor], max_episode_steps: int,
                  gamma: float = 1.0, first_step: int = 0, step_size: int = 1, where: str = "",
                  n_states: int | None = None) -> tuple[Sessions, Tensor]:
    """Reset every copy of ``envs`` and play one session in each with ``choose`` (observations ``[N, ...]`` ->
    actions), all copies in lockstep, until every session has ended or ``max_episode_steps`` steps have passed.

    Returns the sessions and the observations after the last step (what the env interaction holds next). One host
    sync per step (whether any session is still running); the steps of classic-control and toy-text envs are tiny
    tensor ops anyway.

    Observations, final observations and rewards are checked once per chunk of steps and after the last
    (:class:`~thorndike.core.diagnostics.StepChecks`; with ``n_states``, Discrete states must lie in
    ``[0, n_states)``): the error names the step (lockstep step t ends at ``first_step + (t + 1) * step_size``,
    ``where`` adds context) and the env copy. Until then a state out of range is mapped into it, so ``choose`` can
    index a table with it.
    """
    checks = StepChecks(n_states)
    obs = envs.reset()
    n = obs.shape[0]
    device = obs.device
    checks.add(first_step, observation=obs, final_observation=obs, reward=torch.zeros(n, device=device))
    obs = checks.safe(obs)
    running = torch.ones(n, dtype=torch.bool, device=device)
    returns = torch.zeros(n, dtype=torch.float64, device=device)
    scores = torch.zeros(n, dtype=torch.float64, device=device)
    lengths = torch.zeros(n, dtype=torch.int64, device=device)
    discount = 1.0
    states, actions, active = [], [], []
    for t in range(max_episode_steps):
        step = first_step + (t + 1) * step_size
        action = choose(obs)
        states.append(obs)
        actions.append(action)
        active.append(running)
        try:
            obs, reward, terminated, truncated, info = envs.step(action)
        except EnvOutputError as err:
            raise err.at(step, where) from err
        if checks.add(step, observation=obs, final_observation=info["final_obs"], reward=reward):
            checks.check(where)
        obs = checks.safe(obs)
        reward = torch.where(running, reward.double(), 0.0)
        returns += reward
        scores += discount * reward
        discount *= gamma
        lengths += running
        running = running & ~(terminated | truncated)
        if not bool(running.any()):
            break
    checks.check(where)
    sessions = Sessions(torch.stack(states), torch.stack(actions), torch.stack(active), returns, scores, lengths)
    return sessions, obs


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
