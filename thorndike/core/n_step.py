"""Online n-step targets: a ring buffer of each run's last n (s, a, r) and the targets of the pairs it can update.

Notes: 003 L329-L339 (n-step SARSA and n-step Q-learning): the pair (s_tau, a_tau) is updated toward

    Q_hat(s_tau, a_tau) = sum_{k<n} gamma^k r_{tau+k} + gamma^n * B(s_{tau+n})

with B the bootstrap of the method (Q(s_{tau+n}, a_{tau+n}) for SARSA, max_a Q(s_{tau+n}, a) for Q-learning). Online,
that target is known n steps after tau, so at step t the pair of step tau = t - n + 1 is updated (Sutton and Barto,
section 7.2). At an episode's end every pair still waiting is updated at once with a shorter window: no bootstrap after
a termination (a terminal state is worth 0), the bootstrap from the true last state after a time-limit truncation.
:func:`thorndike.core.returns.n_step_targets` computes the same targets offline, over a stored rollout.

Layout. ``R`` runs step in lockstep, so one write position serves them all: step t of every run goes to slot
``t mod n`` of ``[n, R]`` tensors, and the entry of age g (g steps old) sits in slot ``(ptr - g) mod n`` for every run.
What differs per run is how many entries belong to its current episode (``length``, at most n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from thorndike.core.resources import require_memory

__all__ = ["NStepBuffer", "NStepUpdate"]


@dataclass
class NStepUpdate:
    """One update per run ``[R]``: move Q(states, actions) toward ``target`` where ``active``."""

    states: Tensor
    actions: Tensor
    target: Tensor
    active: Tensor


class NStepBuffer:
    """The last ``n`` (s, a, r) of each of ``n_runs`` runs; a checkpoint component (``state_dict`` /
    ``load_state_dict``).

    Each step: :meth:`push` the step, apply the updates of :meth:`updates` in the order given (oldest pair first, as
    Sutton and Barto's algorithm does), then :meth:`end_episodes` with the step's ``done``.
    """

    def __init__(self, n: int, n_runs: int, device: torch.device | str = "cpu") -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        require_memory("the n-step buffer", n * n_runs * 24, device, {"n": n, "n_runs": n_runs})
        self.n = n
        self.states = torch.zeros((n, n_runs), dtype=torch.int64, device=device)
        self.actions = torch.zeros((n, n_runs), dtype=torch.int64, device=device)
        self.rewards = torch.zeros((n, n_runs), dtype=torch.float64, device=device)
        self.length = torch.zeros(n_runs, dtype=torch.int64, device=device)  # entries of the current episode
        self.ptr = n - 1  # slot of the newest entry

    def push(self, states: Tensor, actions: Tensor, rewards: Tensor) -> None:
        """Store every run's step (s_t, a_t, r_t)."""
        self.ptr = (self.ptr + 1) % self.n
        self.states[self.ptr] = states
        self.actions[self.ptr] = actions
        self.rewards[self.ptr] = rewards
        self.length = (self.length + 1).clamp_max(self.n)

    def updates(self, bootstrap: Tensor, terminated: Tensor, done: Tensor, gamma: float) -> list[NStepUpdate]:
        """The updates due after the newest step, oldest pair first.

        ``bootstrap`` ``[R]`` is B(s_{t+1}) at the newest step's true next state; ``terminated`` / ``done`` say
        whether the newest step ended its episode (by termination / at all). A run updates its pair of age n - 1
        when it has one, and every pair of its episode when the episode ended. The pair of age g gets
        ``sum_{k<=g} gamma^(g-k) r_(age k) + gamma^(g+1) B`` (B = 0 after a termination).
        """
        tail = torch.where(terminated, torch.zeros_like(bootstrap), bootstrap)
        partial = torch.zeros_like(bootstrap)
        out = []
        for age in range(self.n):  # newest first: the discounted reward sum grows backward in time
            slot = (self.ptr - age) % self.n
            partial = self.rewards[slot] + gamma * partial
            target = partial + gamma ** (age + 1) * tail
            active = (age < self.length) & (done | (age == self.n - 1))
            out.append(NStepUpdate(self.states[slot], self.actions[slot], target, active))
        return out[::-1]

    def end_episodes(self, done: Tensor) -> None:
        """Forget the entries of the runs whose episode just ended (they were all updated)."""
        self.length = torch.where(done, torch.zeros_like(self.length), self.length)

    def state_dict(self) -> dict[str, Any]:
        return {"states": self.states.clone(), "actions": self.actions.clone(), "rewards": self.rewards.clone(),
                "length": self.length.clone(), "ptr": self.ptr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["states"].shape) != tuple(self.states.shape):
            raise ValueError(f"checkpoint n-step buffer {tuple(state['states'].shape)} does not fit this agent's "
                             f"{tuple(self.states.shape)} (n, n_runs)")
        self.states.copy_(state["states"])
        self.actions.copy_(state["actions"])
        self.rewards.copy_(state["rewards"])
        self.length.copy_(state["length"])
        self.ptr = int(state["ptr"])
