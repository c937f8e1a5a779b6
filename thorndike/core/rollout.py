"""On-policy collection: ``n_steps`` x ``n_envs`` transitions of the current policy into a :class:`RolloutBuffer`.

Notes: 004 "Policy gradient" and "PPO" (collect a batch with pi_old, then update), 003 lecture 6 (actor-critic:
the critic's V(s') bootstraps the return where a trajectory is cut). Every on-policy algorithm (PPO, A2C, VPG,
TRPO, GAIL) collects the same way; what differs is what it does with the batch.

The buffer holds raw observations (normalisation is the model's business), ``final_obs`` (the true last observation
where an episode ended: same-step autoreset has already replaced it in ``obs``), and, when a critic is given, the
critic's ``values`` V(s_t) and ``next_values``: V(s_{t+1}) is the next row's value, except where the episode was cut
short by a time limit, where it is the value of the final observation. The critic runs once over the whole rollout,
not once per step.

Nothing waits for the host while stepping. NaN or inf in observations or rewards is checked once per rollout on the
stored tensors, and the error names the first bad step and env copy. A NaN observation usually makes the next
sampling fail first (``multinomial`` refuses NaN probabilities): that failure is answered with the same check on
what was stored so far, so the user sees which step and copy went bad, not a sampling error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from thorndike.core.buffers import RolloutBuffer
from thorndike.core.diagnostics import NonFiniteError, check_finite

__all__ = ["ROLLOUT_FIELDS", "Stepper", "collect_rollout", "rollout_fields"]

# The fields collect_rollout writes; an algorithm may add its own (e.g. advantages) to the same buffer.
ROLLOUT_FIELDS = ("obs", "actions", "log_probs", "rewards", "terminated", "truncated", "final_obs")


class Stepper(Protocol):
    """What collection needs from env interaction: the current observations and a step that records episodes."""

    obs: Tensor

    def step(self, actions: Tensor, step: int) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Any]]: ...


def rollout_fields(obs_spec: tuple[tuple[int, ...], torch.dtype], action_spec: tuple[tuple[int, ...], torch.dtype],
                   values: bool = True) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The buffer layout :func:`collect_rollout` fills, from the storage shape and dtype of one observation and one
    action (``values`` adds the critic's ``values`` and ``next_values``)."""
    f32, boolean = torch.float32, torch.bool
    fields = {"obs": obs_spec, "actions": action_spec, "log_probs": ((), f32), "rewards": ((), f32),
              "terminated": ((), boolean), "truncated": ((), boolean), "final_obs": (obs_spec[0], obs_spec[1])}
    if values:
        fields |= {"values": ((), f32), "next_values": ((), f32)}
    return fields


@torch.no_grad()
def collect_rollout(envs: Stepper, buffer: RolloutBuffer, sample: Callable[[Tensor], tuple[Tensor, Tensor]],
                    value: Callable[[Tensor], Tensor] | None, first_step: int, where: str = "",
                    observe: Callable[[Tensor], None] | None = None) -> None:
    """Fill ``buffer`` (``[T, N]``) with ``T`` steps of every env copy under ``sample`` (obs -> actions, log pi).

    ``first_step`` is the global step before collection; step ``t`` of the rollout ends at global step
    ``first_step + (t + 1) * N``, the step its finished episodes are recorded at. With ``value`` (obs -> V(obs)),
    ``values`` and ``next_values`` are filled as the module docstring says. ``where`` (e.g. "iteration 3") goes into
    a non-finite error's message. ``observe`` is called with the observations each step returns (e.g. to update
    running observation statistics as they arrive).
    """
    T, N = buffer.n_steps, buffer.n_envs
    t = 0
    try:
        for t in range(T):
            obs = envs.obs
            actions, log_probs = sample(obs)
            next_obs, rewards, terminated, truncated, info = envs.step(actions, first_step + (t + 1) * N)
            if observe is not None:
                observe(next_obs)
            buffer.add(t, obs=obs, actions=actions, log_probs=log_probs, rewards=rewards, terminated=terminated,
                       truncated=truncated, final_obs=info["final_obs"])
    except RuntimeError as err:
        if isinstance(err, NonFiniteError):
            raise
        # Most likely a NaN observation reached the sampler: name it if so, else re-raise what happened.
        check_stored(buffer, envs.obs, first_step, t, where)
        raise
    check_stored(buffer, envs.obs, first_step, T, where)
    if value is not None:
        values = value(buffer["obs"].flatten(0, 1)).view(T, N)
        following = torch.cat([values[1:], value(envs.obs).unsqueeze(0)])
        final_values = value(buffer["final_obs"].flatten(0, 1)).view(T, N)
        buffer["values"].copy_(values)
        buffer["next_values"].copy_(torch.where(buffer["truncated"], final_values, following))


def check_stored(buffer: RolloutBuffer, current_obs: Tensor, first_step: int, rows: int, where: str = "") -> None:
    """One finiteness check of the first ``rows`` steps: the observation each step returned (the next row's ``obs``,
    and ``current_obs`` after the last one) and its reward. With ``rows=0``, ``current_obs`` alone (the observation
    the previous step returned)."""
    N = buffer.n_envs
    if rows == 0:
        if current_obs.is_floating_point():
            check_finite("observation", current_obs.unsqueeze(0), first_step, where)
        return
    if current_obs.is_floating_point():
        returned = torch.cat([buffer["obs"][1:rows], current_obs.unsqueeze(0)])
        check_finite("observation", returned, first_step + N, where)
    check_finite("reward", buffer["rewards"][:rows], first_step + N, where)
