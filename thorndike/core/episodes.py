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
from thorndike.envs.batched.base import BatchedEnv

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
    if isinstance(envs, BatchedEnv):
        return _play_native_sessions(envs, choose, max_episode_steps, gamma, first_step, step_size, where, n_states)
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


def _play_native_sessions(envs: BatchedEnv, choose: Callable[[Tensor], Tensor], max_episode_steps: int, gamma: float,
                          first_step: int, step_size: int, where: str, n_states: int | None) -> tuple[Sessions, Tensor]:
    """:func:`play_sessions` on a native batched env, with :meth:`~thorndike.envs.batched.base.BatchedEnv.
    continue_episodes`: no autoreset, time-limit bookkeeping or info per step (about half a step's cost), the same
    numbers and the same random stream (see its docstring), so the same sessions bit for bit. The env's time limit
    cuts a session as a truncation would. Returns, scores and lengths are summed once at the end, in step order
    (``cumsum``), as the stepping loop adds them. The observations returned are those of the env's own state, which
    ``continue_episodes`` leaves as the reset made it (the next call resets every copy again anyway)."""
    checks = StepChecks(n_states)
    state = envs.begin_episodes()
    obs = envs.observe(state)
    n, device = obs.shape[0], obs.device
    checks.add(first_step, observation=obs)
    obs = checks.safe(obs)
    limit = envs.max_episode_steps
    horizon = max_episode_steps if limit is None else min(max_episode_steps, limit)
    running = torch.ones(n, dtype=torch.bool, device=device)
    states, actions, active, rewards = [], [], [], []
    for t in range(horizon):
        action = choose(obs)
        states.append(obs)
        actions.append(action)
        active.append(running)
        state, reward, terminated = envs.continue_episodes(state, action)
        obs = envs.observe(state)
        if checks.add(first_step + (t + 1) * step_size, only=running, observation=obs, reward=reward):
            checks.check(where)
        obs = checks.safe(obs)
        rewards.append(reward)
        running = running & ~terminated
        if not bool(running.any()):
            break
    checks.check(where)
    mask = torch.stack(active)
    masked = torch.stack(rewards).double().where(mask, 0.0)
    discounts = [1.0]
    for _ in range(mask.shape[0] - 1):
        discounts.append(discounts[-1] * gamma)  # the stepping loop's running product, in Python floats
    zero = torch.zeros(1, n, dtype=torch.float64, device=device)
    weighted = torch.tensor(discounts, dtype=torch.float64, device=device).unsqueeze(1) * masked
    returns = torch.cat((zero, masked)).cumsum(0)[-1]
    scores = torch.cat((zero, weighted)).cumsum(0)[-1]
    sessions = Sessions(torch.stack(states), torch.stack(actions), mask, masked, returns, scores, mask.sum(0))
    return sessions, envs.observe(envs.get_state()[0])
