"""Returns and advantages: reward-to-go, TD errors, GAE, lambda-returns, n-step targets.

Lecture-notes concept: *returns and advantage estimation* (Monte-Carlo return, TD(0) error,
generalised advantage estimation, the recursive lambda-return, n-step bootstrapped targets).

Conventions: rollout tensors are time-major, shape ``[T]`` or ``[T, N, ...]``. ``terminated[t]`` /
``truncated[t]`` are bool and mean the episode ended at step ``t`` (after ``rewards[t]``).
``next_values[t]`` is V(s_{t+1}) of the *true* next state of step ``t`` (for a truncated step the final
observation before autoreset). Termination does not bootstrap; truncation bootstraps from
``next_values[t]`` but never carries accumulation across the boundary; the last rollout step bootstraps
from ``next_values[T-1]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "reward_to_go",
    "td_errors",
    "gae",
    "lambda_returns",
    "discounted_returns",
    "n_step_targets",
    "normalize",
]


def _time_mask(mask: Tensor, like: Tensor) -> Tensor:
    """Reshape a ``[T]`` mask so it broadcasts against a ``[T, ...]`` tensor."""
    return mask.view(-1, *([1] * (like.dim() - 1)))


def reward_to_go(rewards: Tensor, gamma: float = 1.0) -> Tensor:
    """Discounted reward-to-go of ONE complete episode: G_t = r_t + gamma * G_{t+1}, G_T = 0.

    rewards: [T, ...] -> returns [T, ...].
    """
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def td_errors(
    rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor, gamma: float
) -> Tensor:
    """One-step TD errors delta_t = r_t + gamma * (1 - term_t) * V(s_{t+1}) - V(s_t).

    All inputs [T, ...] (terminated bool) -> [T, ...].
    """
    # where() rather than a 0/1 multiply so a NaN/inf placeholder at a terminal step is truly ignored.
    bootstrap = torch.where(terminated, torch.zeros_like(next_values), next_values)
    return rewards + gamma * bootstrap - values


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
    next_advantage: Tensor | None = None,
) -> Tensor:
    """Generalised advantage estimates A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}.

    done = terminated | truncated; A_T = 0 (the last step's bootstrap lives in delta_{T-1}), or ``next_advantage``
    (``[...]``) when the steps are the first part of a longer rollout whose later part gave A_T.
    All inputs [T, ...] -> advantages [T, ...].
    """
    deltas = td_errors(rewards, values, next_values, terminated, gamma)
    # A truncation still bootstraps inside delta_t, but the next step belongs to another episode.
    carry = gamma * lam * (~(terminated | truncated)).to(rewards.dtype)
    adv = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0]) if next_advantage is None else next_advantage
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        adv[t] = running
    return adv


def lambda_returns(
    rewards: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """Recursive lambda-return G_t = r_t + gamma * (1 - term_t) * [(1 - lam) * V_{t+1} + lam * G_{t+1}].

    At a truncation, or at t = T-1, G_{t+1} is replaced by next_values[t] (pure bootstrap).
    All inputs [T, ...] -> returns [T, ...]. Equals gae(...) + values when next_values[t] == values[t+1]
    within episodes.
    """
    out = torch.empty_like(rewards)
    running = next_values[-1]  # G_T := V(s_T): the rollout tail bootstraps.
    for t in range(rewards.shape[0] - 1, -1, -1):
        # Across a truncation the following G belongs to a new episode, so use the bootstrap instead.
        tail = torch.where(truncated[t], next_values[t], running)
        future = (1.0 - lam) * next_values[t] + lam * tail
        running = rewards[t] + gamma * torch.where(terminated[t], torch.zeros_like(future), future)
        out[t] = running
    return out


def discounted_returns(
    rewards: Tensor, next_values: Tensor, terminated: Tensor, truncated: Tensor, gamma: float
) -> Tensor:
    """Bootstrapped discounted return of a rollout (episode boundaries respected); lambda_returns with lam=1.

    All inputs [T, ...] -> returns [T, ...].
    """
    return lambda_returns(rewards, next_values, terminated, truncated, gamma, 1.0)


def n_step_targets(
    rewards: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    n: int,
) -> Tensor:
    """n-step bootstrapped targets.

    y_t = sum_{k<m} gamma^k r_{t+k} + gamma^m * (1 - term_{t+m-1}) * next_values[t+m-1], with
    m = min(n, steps until the episode ends (inclusive), steps until the rollout ends).
    All inputs [T, ...] -> targets [T, ...]. Vectorised over t; loops over k < n only.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    T = rewards.shape[0]
    dtype = rewards.dtype
    done = terminated | truncated
    bootstrap = torch.where(terminated, torch.zeros_like(next_values), next_values)
    steps = torch.arange(T, device=rewards.device)

    targets = torch.zeros_like(rewards)
    # alive[t]: step t+k is still part of the window started at t.
    alive = torch.ones_like(done)
    for k in range(min(n, T)):
        idx = (steps + k).clamp(max=T - 1)
        in_range = _time_mask(steps + k < T, rewards)
        active = alive & in_range
        active_f = active.to(dtype)
        targets = targets + active_f * (gamma**k) * rewards[idx]
        # The window closes at an episode end, at the rollout end, or after n steps.
        last = done[idx] | _time_mask(steps + k == T - 1, rewards)
        if k == n - 1:
            last = torch.ones_like(last)
        closes = (active & last).to(dtype)
        targets = targets + closes * (gamma ** (k + 1)) * bootstrap[idx]
        alive = active & ~last
    return targets


def normalize(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Standardise over all elements: (x - mean) / (population std + eps); zeros if x is constant.

    x: any shape -> same shape.
    """
    centered = x - x.mean()
    std = centered.square().mean().sqrt()
    # Compare extremes rather than std == 0: the mean of equal floats can be off by an ulp.
    constant = x.amax() == x.amin()
    return torch.where(constant, torch.zeros_like(x), centered / (std + eps))
