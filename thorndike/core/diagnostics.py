"""Numbers that say how training is going (not part of any update)."""

from __future__ import annotations

import torch
from torch import Tensor


def explained_variance(predictions: Tensor, targets: Tensor) -> Tensor:
    """1 - Var[targets - predictions] / Var[targets]: 1 is perfect, 0 is no better than the mean, NaN if
    the targets are constant."""
    var_targets = targets.var(unbiased=False)
    if var_targets == 0:
        return torch.tensor(float("nan"))
    return 1 - (targets - predictions).var(unbiased=False) / var_targets


class NonFiniteError(FloatingPointError):
    """An observation, reward or loss became NaN or infinite; training stops and keeps the last checkpoint."""


def check_finite(what: str, tensor: Tensor, first_step: int | None = None, where: str = "") -> None:
    """Stop with a clear error when ``tensor`` holds NaN or inf.

    One reduction (one host sync), so call it once per rollout on the ``[T, N, ...]`` storage, where ``first_step``
    is the global step of row 0 (row t is step ``first_step + t * N``; the error names the first bad step and env
    copy), or once per update on a loss. ``where`` adds context such as the iteration.
    """
    if bool(torch.isfinite(tensor).all()):
        return
    location = where
    if first_step is not None:
        bad = ~torch.isfinite(tensor.reshape(tensor.shape[0], tensor.shape[1], -1))
        t, copy = bad.any(-1).nonzero()[0].tolist()
        location = f"step {first_step + t * tensor.shape[1]}" + (f" ({where})" if where else "") + f", env copy {copy}"
    raise NonFiniteError(
        f"{what} is not finite (NaN or inf){' at ' + location if location else ''}. Check the environment's "
        "outputs, lower the learning rate, or enable normalize_obs / normalize_reward."
    )


class EnvOutputError(ValueError):
    """An env copy returned something no learner can use: a state outside its observation space, an observation of
    the wrong shape or kind, or an exception from its step. The message names the copy and the step; training
    stops and keeps the last checkpoint."""

    def at(self, step: int, where: str = "") -> EnvOutputError:
        """The same error, saying at which step of training it happened (the env copy only knows its own)."""
        return EnvOutputError(f"at step {step}{f' ({where})' if where else ''}: {self}")


_ONLY = " only"  # where StepChecks keeps a row's mask of copies to check (a key no keyword argument can be)


class StepChecks:
    """What the envs returned over many single steps, checked once per chunk of steps (one host sync per chunk).

    Learners that step one transition at a time (the tabular family, CEM, the population searches) hand every
    step's observations, final observations and rewards to :meth:`add` (which only keeps references: no device
    work, no host sync) and call :meth:`check` where a chunk or an iteration ends. Floats must be finite; integer
    states (Discrete observations) must lie in ``[0, n_states)``. The error names the first bad step and env copy.
    :meth:`safe` maps states into range (and NaN to 0) so that indexing a table with them never fails or wraps
    around before the check reports them.
    """

    CHUNK = 256

    def __init__(self, n_states: int | None = None) -> None:
        self.n_states = n_states
        self.rows: list[tuple[int, dict[str, Tensor]]] = []

    def safe(self, states: Tensor) -> Tensor:
        if not states.is_floating_point():
            return states.clamp(0, self.n_states - 1) if self.n_states is not None else states
        return torch.nan_to_num(states, nan=0.0, posinf=0.0, neginf=0.0)

    def add(self, step: int, *, only: Tensor | None = None, **values: Tensor) -> bool:
        """Keep this step's tensors (``[N, ...]`` each, e.g. ``observation=..., reward=...``); True when a chunk is
        full and :meth:`check` is due. ``only`` (bool ``[N]``, optional) names the copies whose values count; the
        others are not checked (a population evaluation's copies past their episode). All the tensors are kept by
        reference: the caller must not change them in place before the check."""
        self.rows.append((step, values if only is None else {**values, _ONLY: only}))
        return len(self.rows) >= self.CHUNK

    def check(self, where: str = "") -> None:
        """Raise for the first bad step and copy of what was added since the last check, then forget it."""
        rows, self.rows = self.rows, []
        if not rows:
            return
        steps = [step for step, _ in rows]
        first_bad: tuple[int, int, str, str] | None = None  # (row, copy, what, how)
        only = None  # [T, N]: the copies to check at each step, where some row names them
        if any(_ONLY in values for _, values in rows):
            masks = [values.get(_ONLY) for _, values in rows]
            like = next(mask for mask in masks if mask is not None)
            only = torch.stack([torch.ones_like(like) if mask is None else mask for mask in masks])
        for what in rows[0][1]:
            if what == _ONLY:
                continue
            stacked = torch.stack([values[what] for _, values in rows])  # [T, N, ...]
            flat = stacked.reshape(stacked.shape[0], stacked.shape[1], -1)
            if stacked.is_floating_point():
                bad, how = ~torch.isfinite(flat).all(-1), "is not finite (NaN or inf)"
            elif self.n_states is not None and what != "reward":
                bad, how = ((flat < 0) | (flat >= self.n_states)).any(-1), f"is outside [0, {self.n_states})"
            else:
                continue
            if only is not None:
                bad &= only
            if not bool(bad.any()):  # the one host sync per field and chunk
                continue
            t, copy = bad.nonzero()[0].tolist()
            if first_bad is None or (t, copy) < first_bad[:2]:
                first_bad = (t, copy, what, how)
        if first_bad is None:
            return
        t, copy, key, how = first_bad
        value = rows[t][1][key][copy]
        what = key.replace("_", " ")
        shown = value.item() if value.numel() == 1 else value.tolist()
        location = f"step {steps[t]}" + (f" ({where})" if where else "") + f", env copy {copy}"
        if how.startswith("is outside"):
            raise EnvOutputError(f"{what} {shown!r} at {location} {how}: the env returned a state its observation "
                                 "space does not have; check the environment")
        raise NonFiniteError(f"{what} {how} at {location} (value {shown}). Check the environment's outputs.")
