"""Off-policy evaluation: the value of a new (target) policy pi from data logged by another policy mu (000 L405: a
viewing history is off-policy data).

Logged rows are (x_i, a_i, r_i, mu(a_i | x_i)), with a_i ~ mu(. | x_i). The target policy's probabilities at the
logged contexts are ``target_probs`` ``[N, A]``. Both estimators below average one term per row, so their standard
error is the sample standard deviation of the terms over sqrt(N) and the confidence interval is value +- z se:

- inverse propensity scoring (IPS), unbiased whenever mu(a | x) > 0 wherever pi(a | x) > 0:

      V_IPS = 1/N sum_i  pi(a_i | x_i) / mu(a_i | x_i) * r_i

- doubly robust (DR), with a reward model q(x, a) (``reward_model`` ``[N, A]``, fitted on other data):

      V_DR = 1/N sum_i [ sum_a pi(a | x_i) q(x_i, a) + pi(a_i | x_i) / mu(a_i | x_i) (r_i - q(x_i, a_i)) ]

  unbiased if the propensities are right (whatever q), and its variance is smaller than IPS's when q is close to
  E[r | x, a]: the weighted term only corrects the model's residual (Dudik et al. 2011).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from thorndike.core.statistics import mean_and_stderr

__all__ = ["OffPolicyEstimate", "doubly_robust_estimate", "ips_estimate", "mean_estimate"]


class OffPolicyEstimate(NamedTuple):
    """An estimated policy value with its standard error and a normal confidence interval [low, high]."""

    value: float
    stderr: float
    low: float
    high: float
    n: int

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies inside the confidence interval."""
        return self.low <= value <= self.high


def mean_estimate(terms: Tensor, z: float = 1.96) -> OffPolicyEstimate:
    """The mean of per-row terms ``[N]`` (N >= 2), its standard error std / sqrt(N) and the interval +- z se. Also the
    on-policy estimate: the mean reward of the target policy's own rows."""
    if terms.dim() != 1 or terms.shape[0] < 2:
        raise ValueError(f"an estimate needs a 1-d tensor of at least 2 terms, got shape {tuple(terms.shape)}")
    value, stderr = mean_and_stderr(terms.double())
    return OffPolicyEstimate(value, stderr, value - z * stderr, value + z * stderr, terms.shape[0])


def _importance_weights(actions: Tensor, propensities: Tensor, target_probs: Tensor) -> Tensor:
    """pi(a_i | x_i) / mu(a_i | x_i), after checking the shapes and that every propensity is positive."""
    if actions.dim() != 1:
        raise ValueError(f"actions must be [N], got shape {tuple(actions.shape)}")
    n = actions.shape[0]
    if propensities.shape != (n,):
        raise ValueError(f"propensities must be [N] = [{n}] like actions, got shape {tuple(propensities.shape)}")
    if target_probs.dim() != 2 or target_probs.shape[0] != n:
        raise ValueError(f"target_probs must be [N, A] = [{n}, A], got shape {tuple(target_probs.shape)}")
    if actions.dtype.is_floating_point or bool(((actions < 0) | (actions >= target_probs.shape[1])).any()):
        raise ValueError(f"actions must be integer indices in 0..{target_probs.shape[1] - 1}")
    bad = ~(propensities > 0)  # also catches NaN
    if bool(bad.any()):
        raise ValueError(f"{int(bad.sum())} of {n} logging propensities are not > 0 (first at row "
                         f"{int(bad.nonzero()[0, 0])}): importance weights pi / mu are undefined there; the logging "
                         "policy must give every logged action a positive probability")
    if bool((target_probs < 0).any() | ((target_probs.sum(1) - 1).abs() > 1e-6).any()):
        raise ValueError("target_probs must be probabilities: non-negative rows that sum to 1")
    return target_probs.double().gather(1, actions[:, None]).squeeze(1) / propensities.double()


def ips_estimate(actions: Tensor, rewards: Tensor, propensities: Tensor, target_probs: Tensor,
                 z: float = 1.96) -> OffPolicyEstimate:
    """The IPS estimate of the target policy's value from logged ``actions``, ``rewards`` and logging
    ``propensities`` (each ``[N]``) and the target's ``target_probs`` ``[N, A]`` at the logged contexts."""
    weights = _importance_weights(actions, propensities, target_probs)
    if rewards.shape != actions.shape:
        raise ValueError(f"rewards must be [N] like actions, got shape {tuple(rewards.shape)}")
    return mean_estimate(weights * rewards.double(), z)


def doubly_robust_estimate(actions: Tensor, rewards: Tensor, propensities: Tensor, target_probs: Tensor,
                           reward_model: Tensor, z: float = 1.96) -> OffPolicyEstimate:
    """The DR estimate: as :func:`ips_estimate`, plus the reward model's predictions ``reward_model`` ``[N, A]``
    of every action at the logged contexts."""
    weights = _importance_weights(actions, propensities, target_probs)
    if rewards.shape != actions.shape:
        raise ValueError(f"rewards must be [N] like actions, got shape {tuple(rewards.shape)}")
    if reward_model.shape != target_probs.shape:
        raise ValueError(f"reward_model must be [N, A] like target_probs {tuple(target_probs.shape)}, got shape "
                         f"{tuple(reward_model.shape)}")
    q = reward_model.double()
    direct = (target_probs.double() * q).sum(1)
    residual = rewards.double() - q.gather(1, actions[:, None]).squeeze(1)
    return mean_estimate(direct + weights * residual, z)
