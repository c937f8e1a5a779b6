"""Off-policy evaluation: IPS and DR by hand, IPS unbiased and covered by its interval on a simulation with a known
truth, DR's variance below IPS's with a good reward model, clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from thorndike.bandits import doubly_robust_estimate, ips_estimate, mean_estimate
from thorndike.bandits.logging_policy import feature_q_for_world, feature_q_policy, log_interactions
from thorndike.core.exploration import epsilon_greedy_probs
from thorndike.envs.recommendation_bandit import recommendation_world


def test_estimates_by_hand():
    est = mean_estimate(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    se = math.sqrt(5 / 3) / 2
    assert (est.value, est.stderr, est.n) == pytest.approx((2.5, se, 4))
    assert (est.low, est.high) == pytest.approx((2.5 - 1.96 * se, 2.5 + 1.96 * se))
    actions, rewards, propensities = torch.tensor([0, 1]), torch.tensor([1.0, 0.5]), torch.tensor([0.5, 0.25])
    target = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    # weights pi / mu = (2, 2): IPS terms (2, 1)
    assert ips_estimate(actions, rewards, propensities, target).value == pytest.approx(1.5)
    model = torch.tensor([[0.5, 0.5], [0.2, 0.4]])
    # direct (0.5, 0.3) + weights (2, 2) * residuals (0.5, 0.1) = (1.5, 0.5)
    assert doubly_robust_estimate(actions, rewards, propensities, target, model).value == pytest.approx(1.0)
    # a reward model of zeros is IPS itself
    zero = doubly_robust_estimate(actions, rewards, propensities, target, torch.zeros(2, 2))
    assert zero == ips_estimate(actions, rewards, propensities, target)


def logging_and_target(world):
    """FeatureQ fitted on 3,000 uniformly logged clicks, softmax over its scores (the logging policy), and a target
    policy that differs from it: epsilon-greedy (0.1) over the item's hidden quality alone."""
    g = torch.Generator().manual_seed(11)
    uniform = torch.full((world.n_contexts, world.n_items), 1.0 / world.n_items, dtype=torch.float64)
    first = log_interactions(world, uniform, 3000, g)
    model = feature_q_for_world(world, alpha_schedule="1/n")
    model.update(first.contexts, first.actions, first.rewards)
    logging = feature_q_policy(model, temperature=0.1)
    target = epsilon_greedy_probs(world.quality.expand(world.n_contexts, -1), 0.1)
    return logging, target


def test_feature_q_logging_policy_is_a_positive_distribution_better_than_uniform():
    world = recommendation_world()
    logging, _ = logging_and_target(world)
    assert (logging > 0).all() and torch.allclose(logging.sum(1), torch.ones(30, dtype=torch.float64))
    assert world.policy_value(logging) > world.policy_value(torch.full_like(logging, 1 / 20)) + 0.1


def test_ips_is_unbiased_and_dr_has_smaller_variance():
    world = recommendation_world()
    logging, target = logging_and_target(world)
    truth = world.policy_value(target)
    logged = log_interactions(world, logging, (300, 400), torch.Generator().manual_seed(5))
    ips, dr = [], []
    for r in range(300):
        args = (logged.actions[r], logged.rewards[r], logged.propensities[r], target[logged.contexts[r]])
        ips.append(ips_estimate(*args))
        dr.append(doubly_robust_estimate(*args, world.expected[logged.contexts[r]]))
    for estimates in (ips, dr):
        values = torch.tensor([e.value for e in estimates])
        # the mean over 300 repetitions is within 3 standard errors of the truth
        assert abs(values.mean().item() - truth) < 3 * values.std().item() / math.sqrt(300), (values.mean(), truth)
        covered = sum(e.covers(truth) for e in estimates) / 300
        assert 0.88 <= covered <= 0.99, covered  # nominal 95%
    ips_var = torch.tensor([e.value for e in ips]).var().item()
    dr_var = torch.tensor([e.value for e in dr]).var().item()
    assert dr_var < 0.5 * ips_var, (dr_var, ips_var)


def test_clear_errors():
    actions, rewards, target = torch.tensor([0, 1, 1]), torch.ones(3), torch.full((3, 2), 0.5)
    with pytest.raises(ValueError, match=r"1 of 3 logging propensities are not > 0 \(first at row 1\)"):
        ips_estimate(actions, rewards, torch.tensor([0.5, 0.0, 0.5]), target)
    with pytest.raises(ValueError, match="propensities must be"):
        ips_estimate(actions, rewards, torch.tensor([0.5, 0.5]), target)
    with pytest.raises(ValueError, match="target_probs must be"):
        ips_estimate(actions, rewards, torch.full((3,), 0.5), torch.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="rewards must be"):
        ips_estimate(actions, torch.ones(4), torch.full((3,), 0.5), target)
    with pytest.raises(ValueError, match="sum to 1"):
        ips_estimate(actions, rewards, torch.full((3,), 0.5), torch.full((3, 2), 0.3))
    with pytest.raises(ValueError, match="reward_model must be"):
        doubly_robust_estimate(actions, rewards, torch.full((3,), 0.5), target, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="integer indices"):
        ips_estimate(torch.tensor([0, 2, 1]), rewards, torch.full((3,), 0.5), target)
