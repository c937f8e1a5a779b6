"""thorndike/Portfolio-v0 and the Markowitz oracle: closed forms against hand-computed and numerically optimised
weights, the notes' objective expressions, and the env's reward on hand-made steps."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

import thorndike as th
from thorndike.envs.finance import PortfolioEnv, markowitz_weights, portfolio_objective, risk_adjusted_return
from thorndike.envs.finance.portfolio import DEFAULT_COV, DEFAULT_MU

MU = torch.tensor(DEFAULT_MU, dtype=torch.float64)
COV = torch.tensor(DEFAULT_COV, dtype=torch.float64)


def test_markowitz_two_uncorrelated_assets_by_hand() -> None:
    # Sigma = diag(0.04, 0.09), mu = (0.1, 0.15), lam = 1: w_i = mu_i / (2 lam sigma_i^2) = (1.25, 0.8333..)
    mu, cov = (0.1, 0.15), ((0.04, 0.0), (0.0, 0.09))
    torch.testing.assert_close(markowitz_weights(mu, cov, 1.0), torch.tensor([1.25, 0.15 / 0.18], dtype=torch.float64))
    # with sum(w) = 1: w_i = (mu_i - eta) / (2 sigma_i^2); eta from the budget: (0.1-eta)/0.08 + (0.15-eta)/0.18 = 1
    # -> eta (1/0.08 + 1/0.18) = 1.25 + 0.8333.. - 1 -> eta = 0.06, w = (0.5, 0.5)
    torch.testing.assert_close(markowitz_weights(mu, cov, 1.0, budget=1.0),
                               torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_markowitz_two_correlated_assets_by_hand() -> None:
    # Sigma = [[1, 0.5], [0.5, 1]], Sigma^{-1} = [[4/3, -2/3], [-2/3, 4/3]]; mu = (1, 0): Sigma^{-1} mu = (4/3, -2/3)
    w = markowitz_weights((1.0, 0.0), ((1.0, 0.5), (0.5, 1.0)), 0.5)
    torch.testing.assert_close(w, torch.tensor([4 / 3, -2 / 3], dtype=torch.float64))


@pytest.mark.parametrize("budget", [None, 1.0, 0.5])
@pytest.mark.parametrize("lam", [0.5, 2.0, 10.0])
def test_markowitz_matches_a_numerical_optimisation(budget: float | None, lam: float) -> None:
    def negative(w: np.ndarray) -> float:
        return -float(portfolio_objective(torch.as_tensor(w), MU, COV, lam))

    constraints = [] if budget is None else [{"type": "eq", "fun": lambda w: w.sum() - budget}]
    found = minimize(negative, np.zeros(3), method="SLSQP", constraints=constraints, tol=1e-14).x
    closed = markowitz_weights(MU, COV, lam, budget)
    np.testing.assert_allclose(closed.numpy(), found, atol=1e-6)
    if budget is not None:
        assert closed.sum().item() == pytest.approx(budget)
    # and it is a maximum: any perturbation (within the budget) lowers the objective
    best = portfolio_objective(closed, MU, COV, lam)
    for direction in torch.eye(3, dtype=torch.float64):
        step = 0.01 * (direction - direction.mean() if budget is not None else direction)
        assert portfolio_objective(closed + step, MU, COV, lam) < best


def test_markowitz_with_high_risk_aversion_and_a_budget_is_the_minimum_variance_portfolio() -> None:
    ones = torch.ones(3, dtype=torch.float64)
    min_var = torch.linalg.solve(COV, ones) / torch.linalg.solve(COV, ones).sum()
    torch.testing.assert_close(markowitz_weights(MU, COV, 1e9, budget=1.0), min_var)
    with pytest.raises(ValueError, match="lam must be > 0"):
        markowitz_weights(MU, COV, 0.0)


def test_objective_helpers_compute_the_notes_expressions() -> None:
    assert risk_adjusted_return(0.1, 0.04, 2.0) == pytest.approx(0.1 - 2.0 * 0.04)
    w = torch.tensor([0.5, -0.2, 0.7], dtype=torch.float64)
    prev = torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64)
    mean = 0.5 * 0.04 - 0.2 * 0.06 + 0.7 * 0.08
    variance = float(w @ COV @ w)
    traded = 0.4 + 0.3 + 0.6
    got = portfolio_objective(w, MU, COV, 3.0, cost=0.01, previous=prev)
    assert got.item() == pytest.approx(mean - 3.0 * variance - 0.01 * traded)
    batch = portfolio_objective(torch.stack([w, prev]), MU, COV, 3.0)
    assert batch.shape == (2,) and batch[0].item() == pytest.approx(mean - 3.0 * variance)


def test_portfolio_env_passes_the_checker() -> None:
    assert "all checks passed" in str(th.envs.check("thorndike/Portfolio-v0", steps=150))
    assert "all checks passed" in str(th.envs.check("thorndike/Portfolio-v0", steps=60,
                                                    env_kwargs={"budget": 1.0, "window": 3}))


def test_portfolio_reward_is_the_objective_on_the_drawn_returns() -> None:
    lam, cost = 2.0, 0.01
    env = PortfolioEnv(lam=lam, cost=cost, n_steps=3, window=2)
    obs, _ = env.reset(seed=3)
    actions = [np.array([0.5, 0.0, -0.5]), np.array([0.5, 0.0, -0.5]), np.array([-1.0, 1.0, 0.25])]
    previous = np.zeros(3)
    for step, action in enumerate(actions):
        twin = PortfolioEnv(lam=lam, cost=cost, n_steps=3, window=2)  # the same random stream: the step's returns
        twin.np_random = copy.deepcopy(env.np_random)
        returns = twin.draw_returns(1)[0]
        obs, reward, terminated, truncated, info = env.step(action.astype(np.float32))
        w = 2.0 * action  # max_weight 2, no budget
        by_hand = w @ returns - lam * w @ np.asarray(DEFAULT_COV) @ w - cost * np.abs(w - previous).sum()
        assert reward == pytest.approx(by_hand, rel=1e-6)
        np.testing.assert_allclose(info["weights"], w)
        assert info["turnover"] == pytest.approx(np.abs(w - previous).sum())
        np.testing.assert_allclose(obs[-3:], w, rtol=1e-6)
        np.testing.assert_allclose(obs[3:6], returns * 10.0, rtol=1e-5)  # the newest return vector is observed
        assert truncated == (step == 2) and not terminated
        previous = w
    assert info["cost"] == pytest.approx(cost * np.abs(2.0 * (actions[2] - actions[1])).sum())


def test_portfolio_costs_only_on_changes_and_budget_weights_sum_to_the_budget() -> None:
    env = PortfolioEnv(mu=(0.0, 0.0), cov=((1e-12, 0.0), (0.0, 1e-12)), lam=0.0, cost=0.1, budget=1.0, n_steps=4)
    env.reset(seed=0)
    rewards = []
    for action in ([0.2, -0.2], [0.2, -0.2], [0.0, 0.0], [0.0, 0.0]):
        _, reward, _, _, info = env.step(np.array(action, dtype=np.float32))
        assert info["weights"].sum() == pytest.approx(1.0)
        rewards.append(reward)
    # from (0.5, 0.5) to (0.9, 0.1): traded 0.8; held; back: 0.8; held (returns are ~0 here)
    np.testing.assert_allclose(rewards, [-0.08, 0.0, -0.08, 0.0], atol=1e-5)


def test_portfolio_env_returns_have_the_stated_moments() -> None:
    env = PortfolioEnv()
    env.reset(seed=11)
    r = env.draw_returns(20000)
    n = r.shape[0]
    sd = np.sqrt(np.diag(DEFAULT_COV))
    assert np.all(np.abs(r.mean(0) - np.asarray(DEFAULT_MU)) < 4 * sd / np.sqrt(n))
    np.testing.assert_allclose(np.cov(r.T), np.asarray(DEFAULT_COV), atol=4 * 0.04 * np.sqrt(2 / n))
