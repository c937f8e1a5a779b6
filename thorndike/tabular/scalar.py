"""The few-runs path of one-step tabular TD control: the same steps and updates in plain Python numbers.

Why. The tensor step loop (:class:`~thorndike.tabular.base.RunStepper`) costs about a hundred tensor ops per step,
each about 2 us of dispatch whatever its size: with thousands of runs that is nearly free per run, with one run it
is ten times the tutorial loop's whole step. With few runs, playing each run's step on Python floats and lists
costs a few microseconds per run.

What. :class:`ScalarLearner` plays a ``collect`` of steps of Q-learning, SARSA or expected SARSA (each algorithm
file gives its target on plain numbers next to its tensor update; the behaviour policy's and the incremental
update's twins on plain numbers are in :mod:`thorndike.core.exploration` and :mod:`thorndike.core.targets`). For
each chunk of steps it draws the random numbers of all the chunk's steps from each generator in one op: torch's
CPU generators fill a tensor element by element, so one draw of ``[K, ...]`` is the K draws of ``[...]`` that the
tensor path makes, and leaves the generator where they would. It reads the tables, visit counts, episode counts,
epsilon, env state and SARSA's pending action into Python lists once per ``collect``, plays the steps (run by run
within a step, as the tensor ops do in parallel), then writes everything back: tables, counts, epsilon, the env's
states, elapsed steps and returns, the ledger's finished episodes, the pending action and ``global_step``. So the
log rows, checkpoints and callbacks at the iteration boundaries see exactly what the tensor path leaves there.

Bit for bit. Every float64 operation is the tensor path's, in the same order (Python floats are IEEE doubles):
targets, ``Q + alpha (target - Q)``, 1/n step sizes, epsilon-greedy from the same uniforms, expected SARSA's sum in
torch's order (:func:`~thorndike.core.targets.row_sum`), epsilon schedules computed by the same torch function over
all runs when an episode ends. tests/tabular/test_scalar.py runs both paths and compares every table, count,
ledger row, log row, generator state and checkpoint.

When. Decided once when the agent is built (:func:`scalar_learner`): an algorithm that has a scalar target,
``n_runs * n_actions`` at most :data:`MAX_ENTRIES`, epsilon-greedy or greedy exploration, and the native tabular env
(a toy-text id or a TabularMDP, unwrapped, on the CPU) whose model offers a plain step
(:meth:`~thorndike.envs.batched.tabular.TabularEnv.plain_model`). Everything else (more runs, Boltzmann or UCB,
double Q, Dyna-Q, n-step, Monte Carlo, prediction, linear Q, Gymnasium, wrapped or user-written envs, CUDA, a
subclass that overrides how the learner acts or its step sizes) keeps the tensor path. Users see no difference but
the speed; ``agent.scalar`` tells which path a learner took.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from thorndike.core import exploration
from thorndike.core.targets import incremental_update, row_sum_is_torch_sum
from thorndike.envs.batched.tabular import PlainModel, TabularEnv

if TYPE_CHECKING:
    from thorndike.tabular.base import TabularAgent

__all__ = ["CHUNK", "MAX_ENTRIES", "ScalarLearner", "ScalarTarget", "scalar_learner"]

# A target on plain numbers: (reward, gamma, Q(s', .) as a list, terminated, a' (SARSA's, else -1), and a function
# giving the behaviour's probabilities at s') -> the float64 target.
ScalarTarget = Callable[[float, float, list[float], bool, int, Callable[[], list[float]]], float]

MAX_ENTRIES = 128
"""The plain-Python path is used while ``n_runs * n_actions`` is at most this. Its cost grows with the runs and the
actions (a few microseconds per run and step on FrozenLake), the tensor path's hardly (about 170 us a step up to
hundreds of runs). Measured here (Q-learning, SARSA, expected SARSA on FrozenLake-v1, CliffWalking-v1 and Taxi-v4),
the plain path is 40x faster with one run and still 1.3x to 2x faster at 128 (32 runs of 4 actions, 21 of 6); it
breaks even around 55 runs of 4 actions."""

CHUNK = 1024
"""Steps whose random numbers are drawn in one op (bounds the memory of a long collect)."""


def scalar_learner(agent: TabularAgent, target: ScalarTarget | None) -> ScalarLearner | None:
    """The few-runs path for ``agent`` with the algorithm's scalar ``target``, or None where the tensor path stays
    (see the module docstring for when)."""
    from thorndike.tabular.base import TabularAgent

    config = agent.config
    envs = agent.interaction.envs
    # A subclass that changes how the learner acts, its step sizes or its step loop keeps the tensor path, which
    # calls those methods; the plain path plays the base class's versions.
    overridden = any(getattr(type(agent), name) is not getattr(TabularAgent, name)
                     for name in ("behaviour_q", "behaviour_action", "behaviour_probs", "alpha", "collect"))
    if (target is None or overridden or type(envs) is not TabularEnv or config.n_runs * envs.n_actions > MAX_ENTRIES
            or config.exploration not in ("epsilon_greedy", "greedy") or agent.device.type != "cpu"
            or not row_sum_is_torch_sum(envs.n_actions)):
        return None
    model = envs.plain_model()
    return None if model is None else ScalarLearner(agent, target, envs, model)


class ScalarLearner:
    """Plays :meth:`learn`'s steps of one-step TD control for ``agent`` in plain Python (see the module docstring)."""

    def __init__(self, agent: TabularAgent, target: ScalarTarget, envs: TabularEnv, model: PlainModel) -> None:
        self.agent, self.target, self.envs, self.model = agent, target, envs, model

    def learn(self, steps: int, next_action: bool = False) -> None:
        """``steps`` steps of every run with their updates: what ``for t in agent.collect(steps, next_action)``
        with the algorithm's update does, bit for bit (``next_action``: SARSA's a', the next step's action)."""
        agent, model, target, envs = self.agent, self.model, self.target, self.envs
        config, tables, behaviour = agent.config, agent.tables, agent.behaviour
        n_runs, n_actions = config.n_runs, agent.n_actions
        gamma, alpha, one_over_n = config.gamma, config.alpha, config.alpha_schedule == "1/n"
        epsilon_greedy, epsilon_varies = config.exploration == "epsilon_greedy", config.epsilon_varies
        run_size = agent.n_states * n_actions

        behaviour.start()
        epsilon = behaviour.current.tolist()
        q = tables["q"].view(-1).numpy().tolist()
        visits = tables.visits.view(-1).numpy().tolist()
        episodes = tables.episodes.tolist()
        obs = agent.obs.tolist()
        env_states, elapsed, returns = envs.plain_state()
        pending = None if agent.pending_action.value is None else agent.pending_action.value.tolist()
        # the episodes that end, for the ledger: env copy (run), return, length, global step
        ended_copies: list[int] = []
        ended_returns: list[float] = []
        ended_lengths: list[int] = []
        ended_steps: list[int] = []

        width = n_actions + 2 if epsilon_greedy else 1  # uniforms per run and choice

        def choose(r: int, state: int, draw: int) -> int:
            """The behaviour's action for run ``r`` at ``state`` from the uniforms of choice ``draw``."""
            base = r * run_size + state * n_actions
            row = q[base: base + n_actions]
            at = (draw * n_runs + r) * width
            if epsilon_greedy:
                return exploration.epsilon_greedy_sample_row(row, epsilon[r], uniforms[at: at + width])
            return exploration.sample_row(exploration.greedy_probs_row(row), uniforms[at])

        def probs(row: list[float], r: int) -> list[float]:
            """The behaviour's probabilities for run ``r`` at a state whose values are ``row``."""
            if epsilon_greedy:
                return exploration.epsilon_greedy_probs_row(row, epsilon[r])
            return exploration.greedy_probs_row(row)

        step, left = agent.global_step, steps
        while left:
            k = min(left, CHUNK)
            left -= k
            # The behaviour draws [R, A + 2] uniforms (greedy: [R]) per choice: one choice a step, SARSA two (a' at
            # s', then at the state each run goes on from) and one more while it has no pending action yet. Flat
            # lists of floats (through NumPy, several times faster than a tensor's tolist; and no nested lists for
            # the garbage collector to scan).
            draws = k * (2 if next_action else 1) + int(next_action and pending is None)
            uniforms = torch.rand(draws * n_runs * width, generator=agent.generator,
                                  dtype=torch.float64).numpy().tolist()
            transition_bits, start_bits = envs.draw_steps(k)
            no_bits = [0] * (k * n_runs) if not (transition_bits and start_bits) else []
            transition_bits, start_bits = transition_bits or no_bits, start_bits or no_bits
            draw = 0
            for t in range(k):
                step += 1
                choosing = pending is None  # else the action is SARSA's a' from the step before
                if next_action:
                    next_draw, reset_draw = draw + choosing, draw + choosing + 1
                    next_actions = [0] * n_runs
                done_runs = []
                for r in range(n_runs):
                    s = obs[r]
                    a = choose(r, s, draw) if choosing else pending[r]
                    i = t * n_runs + r
                    (next_s, reward, terminated, truncated, obs[r], elapsed[r], returns[r], episode_return,
                     length) = model.step(env_states[r], a, elapsed[r], returns[r], transition_bits[i], start_bits[i])
                    env_states[r] = obs[r]
                    base = r * run_size + next_s * n_actions
                    q_next = q[base: base + n_actions]
                    a_next = -1
                    if next_action:  # drawn before the update, with the epsilon of the episode that is ending
                        a_next = next_actions[r] = choose(r, next_s, next_draw)
                    value = target(reward, gamma, q_next, terminated, a_next,
                                   lambda row=q_next, r=r: probs(row, r))
                    entry = r * run_size + s * n_actions + a
                    q[entry] = incremental_update(q[entry], value, 1.0 / float(visits[entry] + 1) if one_over_n
                                                  else alpha)
                    visits[entry] += 1
                    if terminated or truncated:
                        episodes[r] += 1
                        done_runs.append(r)
                        ended_copies.append(r)
                        ended_returns.append(episode_return)
                        ended_lengths.append(length)
                        ended_steps.append(step)
                draw += choosing + 2 * next_action
                if done_runs and epsilon_varies:  # the same torch function over all runs as the tensor path
                    fresh = config.epsilon_at(torch.tensor(episodes)).tolist()
                    for r in done_runs:
                        epsilon[r] = fresh[r]
                if next_action:  # where an episode ended, a' at the reset state, after the update and epsilon
                    for r in done_runs:
                        next_actions[r] = choose(r, obs[r], reset_draw)
                    pending = next_actions

        # Write everything back where the tensor path keeps it.
        tables["q"].view(-1).copy_(torch.tensor(q, dtype=torch.float64))
        tables.visits.view(-1).copy_(torch.tensor(visits, dtype=torch.int64))
        tables.episodes.copy_(torch.tensor(episodes, dtype=torch.int64))
        behaviour.current = torch.tensor(epsilon, dtype=torch.float64, device=agent.device)
        agent.interaction.obs = envs.set_plain_state(env_states, elapsed, returns)
        agent.interaction.ledger.append(ended_copies, ended_returns, ended_lengths, ended_steps)
        if pending is not None:
            agent.pending_action.value = torch.tensor(pending, dtype=torch.int64, device=agent.device)
        agent.global_step = step
        # The env's states come from its model's table, always in range; checked once here as the tensor path does.
        checks = agent.stepper.checks
        checks.add(step, observation=agent.interaction.obs)
        checks.check(f"iteration {agent.iteration + 1}")
