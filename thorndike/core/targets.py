"""One-step TD targets for action values, and the incremental update that moves an estimate toward a target.

Notes: the generic tabular rule (003 L251-L259, L347-L349): sample, compute Q_hat, then
``Q <- Q + alpha (Q_hat - Q) = (1 - alpha) Q + alpha Q_hat`` (001 L47-L48 gives both forms); the targets of
Q-learning (000 L415, 001 L62, 003 L265), SARSA (003 L277), expected SARSA (003 L283) and double Q-learning
(003 L453). A terminal next state has value 0, so its target is the reward alone (000 L123, 001 L88); a truncated
one is bootstrapped as usual (the caller passes the true last state).

Shapes: ``reward`` and ``terminated`` are ``[...]``; ``q_next`` is ``[..., A]`` (the values of the next state).

The DQN family (003 L377-L403, double DQN L461-L468; 001 L87-L90) takes its targets from replayed, possibly n-step,
transitions, so its forms take a ``discount`` tensor ``[...]`` instead of gamma and ``terminated``: gamma^n * (1 -
terminated), 0 after a termination and gamma^n after a truncation (bootstrapped from the true last state) or none.
"""

from __future__ import annotations

import functools
import random

import torch
from torch import Tensor

__all__ = [
    "discounted_target",
    "double_dqn_target",
    "double_q_target",
    "dqn_target",
    "expected_sarsa_target",
    "expected_sarsa_target_value",
    "discrete_soft_value",
    "greedy_value",
    "incremental_update",
    "q_learning_target",
    "q_learning_target_value",
    "row_sum",
    "row_sum_is_torch_sum",
    "sarsa_target",
    "smoothed_target_action",
    "soft_q_target",
    "td3_target",
    "sarsa_target_value",
    "td_target",
    "td_target_value",
]


def td_target(reward: Tensor, gamma: float, next_value: Tensor, terminated: Tensor) -> Tensor:
    """r + gamma * V(s'), with V(s') = 0 when s' is terminal."""
    # masked_fill rather than a 0/1 multiply, so a NaN/inf placeholder at a terminal state is truly ignored.
    return reward + gamma * next_value.masked_fill(terminated, 0.0)


def q_learning_target(reward: Tensor, gamma: float, q_next: Tensor, terminated: Tensor) -> Tensor:
    """Q-learning (sarsamax): r + gamma * max_a' Q(s', a')."""
    return td_target(reward, gamma, q_next.amax(-1), terminated)


def sarsa_target(reward: Tensor, gamma: float, q_next: Tensor, next_action: Tensor, terminated: Tensor) -> Tensor:
    """SARSA: r + gamma * Q(s', a'), a' being the action the behaviour policy takes next (on-policy)."""
    return td_target(reward, gamma, q_next.gather(-1, next_action.unsqueeze(-1)).squeeze(-1), terminated)


def expected_sarsa_target(reward: Tensor, gamma: float, q_next: Tensor, probs_next: Tensor,
                          terminated: Tensor) -> Tensor:
    """Expected SARSA: r + gamma * sum_a' pi(a'|s') Q(s', a'); with a greedy pi it is Q-learning's target."""
    return td_target(reward, gamma, (probs_next * q_next).sum(-1), terminated)


def greedy_value(q_next_selector: Tensor, q_next_evaluator: Tensor) -> Tensor:
    """Q_evaluator(s', argmax_a' Q_selector(s', a')): ``[..., A]``, ``[..., A]`` -> ``[...]``; ties go to the lowest
    action index. With the same tensor twice it is max_a' Q(s', a')."""
    best = q_next_selector.argmax(-1, keepdim=True)
    return q_next_evaluator.gather(-1, best).squeeze(-1)


def double_q_target(reward: Tensor, gamma: float, q_next_selector: Tensor, q_next_evaluator: Tensor,
                    terminated: Tensor) -> Tensor:
    """Double Q-learning: r + gamma * Q^(i)(s', argmax_a' Q^(j)(s', a')): table j picks the action, table i
    evaluates it, which removes the max's upward bias (003 L423-L459)."""
    return td_target(reward, gamma, greedy_value(q_next_selector, q_next_evaluator), terminated)


def discounted_target(reward: Tensor, discount: Tensor, next_value: Tensor) -> Tensor:
    """r + discount * V(s'), where ``discount`` = gamma^n * (1 - terminated) is 0 at a terminal transition."""
    # where() rather than the bare product, so a NaN/inf placeholder after a termination is truly ignored.
    return reward + torch.where(discount == 0, torch.zeros_like(next_value), discount * next_value)


def dqn_target(reward: Tensor, discount: Tensor, q_next_target: Tensor) -> Tensor:
    """DQN: r + discount * max_a' Q_target(s', a'), the frozen target network's values at s' ``[..., A]`` (001 L87-L88:
    the reward alone when s' is terminal)."""
    return discounted_target(reward, discount, q_next_target.amax(-1))


def double_dqn_target(reward: Tensor, discount: Tensor, q_next_online: Tensor, q_next_target: Tensor) -> Tensor:
    """Double DQN: r + discount * Q_target(s', argmax_a' Q_online(s', a')) (003 L467): the online network picks the
    action, the target network evaluates it; both ``[..., A]`` at s'."""
    return discounted_target(reward, discount, greedy_value(q_next_online, q_next_target))


# ---- the off-policy actor-critics: DDPG, TD3, SAC (003 lecture 9; 004 DDPG) ---------------------------------------
# Twin critics are one tensor ``[2, ...]`` (both computed in one batched forward), so "the minimum of the twins" is
# ``amin(0)``; a single critic is ``[1, ...]`` and its minimum is itself (DDPG's target).


