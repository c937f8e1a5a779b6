"""The schedule of an off-policy loop, and target-network updates.

Notes: DQN's loop (001 L83-L90): act epsilon-greedily, store the transition, learn from a sampled minibatch, and
reset the target network to the online one every C steps; Polyak averaging theta' <- tau theta + (1 - tau) theta'
for DDPG/TD3/SAC (004). The off-policy algorithms share when things happen, not how, so this is a small component
the algorithm composes, not a base class.

Counting. Everything is counted in env steps (transitions: one vectorised step of ``n_envs`` copies is ``n_envs``
env steps), so that a config means the same replay ratio (``gradient_steps / train_freq`` gradient steps per
transition) for any ``n_envs``. :class:`OffPolicySchedule` keeps no state: what is due after a vectorised step is a
function of the env steps before it (the run's ``global_step``, which checkpoints already hold), so a resumed run
updates at exactly the steps an uninterrupted one does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thorndike.core.schedules import Schedule, make_schedule

__all__ = ["Due", "OffPolicySchedule", "hard_update", "soft_update"]


@dataclass(frozen=True)
class Due:
    """What a vectorised step makes due: this many gradient steps, then this many target updates."""

    gradient_steps: int
    target_updates: int


def _multiples(interval: int, after: int, upto: int) -> int:
    """How many multiples of ``interval`` lie in (after, upto]."""
    return upto // interval - after // interval if upto > after else 0


class OffPolicySchedule:
    """When to act at random, how much to explore, when to update, when to update the target network.

    - the first ``learning_starts`` env steps act uniformly at random (:meth:`random_actions`) and learn nothing;
    - after them, one update of ``gradient_steps`` gradient steps per ``train_freq`` env steps;
    - a target-network update every ``target_update_interval`` env steps (1 with a soft update: one per step);
    - epsilon (:meth:`epsilon`) is a schedule of the env steps so far (a number is a constant).
    """

    def __init__(
        self,
        n_envs: int,
        learning_starts: int = 0,
        train_freq: int = 1,
        gradient_steps: int = 1,
        target_update_interval: int = 1,
        epsilon: float | Schedule = 0.0,
    ) -> None:
        for name, value, least in (("n_envs", n_envs, 1), ("learning_starts", learning_starts, 0),
                                   ("train_freq", train_freq, 1), ("gradient_steps", gradient_steps, 0),
                                   ("target_update_interval", target_update_interval, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        self.n_envs, self.learning_starts = n_envs, learning_starts
        self.train_freq, self.gradient_steps = train_freq, gradient_steps
        self.target_update_interval = target_update_interval
        self.epsilon_schedule = make_schedule(epsilon)

    def random_actions(self, env_steps: int) -> bool:
        """Whether the vectorised step taken after ``env_steps`` env steps is a warm-up step (uniform actions)."""
        return env_steps < self.learning_starts

    def epsilon(self, env_steps: int) -> float:
        """The exploration rate for the step taken after ``env_steps`` env steps."""
        return self.epsilon_schedule(env_steps)

    def due(self, env_steps: int) -> Due:
        """What falls due with the vectorised step taken after ``env_steps`` env steps (it brings ``n_envs`` more).

        Updates count from ``learning_starts``: the train_freq-th, 2*train_freq-th, ... env step past it.
        """
        before = max(env_steps - self.learning_starts, 0)
        after = env_steps + self.n_envs - self.learning_starts
        updates = _multiples(self.train_freq, before, after)
        return Due(updates * self.gradient_steps, _multiples(self.target_update_interval, before, after))


def _pairs(target: nn.Module, source: nn.Module, what: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    targets = list(getattr(target, what)())
    sources = list(getattr(source, what)())
    if len(targets) != len(sources) or any(t.shape != s.shape for t, s in zip(targets, sources, strict=True)):
        raise ValueError(f"target and source {what} differ: {[tuple(t.shape) for t in targets]} vs "
                         f"{[tuple(s.shape) for s in sources]}")
    return targets, sources


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    """theta' <- theta: copy every parameter and buffer of ``source`` into ``target``, in place."""
    for what in ("parameters", "buffers"):
        targets, sources = _pairs(target, source, what)
        if targets:
            torch._foreach_copy_(targets, sources)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging theta' <- theta' + tau (theta - theta') of the parameters, in place (one fused op).

    Buffers (normaliser statistics, counts) are copied, not averaged: they are statistics of the data, not
    weights, and integer counts cannot be interpolated.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau!r}")
    targets, sources = _pairs(target, source, "parameters")
    if targets:
        torch._foreach_lerp_(targets, sources, tau)
    buffers, source_buffers = _pairs(target, source, "buffers")
    if buffers:
        torch._foreach_copy_(buffers, source_buffers)
