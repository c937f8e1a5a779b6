"""Hyper-parameter schedules (learning rates, exploration epsilon, entropy coefficients).

Lecture-notes concept: *annealing schedules* (constant, linear decay, exponential decay). Schedules are
stateless functions of the step count, so checkpointing only needs the counter.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Schedule", "Constant", "Linear", "Exponential", "make_schedule"]


class Schedule:
    """Base class: a schedule maps a step count ``t`` to a value."""

    def __call__(self, t: float) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Schedule):
    """value, for all t."""

    value: float

    def __call__(self, t: float) -> float:
        return self.value


@dataclass(frozen=True)
class Linear(Schedule):
    """Linear interpolation from ``start`` (t=0) to ``end`` (t=duration), held at ``end`` afterwards."""

    start: float
    end: float
    duration: float

    def __call__(self, t: float) -> float:
        if self.duration <= 0:
            return self.end
        frac = min(max(t / self.duration, 0.0), 1.0)
        return self.start + frac * (self.end - self.start)


@dataclass(frozen=True)
class Exponential(Schedule):
    """max(end, start * rate**t)."""

    start: float
    rate: float
    end: float = 0.0

    def __call__(self, t: float) -> float:
        return max(self.end, self.start * self.rate**t)


def make_schedule(spec: float | Schedule) -> Schedule:
    """A number becomes ``Constant(spec)``; a schedule is returned unchanged."""
    if isinstance(spec, Schedule):
        return spec
    # bool is an int subclass; a flag passed by mistake should not silently become 0/1.
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Constant(float(spec))
    raise TypeError(f"expected a number or a Schedule, got {type(spec).__name__}")