def smoothed_target_action(target_action: Tensor, noise_std: float, noise_clip: float,
                           generator: torch.Generator | None = None) -> Tensor:
    """TD3's target policy smoothing: a' = clip(mu'(s') + clip(eps, -c, c), -1, 1), eps ~ N(0, sigma^2), in the
    algorithm's [-1, 1] action units; Q is fitted to a small neighbourhood of the target action, so the actor cannot
    exploit a narrow peak of the critic."""
    eps = torch.randn(target_action.shape, generator=generator, dtype=target_action.dtype,
                      device=target_action.device) * noise_std
    return (target_action + eps.clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


def td3_target(reward: Tensor, discount: Tensor, q_next_target: Tensor) -> Tensor:
    """TD3 (clipped double Q): r + discount * min_i Q'_i(s', a'), ``q_next_target`` ``[K, ...]`` the K target
    critics at the (smoothed) target action; K = 1 is DDPG's r + gamma Q'(s', mu'(s')) (004 L2318)."""
    return discounted_target(reward, discount, q_next_target.amin(0))


def soft_q_target(reward: Tensor, discount: Tensor, q_next_target: Tensor, log_prob_next: Tensor,
                  alpha: Tensor | float) -> Tensor:
    """SAC: r + discount * (min_i Q'_i(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s') (003 L1411-L1413): the soft
    value of s' estimated with one sampled action; ``q_next_target`` ``[K, ...]``, ``log_prob_next`` ``[...]``."""
    return discounted_target(reward, discount, q_next_target.amin(0) - alpha * log_prob_next)


def discrete_soft_value(probs: Tensor, log_probs: Tensor, q: Tensor, alpha: Tensor | float) -> Tensor:
    """V(s) = sum_a pi(a|s) (min_i Q_i(s, a) - alpha log pi(a|s)) for Discrete actions, the exact expectation over
    actions (Christodoulou 2019): ``probs`` and ``log_probs`` ``[..., A]``, ``q`` ``[K, ..., A]`` -> ``[...]``."""
    return (probs * (q.amin(0) - alpha * log_probs)).sum(-1)


def incremental_update(estimate: Tensor, target: Tensor, alpha: Tensor | float) -> Tensor:
    """estimate + alpha * (target - estimate), the same as (1 - alpha) * estimate + alpha * target."""
    return estimate + alpha * (target - estimate)


# ---- plain Python numbers: the few-runs path of the tabular learners (thorndike.tabular.scalar) ----------------------
# The same float64 operations as the tensor targets above, in the same order, so that they give the same bits.


def td_target_value(reward: float, gamma: float, next_value: float, terminated: bool) -> float:
    """:func:`td_target` of one transition: r + gamma * V(s'), V(s') = 0 when s' is terminal."""
    return reward + gamma * (0.0 if terminated else next_value)


def q_learning_target_value(reward: float, gamma: float, q_next: list[float], terminated: bool) -> float:
    """:func:`q_learning_target` of one transition: r + gamma * max_a' Q(s', a')."""
    return td_target_value(reward, gamma, max(q_next), terminated)


def sarsa_target_value(reward: float, gamma: float, q_next: list[float], next_action: int, terminated: bool) -> float:
    """:func:`sarsa_target` of one transition: r + gamma * Q(s', a')."""
    return td_target_value(reward, gamma, q_next[next_action], terminated)


def expected_sarsa_target_value(reward: float, gamma: float, q_next: list[float], probs_next: list[float],
                                terminated: bool) -> float:
    """:func:`expected_sarsa_target` of one transition: r + gamma * sum_a' pi(a'|s') Q(s', a'), summed in torch's
    order (:func:`row_sum`)."""
    return td_target_value(reward, gamma, row_sum([p * v for p, v in zip(probs_next, q_next, strict=True)]),
                           terminated)


def row_sum(values: list[float]) -> float:
    """``tensor.sum(-1)`` of one short row of float64, added in the order torch's CPU kernel adds them: four
    running sums over the columns in groups of four (the first four columns start them), the columns left over
    summed apart and added to the first, then ((s0 + s1) + s2) + s3; fewer than four columns are added in order.
    Float addition is not associative, so only this order gives torch's bits (:func:`row_sum_is_torch_sum`)."""
    n = len(values)
    if n < 4:
        total = values[0]
        for v in values[1:]:
            total += v
        return total
    full = n - n % 4
    s0, s1, s2, s3 = values[0], values[1], values[2], values[3]
    for i in range(4, full, 4):
        s0 += values[i]
        s1 += values[i + 1]
        s2 += values[i + 2]
        s3 += values[i + 3]
    if full < n:
        rest = values[full]
        for v in values[full + 1:]:
            rest += v
        s0 += rest
    return ((s0 + s1) + s2) + s3


@functools.cache
def row_sum_is_torch_sum(n: int) -> bool:
    """Whether :func:`row_sum` gives this torch's ``sum(-1)`` of rows of ``n`` float64, bit for bit, on rows whose
    sum depends on the order (mixed magnitudes and signs). The order is torch's implementation, not its contract,
    so the few-runs path checks it once per row length and keeps the tensor ops where it does not hold."""
    rng = random.Random(n)
    pool = [1e16, -1e16, 2.0**60, -(2.0**60), 1.0, 3.0, -7.5, 0.1, 1e-3]
    rows = [[rng.choice(pool) * rng.random() if rng.random() < 0.5 else rng.choice(pool) for _ in range(n)]
            for _ in range(200)]
    with torch.no_grad():
        sums = torch.tensor(rows, dtype=torch.float64).sum(-1).tolist()
    return all(row_sum(row) == total for row, total in zip(rows, sums, strict=True))
