"""Whole episodes on every env copy at once: the data of the methods that learn from complete episodes.

Notes: 003 L54-L103 (CEM: "sample N games with that policy"; "parallelize sampling"), 004 (REINFORCE: "collect m
trajectories with the policy", then update from their returns). :func:`play_sessions` resets every env copy and
plays one session (episode) in each, all copies in lockstep, with any action chooser (obs -> actions); copies that
finished early keep stepping (a vector env steps all its copies) but those steps are masked out of the
:class:`Sessions`. Sessions are cut at ``max_episode_steps`` (the notes' horizon H). The cross-entropy methods
(:mod:`thorndike.search.sessions`) and REINFORCE (:mod:`thorndike.policy_gradient.reinforce`) play this way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.core.diagnostics import EnvOutputError, StepChecks
from thorndike.envs import VecEnv

__all__ = ["Sessions", "play_sessions"]


@dataclass
class Sessions:
    """One iteration's sessions, one per env copy: ``states`` ``[T, N, ...]`` and ``actions`` ``[T, N, ...]`` as the
    env took them, ``active`` ``[T, N]`` (the steps of each copy's session, before it ended), ``rewards`` ``[T, N]``
    float64 (0 after a session ended), ``returns`` (sum of rewards) and ``scores`` (sum_t gamma^t r_t, what the
    cross-entropy methods choose elites by) ``[N]`` float64, and ``lengths`` ``[N]``."""

    states: Tensor
    actions: Tensor
    active: Tensor
    rewards: Tensor
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
    states, actions, active, rewards = [], [], [], []
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
        rewards.append(reward)
        returns += reward
        scores += discount * reward
        discount *= gamma
        lengths += running
        running = running & ~(terminated | truncated)
        if not bool(running.any()):
            break
    checks.check(where)
    sessions = Sessions(torch.stack(states), torch.stack(actions), torch.stack(active), torch.stack(rewards), returns,
                        scores, lengths)
    return sessions, obs
