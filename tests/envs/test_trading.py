"""Synthetic prices against their closed-form moments, and thorndike/Trading-v0: the env checker, the reward's exact
expression on hand-made prices, costs charged on position changes only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import thorndike as th
from thorndike.envs.finance import TradingEnv, prices, trading_reward


def _within(estimate: torch.Tensor | float, truth: float, standard_error: float, z: float = 4.0) -> bool:
    return abs(float(estimate) - truth) <= z * standard_error


def test_gbm_increments_have_the_closed_form_mean_and_variance() -> None:
    mu, sigma, dt = 0.05, 0.2, 0.25
    paths = prices.gbm(4000, 50, mu=mu, sigma=sigma, dt=dt, s0=10.0, generator=torch.Generator().manual_seed(0))
    assert paths.shape == (4000, 51) and torch.all(paths[:, 0] == 10.0)
    x = prices.log_returns(paths).flatten()
    n, var = x.numel(), sigma**2 * dt
    assert _within(x.mean(), (mu - sigma**2 / 2) * dt, math.sqrt(var / n))
    assert _within(x.var(), var, var * math.sqrt(2 / (n - 1)))  # the sample variance of normals: sd var sqrt(2/(n-1))
    # E[S_T / S_0] = e^{mu T}
    growth = paths[:, -1] / paths[:, 0]
    assert _within(growth.mean(), math.exp(mu * 50 * dt), growth.std().item() / math.sqrt(4000))


def test_driftless_gbm_returns_are_uncorrelated() -> None:
    x = prices.log_returns(prices.gbm(2000, 100, generator=torch.Generator().manual_seed(1)))
    lag1 = ((x[:, 1:] - x.mean()) * (x[:, :-1] - x.mean())).mean() / x.var()
    assert _within(lag1, 0.0, 1 / math.sqrt(x.numel()))


def test_ornstein_uhlenbeck_has_the_stationary_variance_and_autocorrelation() -> None:
    theta, sigma, dt = 0.2, 0.03, 0.5
    x = prices.ornstein_uhlenbeck(20000, 30, theta=theta, sigma=sigma, dt=dt, s0=50.0,
                                  generator=torch.Generator().manual_seed(2)).log()
    stationary = sigma**2 / (2 * theta)
    n = x.shape[0]
    # started from the stationary law, every column is N(log s0, sigma^2 / (2 theta)); paths are independent
    for t in (0, 10, 30):
        assert _within(x[:, t].mean(), math.log(50.0), math.sqrt(stationary / n))
        assert _within(x[:, t].var(), stationary, stationary * math.sqrt(2 / (n - 1)))
    centred = x - math.log(50.0)
    for k in (1, 5):
        rho = (centred[:, 10] * centred[:, 10 + k]).mean() / stationary
        truth = math.exp(-theta * k * dt)
        # mean(x_s x_{s+k}) / (known variance): the sd of a product of unit normals with correlation rho is
        # sqrt(1 + rho^2)
        assert _within(rho, truth, math.sqrt(1 + truth**2) / math.sqrt(n))


def test_ornstein_uhlenbeck_from_a_fixed_start_decays_to_the_mean() -> None:
    theta, sigma = 0.1, 0.01
    x = prices.ornstein_uhlenbeck(5000, 20, theta=theta, sigma=sigma, s0=100.0, x0=math.log(110.0),
                                  generator=torch.Generator().manual_seed(3)).log()
    t = 20  # E[X_t] = m + (x0 - m) e^{-theta t}, Var = sigma^2 (1 - e^{-2 theta t}) / (2 theta)
    mean = math.log(100.0) + math.log(1.1) * math.exp(-theta * t)
    var = sigma**2 * (1 - math.exp(-2 * theta * t)) / (2 * theta)
    assert _within(x[:, t].mean(), mean, math.sqrt(var / 5000))
    assert _within(x[:, t].var(), var, var * math.sqrt(2 / 4999))


def test_regime_switching_occupancy_and_moments_per_regime() -> None:
    drifts, vols = (0.004, -0.002, 0.0), (0.005, 0.02, 0.01)
    P = ((0.9, 0.05, 0.05), (0.1, 0.8, 0.1), (0.2, 0.2, 0.6))
    paths, regimes = prices.regime_switching(2000, 200, drifts=drifts, vols=vols, transition=P,
                                             generator=torch.Generator().manual_seed(4))
    pi = prices.stationary_distribution(torch.tensor(P))
    assert torch.allclose(pi @ torch.tensor(P, dtype=torch.float64), pi) and math.isclose(pi.sum(), 1.0)
    # occupancy: started stationary, each step's regime has law pi (2000 independent paths per column)
    for t in (0, 199):
        freq = torch.bincount(regimes[:, t], minlength=3) / 2000
        assert all(_within(f, p, math.sqrt(p * (1 - p) / 2000)) for f, p in zip(freq, pi.tolist()))
    # transition frequencies match P
    before, after = regimes[:, :-1].flatten(), regimes[:, 1:].flatten()
    for r in range(3):
        nxt = torch.bincount(after[before == r], minlength=3).double()
        n = nxt.sum().item()
        assert all(_within(c / n, p, math.sqrt(p * (1 - p) / n)) for c, p in zip(nxt, P[r]))
    # given the regime, the increment is N(mu - sd^2/2, sd^2)
    x = prices.log_returns(paths)
    for r in range(3):
        inc = x[regimes == r]
        n, var = inc.numel(), vols[r] ** 2
        assert _within(inc.mean(), drifts[r] - var / 2, math.sqrt(var / n))
        assert _within(inc.var(), var, var * math.sqrt(2 / (n - 1)))


def test_price_processes_are_seeded_and_validated() -> None:
    a = prices.price_paths("ou", 3, 10, generator=torch.Generator().manual_seed(5))
    b = prices.price_paths("ou", 3, 10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="process must be one of"):
        prices.price_paths("heston", 1, 5)
    with pytest.raises(ValueError, match="transition rows"):
        prices.regime_switching(1, 5, transition=((0.5, 0.6), (0.5, 0.5)))


@pytest.mark.parametrize("kwargs", [{}, {"actions": "continuous", "process": "regime"}])
def test_trading_env_passes_the_checker(kwargs: dict) -> None:
    report = th.envs.check("thorndike/Trading-v0", steps=150, env_kwargs=kwargs)
    assert "all checks passed" in str(report)


def _hand_made(env: TradingEnv, price_list: list[float]) -> None:
    """Put ``price_list`` under the env as its path (the first ``window`` returns are history)."""
    env.prices = np.asarray(price_list, dtype=np.float64)
    env.log_returns = np.diff(np.log(env.prices))
    env.t, env.position = env.window, 0.0


def test_trading_reward_is_the_stated_expression_on_hand_made_prices() -> None:
    cost, lam = 0.01, 2.0
    env = TradingEnv(n_steps=3, window=2, cost=cost, lam=lam)
    env.reset(seed=0)
    path = [100.0, 110.0, 99.0, 108.9, 108.9, 98.01]  # returns +10%, -10%, then +10%, 0, -10%
    _hand_made(env, path)
    logs = np.diff(np.log(path))
    expected_positions = [1.0, 1.0, -1.0]
    previous = 0.0
    for step, action in enumerate([2, 2, 0]):
        t = 2 + step
        obs, reward, terminated, truncated, info = env.step(action)
        a = expected_positions[step]
        simple = path[t + 1] / path[t] - 1
        var = np.var(logs[t - 2:t], ddof=1)
        by_hand = a * simple - cost * abs(a - previous) - lam * a * a * var
        assert reward == pytest.approx(by_hand, rel=1e-12, abs=1e-15)
        assert reward == pytest.approx(trading_reward(a, previous, simple, var, cost, lam))
        assert info["turnover"] == abs(a - previous) and info["position"] == a
        assert info["cost"] == pytest.approx(cost * abs(a - previous))
        np.testing.assert_allclose(obs, np.append(logs[t - 1:t + 1] * 100.0, a).astype(np.float32))
        assert not terminated and truncated == (step == 2)
        previous = a


def test_costs_are_charged_on_position_changes_only() -> None:
    env = TradingEnv(n_steps=6, window=3, cost=0.005, lam=0.0, actions="continuous")
    env.reset(seed=1)
    _hand_made(env, [100.0] * 10)  # a flat price: the reward is minus the cost alone
    positions = [0.5, 0.5, -0.25, -0.25, 1.0, 1.0]
    rewards = [env.step(np.array([p], dtype=np.float32))[1] for p in positions]
    changes = np.abs(np.diff([0.0, *positions]))
    np.testing.assert_allclose(rewards, -0.005 * changes, rtol=1e-6, atol=1e-12)
    assert rewards[1] == 0.0 and rewards[3] == 0.0 and rewards[5] == 0.0  # holding is free


def test_buy_and_hold_earns_the_asset_return_less_one_cost() -> None:
    env = TradingEnv(process="gbm", n_steps=50, window=5, cost=0.002, lam=0.0)
    env.reset(seed=7)
    total, truncated = 0.0, False
    while not truncated:
        _, reward, _, truncated, _ = env.step(2)
        total += reward
    simple = env.prices[6:] / env.prices[5:-1] - 1  # the 50 traded steps
    assert total == pytest.approx(simple.sum() - 0.002)


def test_trading_env_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="process must be one of"):
        TradingEnv(process="levy")
    with pytest.raises(ValueError, match="window >= 2"):
        TradingEnv(window=1)
    with pytest.raises(ValueError, match="actions must be"):
        TradingEnv(actions="binary")


def test_ppo_trains_on_trading_by_id_and_loads_with_its_env_kwargs(tmp_path) -> None:
    kwargs = {"process": "ou", "process_params": {"theta": 0.2, "sigma": 0.02}, "n_steps": 20, "window": 4}
    agent = th.make("ppo", env="thorndike/Trading-v0", env_kwargs=kwargs, seed=0, run_root=tmp_path, n_envs=2,
                    n_steps=32, progress=False, tensorboard=False, pictures=False)
    agent.learn(128)
    loaded = th.load(agent.run_dir / "final.pt")
    assert loaded.env_setup.kwargs == kwargs  # the nested process_params survive config.yaml and the checkpoint
    batch = torch.randn(16, 5)
    assert torch.equal(loaded.act(batch), agent.act(batch))
    assert loaded.envs.single_observation_space.shape == (5,)
