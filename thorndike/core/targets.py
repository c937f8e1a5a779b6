"""One-step TD targets for action values, and the incremental update that moves an estimate toward a target.

Notes: the generic tabular rule (003 L251-L259, L347-L349): sample, compute Q_hat, then
``Q <- Q + alpha (Q_hat - Q) = (1 - alpha) Q + alpha Q_hat`` (001 L47-L48 gives both forms); the targets of
Q-learning (000 L415, 001 L62, 003 L265), SARSA (003 L277), expected SARSA (003 L283) and double Q-learning
(003 L453). A terminal next state has value 0, so its target is the reward alone (000 L123, 001 L88); a truncated
one is bootstrapped as usual (the caller passes the true last state).

Shapes: ``reward`` and ``terminated`` are ``[...]``; ``q_next`` is ``[..., A]`` (the values of the next state).
"""

from __future__ import annotations

from torch import Tensor

__all__ = [
    "double_q_target",
    "expected_sarsa_target",
    "incremental_update",
    "q_learning_target",
    "sarsa_target",
    "td_target",
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


def double_q_target(reward: Tensor, gamma: float, q_next_selector: Tensor, q_next_evaluator: Tensor,
                    terminated: Tensor) -> Tensor:
    """Double Q-learning: r + gamma * Q^(i)(s', argmax_a' Q^(j)(s', a')): table j picks the action, table i
    evaluates it, which removes the max's upward bias (003 L423-L459)."""
    best = q_next_selector.argmax(-1, keepdim=True)
    return td_target(reward, gamma, q_next_evaluator.gather(-1, best).squeeze(-1), terminated)


def incremental_update(estimate: Tensor, target: Tensor, alpha: Tensor | float) -> Tensor:
    """estimate + alpha * (target - estimate), the same as (1 - alpha) * estimate + alpha * target."""
    return estimate + alpha * (target - estimate)
