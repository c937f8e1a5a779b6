"""Bandit agents: hand-checked bookkeeping (sample means, UCB counts and scores, LinUCB's A, b, theta and score) and
a short run in which LinUCB's regret is well below epsilon-greedy's."""

from __future__ import annotations

import math

import pytest
import torch

from thorndike.bandits import (
    UCB,
    EpsilonGreedy,
    EpsilonGreedyConfig,
    LinUCB,
    LinUCBConfig,
    UCBConfig,
    play,
    ridge_regression,
    sherman_morrison_update,
)
from thorndike.config import ConfigError
from thorndike.envs.recommendation_bandit import recommendation_world


def test_epsilon_greedy_keeps_sample_means_per_context():
    world = recommendation_world(n_items=4)
    agent = EpsilonGreedy(world, EpsilonGreedyConfig(epsilon=0.0), n_runs=2)
    for context, action, reward in [(3, 2, 1.0), (3, 2, 0.0), (3, 2, 1.0), (5, 1, 1.0)]:
        agent.update(torch.tensor([context, 0]), torch.tensor([action, 0]), torch.tensor([reward, 0.0]))
    assert agent.q[0, 3, 2].item() == pytest.approx(2 / 3) and agent.counts[0, 3, 2] == 3
    assert agent.q[0, 5, 1].item() == 1.0 and agent.counts[0].sum() == 4 and agent.counts[1, 0, 0] == 4
    # epsilon = 0: the best-looking item of the context
    assert agent.act(torch.tensor([3, 0])).tolist()[0] == 2
    blind = EpsilonGreedy(world, EpsilonGreedyConfig(per_context=False))
    blind.update(torch.tensor([3]), torch.tensor([2]), torch.tensor([1.0]))
    blind.update(torch.tensor([7]), torch.tensor([2]), torch.tensor([0.0]))
    assert blind.q.shape == (1, 1, 4) and blind.q[0, 0, 2].item() == 0.5
    with pytest.raises(ConfigError, match="epsilon"):
        EpsilonGreedyConfig(epsilon=1.5)


def test_ucb_tries_every_item_once_then_scores_by_hand():
    world = recommendation_world(n_items=5)
    agent = UCB(world, UCBConfig(c=2.0))
    g = torch.Generator().manual_seed(0)
    context = torch.tensor([4])
    tried = []
    for _ in range(5):  # untried items score +inf, so the first five picks are the five items
        a = agent.act(context, g)
        tried.append(int(a))
        agent.update(context, a, torch.tensor([0.5 if int(a) == 3 else 0.0]))
    assert sorted(tried) == [0, 1, 2, 3, 4] and agent.counts[0, 4].tolist() == [1] * 5
    agent.update(context, torch.tensor([3]), torch.tensor([1.0]))  # item 3: rewards 0.5, 1.0
    scores = agent.scores(context)[0]
    assert scores[3].item() == pytest.approx(0.75 + 2.0 * math.sqrt(math.log(6) / 2))
    assert scores[0].item() == pytest.approx(0.0 + 2.0 * math.sqrt(math.log(6) / 1))
    assert agent.counts[0].sum() == 6 and agent.counts[0, 4].sum() == 6  # only context 4's cell moved


def test_linucb_a_b_theta_and_score_by_hand():
    """Three items with features (1, 0), (1, 1), (0, 1) and rewards 1, 0, 1, ridge 1:
    A = I + sum x x^T = [[3, 1], [1, 3]], b = (1, 1), theta = A^-1 b = (1/4, 1/4), A^-1 = [[3, -1], [-1, 3]] / 8."""
    features = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])  # [1 context, 3 items, d = 2]
    agent = LinUCB(features, LinUCBConfig(alpha=2.0, ridge=1.0, shared=True))
    for action, reward in [(0, 1.0), (1, 0.0), (2, 1.0)]:
        agent.update(torch.tensor([0]), torch.tensor([action]), torch.tensor([reward]))
    a = torch.tensor([[3.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    assert torch.allclose(agent.a[0, 0], a)
    assert torch.allclose(agent.b[0, 0], torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert torch.allclose(agent.a_inv[0, 0], torch.tensor([[3.0, -1.0], [-1.0, 3.0]], dtype=torch.float64) / 8)
    assert torch.allclose(agent.theta[0, 0], torch.tensor([0.25, 0.25], dtype=torch.float64))
    scores = agent.scores(torch.tensor([0]))[0]
    # x^T A^-1 x: 3/8 for (1, 0) and (0, 1), (3 - 2 + 3) / 8 = 1/2 for (1, 1)
    expected = [0.25 + 2 * math.sqrt(3 / 8), 0.5 + 2 * math.sqrt(1 / 2), 0.25 + 2 * math.sqrt(3 / 8)]
    assert scores.tolist() == pytest.approx(expected)

    disjoint = LinUCB(features, LinUCBConfig(alpha=0.0, ridge=1.0, shared=False))
    disjoint.update(torch.tensor([0]), torch.tensor([1]), torch.tensor([1.0]))
    # item 1's own model: A = I + (1,1)(1,1)^T, b = (1, 1), theta = (1/3, 1/3); the other items' models untouched
    assert torch.allclose(disjoint.theta[0, 1], torch.tensor([1 / 3, 1 / 3], dtype=torch.float64))
    assert (disjoint.b[0, 0] == 0).all() and (disjoint.b[0, 2] == 0).all()
    assert disjoint.scores(torch.tensor([0]))[0].tolist() == pytest.approx([0.0, 2 / 3, 0.0])


def test_sherman_morrison_matches_the_inverse():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = m @ m.T + torch.eye(6, dtype=torch.float64)
    a_inv = torch.linalg.inv(a)
    for _ in range(50):
        x = torch.randn(6, generator=g, dtype=torch.float64)
        a = a + torch.outer(x, x)
        a_inv = sherman_morrison_update(a_inv, x)
    assert torch.allclose(a_inv @ a, torch.eye(6, dtype=torch.float64), atol=1e-9)


def test_linucb_theta_is_the_ridge_regression_of_its_rows():
    """After a run, each run's A^-1 b (Sherman-Morrison, one row at a time) equals the ridge fit of the rows it saw."""
    world = recommendation_world()
    agent = LinUCB(world.joint_features(), LinUCBConfig(ridge=2.0), n_runs=2)
    run = play(world, agent, 200, n_runs=2, seed=3)
    for r in range(2):
        x = world.joint_features()[run.contexts[r], run.actions[r]]
        assert torch.allclose(agent.theta[r, 0], ridge_regression(x, run.rewards[r], ridge=2.0), atol=1e-9)


def test_linucb_regret_is_well_below_epsilon_greedys():
    """1,000 users on one seed: the shared linear model generalises across the 30 x 20 (context, item) cells that
    epsilon-greedy must learn one by one."""
    world = recommendation_world()
    lin = play(world, LinUCB(world.joint_features()), 1000, n_runs=1, seed=0).regret.sum().item()
    eps = play(world, EpsilonGreedy(world), 1000, n_runs=1, seed=0).regret.sum().item()
    assert lin < 0.4 * eps, (lin, eps)
